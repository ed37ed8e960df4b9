"""Gene-identifier harmonisation: a hand-made table mapped by hand, the org.Hs.eg.db builder on a
hand-made SQLite, and the real Debian table on real files."""
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from common.gene_ids import human_ensembl_id
from data.genes.table import GeneTable, genes_from_orgdb, hgnc_mito_symbol, mapping_summary
from data.references.registry import RegistryError

from tests.data.orgdb_schema import ORGDB_GENE_TABLES

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]

# input -> (symbol, ensembl_id, status, how, candidates), worked out from genes_small.tsv
EXPECTED = [
    ("TP53", ("TP53", "ENSG00000141510", "mapped", "symbol", "")),
    ("tp53", ("TP53", "ENSG00000141510", "mapped", "case", "")),
    ("p53", ("TP53", "ENSG00000141510", "mapped", "alias", "")),
    ("ENSG00000141510.17", ("TP53", "ENSG00000141510", "mapped", "ensembl", "")),
    ("ensg00000122545.3", ("SEPTIN7", "ENSG00000122545", "mapped", "ensembl", "")),
    ("7157", ("TP53", "ENSG00000141510", "mapped", "entrez", "")),
    ("SEPT7", ("SEPTIN7", "ENSG00000122545", "mapped", "previous_symbol", "")),
    # previous symbol of SEPTIN2 beats the alias of SEPTIN6
    ("SEPT2", ("SEPTIN2", "ENSG00000168385", "mapped", "previous_symbol", "")),
    ("TAZ", ("", "", "ambiguous", "alias", "TAFAZZIN|WWTR1")),
    # a current symbol beats another gene's alias
    ("CD4", ("CD4", "ENSG00000010610", "mapped", "symbol", "")),
    ("CD223", ("LAG3", "ENSG00000089692", "mapped", "alias", "")),
    # case-insensitive current symbol beats another gene's previous symbol
    ("abc1", ("ABC1", "ENSG00000000001", "mapped", "case", "")),
    # a primary Ensembl link beats another gene's secondary link
    ("ENSG00000000003", ("RDT1", "ENSG00000000003", "mapped", "ensembl", "")),
    ("ENSG00000000004.2", ("", "", "ambiguous", "ensembl", "RDT2|RDT3")),
    ("TRNAV-CAC", ("", "", "ambiguous", "symbol", "TRNAV-CAC[1006]|TRNAV-CAC[1007]")),
    ("COX2", ("", "", "ambiguous", "alias", "MT-CO2|PTGS2")),
    ("ENSG00000198712_PAR_Y", ("MT-CO2", "ENSG00000198712", "mapped", "ensembl", "")),
    ("ENSG00000000000", ("", "", "unmapped", "", "")),
    ("NOTAGENE", ("", "", "unmapped", "", "")),
    ("99999999", ("", "", "unmapped", "", "")),
    ("", ("", "", "unmapped", "", "")),
    (" TP53 ", ("TP53", "ENSG00000141510", "mapped", "symbol", "")),
]


@pytest.fixture(scope="module")
def small() -> GeneTable:
    return GeneTable.read_tsv(FIXTURES / "genes_small.tsv")


def test_hand_made_table_maps_every_case_as_worked_out(small):
    res = small.map([i for i, _ in EXPECTED])
    assert list(res.columns) == ["input", "symbol", "ensembl_id", "status", "how", "candidates"]
    assert len(res) == len(EXPECTED)
    for row, (inp, exp) in zip(res.itertuples(index=False), EXPECTED):
        assert row.input == inp
        assert (row.symbol, row.ensembl_id, row.status, row.how, row.candidates) == exp, inp


def test_summary_counts_and_duplicate_targets(small):
    res = small.map(["TP53", "7157", "SEPT7", "TAZ", "NOTAGENE", "p53"])
    s = mapping_summary(res)
    # TP53 is reached three times (symbol, entrez, alias): one duplicate target, never merged
    assert s == {"n": 6, "mapped": 4, "ambiguous": 1, "unmapped": 1,
                 "by_how": {"symbol": 1, "entrez": 1, "previous_symbol": 1, "alias": 1},
                 "duplicate_targets": 1}


