"""Genes and identifiers: the gene table built from org.Hs.eg.db and its mapping (``table``), and the
harmonisation of a source's gene ids onto canonical genes (``harmonise``). The identifier resolver
itself is ``common.gene_ids``, shared by every room."""
