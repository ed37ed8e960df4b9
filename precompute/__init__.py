"""precompute: TxFM checkpoint (or PCA baseline) -> Bundle folder for the app.

Entry points: `precompute.pipeline.build_bundle`, `precompute.bundle.validate.validate_bundle`,
`precompute.bundle.synthetic.make_synthetic_bundle`, and the CLI `python -m precompute --help`.
Importing the package is cheap (no torch/umap): the app imports `precompute.bundle.validate`.
"""
