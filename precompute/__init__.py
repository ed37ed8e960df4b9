"""precompute: TxFM checkpoint (or PCA baseline) -> Bundle folder for the app.

Entry points: `precompute.pipeline.build_bundle` (parameters: `precompute.params.BundleParams`), the
bundle contract `precompute.bundle` (layout, reader, validation, comparison, enrichment statistics,
synthetic bundles), and the CLI `python -m precompute --help`. Importing the package is cheap (no
torch/umap): the app imports `precompute.bundle` and nothing else from here.
"""
