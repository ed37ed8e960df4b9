"""Evidence per pair (app/evidence.py): the sets two genes share, worked out by hand on hand-made libraries
(tests/app/conftest.py EVIDENCE_*), checked against plain Python sets on random ones, and shown on the Gene
neighbourhood page, in its CSV and in the ego network's GraphML."""
import io

import networkx as nx
import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from app.evidence import SetIndex, annotate_edges, default_libraries, library_label
from app.export import graphml_bytes, table_csv
from app.neighbours import PairIndex, unit_rows
from app.network import edge_hover, similarity_graph
from precompute.bundle.reader import open_bundle
from tests.app.conftest import EVIDENCE_LIBRARIES, EVIDENCE_PAIRS
from tests.app.test_pages import MAIN, texts

SYMBOLS = np.array(["TP53", "MDM2", "CDKN1A", "BAX", "GADD45A", "BBC3", "PMAIP1", "FAS", "ACTB", "TP53"], dtype=object)
DEFAULT = ["CORUM_complexes", "MSigDB_Reactome", "MSigDB_Hallmark", "GO_BP"]


def index() -> SetIndex:
    return SetIndex.from_libraries(EVIDENCE_LIBRARIES, SYMBOLS)


def test_library_labels_and_defaults():
    assert [library_label(x) for x in ["CORUM_complexes", "MSigDB_Reactome", "GO_BP", "Hallmark_synthetic"]] == \
        ["CORUM", "Reactome", "GO BP", "Hallmark synthetic"]
    assert default_libraries(sorted(EVIDENCE_LIBRARIES)) == DEFAULT              # KEGG is not a default
    assert default_libraries(["GO_synthetic", "Hallmark_synthetic"]) == ["GO_synthetic", "Hallmark_synthetic"]


def test_a_pair_in_one_complex_shows_exactly_that_complex():
    ix = index()
    s = ix.shared(0, 1, DEFAULT)                                                  # TP53, MDM2
    assert ix.describe(s) == "CORUM: TP53-MDM2 complex (3 genes)"                 # 3: the member outside the bundle counts
    both = ix.shared(0, 1)                                                        # every library: KEGG too
    assert ix.describe(both) == "CORUM: TP53-MDM2 complex (3 genes) | KEGG: KEGG_P53_SIGNALING (3 genes)"
    assert ix.describe(ix.shared(0, 8)) == "" and len(ix.shared(0, 8)) == 0       # ACTB is in no set


def test_smallest_sets_first_a_few_named_and_the_rest_counted():
    ix = index()
    # TP53 and BAX share GO 2 and 3 genes, Reactome 4 and 6, Hallmark 7
    s = ix.shared(0, 3, DEFAULT)
    assert ix.size[s].tolist() == [2, 3, 4, 6, 7]
    assert ix.describe(s) == ("GO BP: apoptotic process (GO:0006915) (2 genes) | GO BP: intrinsic apoptotic signaling "
                              "(GO:0097193) (3 genes) | Reactome: REACTOME_P53_TARGETS (4 genes) | and 2 more")
    ev = ix.evidence(0, [1, 3, 8], DEFAULT)
    assert ev["shared_sets"].tolist() == [1, 5, 0]
    assert ev["evidence"].tolist()[2] == ""
    # the second TP53 row (a duplicated symbol) is not indexed; the first is
    assert len(ix.sets_of(9)) == 0 and len(ix.sets_of(0)) == 7


def test_shared_sets_equal_plain_python_set_intersections():
    """Random libraries: the index's answer for every pair equals the intersection computed with sets."""
    rng = np.random.default_rng(3)
    symbols = np.array([f"G{i}" for i in range(60)], dtype=object)
    libs = {f"LIB{j}": {f"set{j}_{t}": [f"G{g}" for g in rng.choice(70, rng.integers(2, 25), replace=False)]
                        for t in range(15)} for j in range(3)}
    ix = SetIndex.from_libraries(libs, symbols)
    members = {(lib, t): set(g) for lib, sets in libs.items() for t, g in sets.items()}
    for a in range(0, 60, 7):
        got = ix.shared_with(a, range(60), ["LIB0", "LIB2"])
        for b in range(60):
            want = {k for k, m in members.items() if k[0] != "LIB1" and f"G{a}" in m and f"G{b}" in m}
            assert {(ix.libraries[ix.lib[s]], ix.term[s]) for s in got[b]} == want
            sizes = ix.size[got[b]]
            assert (np.diff(sizes) >= 0).all()                                   # smallest first
            assert sizes.tolist() == sorted(len(members[k]) for k in want)


