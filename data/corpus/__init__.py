"""Corpus building: the streaming two-pass builder (``build``), curation (``curation``: cell and gene
filters, control-PCA alignment, phenoprint), the build report (``report``), the demo corpus from the
registries (``demo``) and the build commands (``cli``)."""
