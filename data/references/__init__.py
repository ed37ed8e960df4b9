"""Reference tables: their format, read and written by every room (``tables``); the downloads from the
package registries (``registry``), the builders of relationship pairs (``fetch``) and gene-set libraries
(``gene_sets``)."""
