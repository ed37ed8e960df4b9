"""The org.Hs.eg.db SQLite tables the gene-table builder reads, for hand-made test databases."""

ORGDB_GENE_TABLES = """
CREATE TABLE genes (_id INTEGER PRIMARY KEY, gene_id TEXT);
CREATE TABLE gene_info (_id INTEGER, gene_name TEXT, symbol TEXT);
CREATE TABLE genetype (_id INTEGER, gene_type TEXT);
CREATE TABLE alias (_id INTEGER, alias_symbol TEXT);
CREATE TABLE ensembl (_id INTEGER, ensembl_id TEXT);
CREATE TABLE ncbi2ensembl (_id INTEGER, ensembl_id TEXT);
CREATE TABLE chromosomes (_id INTEGER, chromosome TEXT);
"""