def test_evidence_in_the_graphml_and_the_edge_hover():
    s = np.array([[1, 0], [0.95, 0.1], [0.9, 0.2], [0.0, 1]], dtype=np.float32)
    symbols = np.array(["TP53", "MDM2", "BAX", "ACTB"], dtype=object)
    pairs = PairIndex.from_pairs(pd.DataFrame(EVIDENCE_PAIRS, columns=["source", "gene_a", "gene_b"]), symbols)
    g = similarity_graph(unit_rows(s, 2), np.array([0, 1, 2, 3]), symbols, 0.5, pairs, centre=0)
    annotate_edges(g, SetIndex.from_libraries(EVIDENCE_LIBRARIES, symbols), DEFAULT)
    back = nx.read_graphml(io.BytesIO(graphml_bytes(g)))
    e = back.edges["TP53", "MDM2"]
    assert e["known"] is True and e["sources"] == "CORUM|StringDB"
    assert e["shared_sets"] == 1 and e["evidence"] == "CORUM: TP53-MDM2 complex (3 genes)"
    e = back.edges["TP53", "BAX"]
    assert e["known"] is False and e["shared_sets"] == 5 and e["evidence"].endswith("| and 2 more")
    hover = edge_hover("TP53", "MDM2", g.edges["TP53", "MDM2"])
    assert hover.split("<br>")[1:] == ["known pair in CORUM, StringDB", "1 shared gene sets, smallest first:",
                                       "CORUM: TP53-MDM2 complex (3 genes)"]
    # a hostile set name is escaped for Plotly's HTML subset
    hover = edge_hover("A", "B", {"cosine": 0.5, "sources": "X", "shared_sets": 1,
                                  "evidence": 'CORUM: <a href="http://e">x</a> (2 genes)'})
    assert "<a href" not in hover and "&lt;a href=&quot;http://e&quot;&gt;" in hover


def _page(monkeypatch, root, **params) -> AppTest:
    monkeypatch.setenv("TXFM_BUNDLES", str(root))
    at = AppTest.from_file(MAIN, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    at.switch_page("views/neighbourhood.py").run()
    assert not at.exception and not at.error, texts(at.error)
    return at


def _tables(at) -> pd.DataFrame:
    """The neighbour table and the known partners outside the top k, as one table by gene."""
    return pd.concat([d.value for d in at.dataframe if "evidence" in d.value.columns]).set_index("gene")


def test_the_neighbour_table_names_sources_and_shared_sets(monkeypatch, evidence_dir):
    at = _page(monkeypatch, evidence_dir, bundle="evidence", gene="TP53", k="5")
    table = at.dataframe[0].value
    assert list(table.columns[:7]) == ["rank", "gene", "cosine", "known", "sources", "shared_sets", "evidence"]
    both = _tables(at)                                   # MDM2 and CDKN1A: in the top 5 or among the others
    assert both.loc["MDM2", "sources"] == "CORUM|StringDB"
    assert both.loc["MDM2", "evidence"] == "CORUM: TP53-MDM2 complex (3 genes)" and both.loc["MDM2", "shared_sets"] == 1
    assert both.loc["CDKN1A", "sources"] == "StringDB"
    assert both.loc["CDKN1A", "evidence"] == ("Reactome: REACTOME_P53_TARGETS (4 genes) | Hallmark: HALLMARK_P53_PATHWAY "
                                              "(7 genes)")
    assert {"MDM2", "CDKN1A"} <= set(both.index)
    # every neighbour's evidence is the index's answer for that pair (a neighbour in no set: 0 and "")
    sym = list(open_bundle(evidence_dir / "evidence").symbols)
    want = SetIndex.from_libraries(EVIDENCE_LIBRARIES, sym).evidence(0, [sym.index(g) for g in table["gene"]], DEFAULT)
    assert table["evidence"].tolist() == want["evidence"].tolist()
    assert table["shared_sets"].tolist() == want["shared_sets"].tolist()
    # the CSV export holds the same columns, read back by pandas
    back = pd.read_csv(io.BytesIO(table_csv(table.drop(columns=["name", "NCBI Gene", "GeneCards"]))), keep_default_na=False)
    assert back["evidence"].tolist() == table["evidence"].tolist()
    # picking KEGG as well adds its set to the pair
    at.multiselect(key="w_evidence_evidence").select("MSigDB_KEGG").run()
    assert _tables(at).loc["MDM2", "shared_sets"] == 2
    assert _tables(at).loc["MDM2", "evidence"].endswith("KEGG: KEGG_P53_SIGNALING (3 genes)")


def test_a_damaged_library_costs_the_evidence_not_the_page(monkeypatch, evidence_dir, tmp_path):
    """A GMT file that is not text: the neighbourhood and module pages say so in one line and still show the
    neighbours and known pairs (evidence empty)."""
    import shutil
    shutil.copytree(evidence_dir / "evidence", tmp_path / "evidence")
    gmt = tmp_path / "evidence" / "references" / "gmt" / "GO_BP.gmt"
    gmt.write_bytes(b"\xff" * gmt.stat().st_size)            # the same size: the validator's size check passes
    at = _page(monkeypatch, tmp_path, bundle="evidence", gene="TP53", k="5")
    assert "No gene-set evidence" in texts(at.warning) and "GO_BP.gmt" in texts(at.warning)
    table = at.dataframe[0].value
    assert len(table) == 5 and (table["shared_sets"] == 0).all() and (table["evidence"] == "").all()
    assert _tables(at).loc["MDM2", "sources"] == "CORUM|StringDB"
    at.switch_page("views/modules.py").run()
    assert not at.exception and not at.error and "No gene-set evidence" in texts(at.warning)