def test_non_string_inputs_keep_order(small):
    res = small.map([7157, None, float("nan"), "CD4"])
    assert res["input"].tolist() == ["7157", "", "", "CD4"]
    assert res["status"].tolist() == ["mapped", "unmapped", "unmapped", "mapped"]


def test_from_frame_fills_optional_columns_and_strips_versions():
    t = GeneTable.from_frame(pd.DataFrame({"symbol": ["A1", "B2"],
                                           "ensembl_id": ["ENSG00000000010.5", None]}))
    assert t.frame.loc[0, "ensembl_id"] == "ENSG00000000010"
    assert t.frame.loc[1, "aliases"] == "" and len(t) == 2
    assert t.map(["ENSG00000000010"])["symbol"].tolist() == ["A1"]


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"gene": ["A"]}), "no 'symbol' column"),
    (pd.DataFrame({"symbol": ["A", ""]}), "empty symbol"),
    (pd.DataFrame({"symbol": ["A"], "ensembl_id": ["ENST00000000001"]}), "not Ensembl gene ids"),
    (pd.DataFrame({"symbol": ["A"], "entrez_id": ["12a"]}), "entrez_id must be digits"),
])
def test_from_frame_rejects_bad_tables(frame, message):
    with pytest.raises(ValueError, match=message):
        GeneTable.from_frame(frame, source="my_table.tsv")


def test_human_ensembl_id():
    assert human_ensembl_id("ENSG00000141510.17") == "ENSG00000141510"
    assert human_ensembl_id("ENSG00000002586.20_PAR_Y") == "ENSG00000002586"
    assert human_ensembl_id("ENST00000269305") is None
    assert human_ensembl_id("TP53") is None


def test_hgnc_mito_symbol():
    assert hgnc_mito_symbol("ND1", ["MTND1", "ND1"]) == "MT-ND1"
    assert hgnc_mito_symbol("COX1", ["COI", "MTCO1"]) == "MT-CO1"
    assert hgnc_mito_symbol("TRNF", ["TRNF"]) == "MT-TF"
    assert hgnc_mito_symbol("TRNL1", []) == "MT-TL1"
    assert hgnc_mito_symbol("D-LOOP", ["DLOOP"]) == "D-LOOP"


def _orgdb_fixture(path: Path) -> Path:
    """A tiny SQLite laid out like org.Hs.eg.db's tables."""
    con = sqlite3.connect(path)
    con.executescript(ORGDB_GENE_TABLES)
    con.executescript("""
    INSERT INTO genes VALUES (1,'7157'),(2,'4513'),(3,'100187828'),(4,'7113'),(5,'124905021');
    INSERT INTO gene_info VALUES (1,'tumor protein p53','TP53'),(2,'cytochrome c oxidase II','COX2'),
      (3,'hypophosphatemic bone disease','HBD'),(4,'transmembrane serine protease 2','TMPRSS2'),
      (5,'uncharacterized LOC124905021','LOC124905021');
    INSERT INTO genetype VALUES (1,'protein-coding'),(2,'protein-coding'),(3,'unknown'),
      (4,'protein-coding'),(5,'ncRNA');
    INSERT INTO alias VALUES (1,'TP53'),(1,'P53'),(1,'LFS1'),(2,'COX2'),(2,'MTCO2'),(2,'COII'),
      (3,'HBD'),(4,'TMPRSS2'),(4,'PRSS10');
    INSERT INTO ensembl VALUES (1,'ENSG00000141510'),(2,'ENSG00000198712'),(4,'ENSG00000184012'),
      (4,'ENSG00000999999'),(5,'ENSG00000184012');
    INSERT INTO ncbi2ensembl VALUES (1,'ENSG00000141510'),(4,'ENSG00000184012');
    INSERT INTO chromosomes VALUES (1,'17'),(2,'MT'),(4,'21'),(5,'21');
    """)
    con.commit()
    con.close()
    return path


