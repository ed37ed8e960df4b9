"""precompute: TxFM checkpoint (or PCA baseline) -> Bundle folder for the app.

Entry points: `precompute.pipeline.build_bundle`, `precompute.validate.validate_bundle`,
`precompute.synthetic.make_synthetic_bundle`, and the CLI `python -m precompute --help`.
Importing the package is cheap (no torch/umap): the app imports `precompute.validate`.
"""
