"""The one gene-identifier resolver (common.gene_ids) and the rooms that use it agree."""
import numpy as np
import pandas as pd

from common.gene_ids import IdentifierIndex, ensembl_gene_id, ensembl_species_code, human_ensembl_id


def test_ensembl_normaliser():
    assert ensembl_gene_id("ENSG00000141510.17") == "ENSG00000141510"
    assert ensembl_gene_id(" ensg00000002586.20_PAR_Y ") == "ENSG00000002586"
    assert ensembl_gene_id("ENSMUSG00000000001.4") == "ENSMUSG00000000001"
    # a transcript id, a symbol with a dot (clone-based lncRNA names) and a short id are not gene ids
    assert ensembl_gene_id("ENST00000269305") is None
    assert ensembl_gene_id("AC000123.1") is None and ensembl_gene_id("ENSG0000014151") is None
    assert human_ensembl_id("ENSG00000141510.1") == "ENSG00000141510"
    assert human_ensembl_id("ENSMUSG00000000001") is None
    assert [ensembl_species_code(x) for x in ("ENSG00000141510", "ENSMUSG00000000001", "TP53")] == ["", "MUS", None]


def _index():
    return IdentifierIndex(
        symbols=["TP53", "CD4", "Cd4", "MT-CO1"],
        ensembl=["ENSG00000141510", "ENSG00000010610.10", "", "ENSG00000198804"],
        entrez=["7157", "920", "", ""],
        previous=["", "", "", "MTCO1|COX1"],
        aliases=["P53|LFS1", "CD4MUT", "", "COX1"],
        other_ensembl=["ENSG00000999999", "", "", ""])


def test_resolution_levels_in_order():
    ix = _index()
    assert ix.resolve("TP53") == ("symbol", [0])
    assert ix.resolve("Cd4") == ("symbol", [2])                  # exact beats case-insensitive
    assert ix.resolve("cd4") == ("case", [1, 2])                 # ambiguous: both rows reported
    assert ix.first("cd4") == 1
    assert ix.resolve("ENSG00000010610.3") == ("ensembl", [1])   # any version
    assert ix.resolve("ENSG00000999999.2") == ("ensembl", [0])   # a further id of the gene
    assert ix.resolve("007157") == ("entrez", [0])
    assert ix.resolve("mtco1") == ("previous_symbol", [3])
    assert ix.resolve("COX1") == ("previous_symbol", [3])        # previous symbol before alias
    assert ix.resolve("p53") == ("alias", [0])
    # an Ensembl-shaped id that is not in the table is not looked up as a symbol or alias
    assert ix.resolve("ENSG00000000001") == ("", [])
    assert ix.resolve("") == ("", []) and ix.resolve(None) == ("", []) and ix.resolve(float("nan")) == ("", [])
    assert ix.first_rows(["TP53", "nope", "CD4MUT"]) == [0, -1, 1]


def test_every_room_resolves_the_same_identifiers():
    """data's gene table, txfm's vocabulary mapping and the app's search give the same gene for the
    identifiers each of them is given (the issue: three resolvers with four version strippers)."""
    from app.search import GeneIndex
    from data.genes.table import GeneTable
    from txfm.inference import map_to_vocabulary

    frame = pd.DataFrame({"symbol": ["TP53", "CD4", "MT-CO1"], "ensembl_id": ["ENSG00000141510", "ENSG00000010610",
                                                                               "ENSG00000198804"],
                          "entrez_id": ["7157", "920", "4512"], "aliases": ["P53", "", "COX1"],
                          "previous_symbols": ["", "", "MTCO1"], "other_ensembl_ids": ["", "", ""],
                          "name": ["", "", ""], "gene_type": ["", "", ""]})
    table = GeneTable.from_frame(frame)
    queries = ["tp53", "ENSG00000010610.10", "ENSG00000198804.2", "MT-CO1", "cd4"]
    mapped = table.map(queries)
    assert mapped.symbol.tolist() == ["TP53", "CD4", "MT-CO1", "MT-CO1", "CD4"]
    voc = map_to_vocabulary(queries, frame.symbol.tolist(), frame.ensembl_id.tolist())
    assert voc.index.tolist() == [0, 1, 2, 2, 1] and voc.duplicated == ["MT-CO1", "cd4"]
    app = GeneIndex.from_genes(frame[["symbol", "ensembl_id", "aliases"]])
    assert [app.lookup(q) for q in queries] == [0, 1, 2, 2, 1]
    # aliases: the gene table and the app resolve them; the vocabulary mapping is given canonical
    # symbols by `python -m data embed`, which harmonises a count file with the gene table first
    assert table.map(["p53"]).symbol.tolist() == ["TP53"] and app.lookup("p53") == 0
    assert np.all(map_to_vocabulary(["p53"], frame.symbol.tolist()).index == -1)


def test_gmt_reader_names_the_line_of_a_control_character():
    import pytest
    from common.gmt import read_gmt_text
    assert read_gmt_text("a\tdesc\tG1\tG2\tG1\n\nb\t\tG3\n") == [("a", "desc", ["G1", "G2"]), ("b", "", ["G3"])]
    for text, line in [("a\x01\tb\tG\n", 1), ("a\tb\tG1\nc\td\tG\x002\n", 2), ("x\tb\tG\n\n\ny\tz\x07\tG\n", 4),
                       ("x\tb\tG\r\ny\tb\t\x1fG\n", 2)]:
        with pytest.raises(ValueError, match=f"F.gmt: line {line} contains control characters"):
            read_gmt_text(text, "F.gmt")