def test_genes_from_orgdb_builds_the_table_cell_by_cell(tmp_path):
    f = genes_from_orgdb(_orgdb_fixture(tmp_path / "org.sqlite"))
    # the "unknown" phenotype locus HBD is left out; rows sorted by symbol
    assert f["symbol"].tolist() == ["LOC124905021", "MT-CO2", "TMPRSS2", "TP53"]
    rows = f.set_index("symbol")
    assert rows.loc["TP53", ["ensembl_id", "entrez_id", "aliases", "other_ensembl_ids"]].tolist() \
        == ["ENSG00000141510", "7157", "LFS1|P53", ""]
    assert rows.loc["MT-CO2", "aliases"] == "COII|COX2|MTCO2"
    assert rows.loc["TMPRSS2", ["ensembl_id", "other_ensembl_ids"]].tolist() == \
        ["ENSG00000184012", "ENSG00000999999"]
    # NCBI links ENSG00000184012 to TMPRSS2, so the LOC record keeps it only as a secondary link
    assert rows.loc["LOC124905021", ["ensembl_id", "other_ensembl_ids"]].tolist() == \
        ["", "ENSG00000184012"]
    assert (f["previous_symbols"] == "").all()
    t = GeneTable.from_frame(f)
    assert t.map(["ENSG00000184012"])["symbol"].tolist() == ["TMPRSS2"]
    kept = genes_from_orgdb(tmp_path / "org.sqlite", exclude_types=())
    assert "HBD" in set(kept["symbol"])


# ---------------------------------------------------------------------- the real Debian table
@pytest.fixture(scope="module")
def real_table() -> GeneTable:
    try:
        return GeneTable.load(ROOT / "cache" / "references", log=lambda m: None)
    except RegistryError as e:
        pytest.skip(f"apt could not fetch r-bioc-org.hs.eg.db and it is not cached: {e}")


def test_real_table_well_known_genes(real_table):
    res = real_table.map(["TP53", "ENSG00000141510.17", "7157", "P53", "SEPT7", "WARS",
                          "MT-CO2", "ENSG00000198712"]).set_index("input")
    assert res.loc["TP53", ["symbol", "ensembl_id", "how"]].tolist() == \
        ["TP53", "ENSG00000141510", "symbol"]
    for key in ("ENSG00000141510.17", "7157", "P53"):
        assert res.loc[key, "symbol"] == "TP53", key
    # previous HGNC symbols (renamed 2019-2021): NCBI lists them among the synonyms
    assert res.loc["SEPT7", "symbol"] == "SEPTIN7"
    assert res.loc["WARS", "symbol"] == "WARS1"
    assert res.loc["MT-CO2", "symbol"] == res.loc["ENSG00000198712", "symbol"] == "MT-CO2"
    assert len(real_table) > 50_000


def test_real_files_map_at_a_high_rate(real_table, shared_data):
    import anndata
    a = anndata.read_h5ad(shared_data / "kang2018_pbmc_stim.h5ad", backed="r")
    symbols = list(a.var_names)
    a.file.close()
    s = mapping_summary(real_table.map(symbols))
    print(f"kang2018 symbols: {s}")
    assert s["mapped"] / s["n"] > 0.95 and s["n"] == 9015
    # R's write.csv header is one field short, so pandas takes the ids as the index
    ids = pd.read_csv(shared_data / "cellbench_csv" / "sc_celseq2_5cl_p1.count.csv.gz",
                      index_col=0).index
    s = mapping_summary(real_table.map(ids))
    print(f"cellbench sc_celseq2_5cl_p1 Ensembl ids: {s}")
    assert s["mapped"] / s["n"] > 0.85 and set(s["by_how"]) == {"ensembl"}
