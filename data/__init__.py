"""data: getting real data in, by subject: ``readers`` (h5ad, 10x, CSV/TSV; count validation),
``genes`` (the gene table, gene-id harmonisation), ``corpus`` (building, curation, report, demo),
``references`` (the reference-table format and its builders from the package registries), and
``embed`` (CLS embeddings of a user's count file). Command line: ``python -m data --help``.
"""
