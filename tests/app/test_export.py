"""Exports re-read by independent parsers: GMT by hand, GraphML by networkx, CSV by pandas, JSON by json."""
import io
import json

import networkx as nx
import numpy as np
import pandas as pd

from app.export import gmt_bytes, graphml_bytes, table_csv, view_json
from common.gmt import gmt_sets
from app.network import similarity_graph
from app.neighbours import PairIndex, unit_rows


def test_gmt_round_trip_and_format():
    sets = {"module 1": ["TP53", "MDM2"], "odd\tname": ["A", "B\nC"]}
    data = gmt_bytes(sets, {"module 1": "p53 core"})
    lines = data.decode().splitlines()
    assert lines[0] == "module 1\tp53 core\tTP53\tMDM2"
    assert lines[1] == "odd name\tTxFM export\tA\tB C"          # whitespace inside fields collapsed
    assert gmt_sets(data.decode()) == {"module 1": ["TP53", "MDM2"], "odd name": ["A", "B C"]}


def test_graphml_opens_in_networkx_with_scalar_attributes():
    s = np.array([[1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32)
    pairs = PairIndex.from_pairs(pd.DataFrame({"source": ["CORUM"], "gene_a": ["TP53"], "gene_b": ["MDM2"]}),
                                 np.array(["TP53", "MDM2", "ACTB"]))
    g = similarity_graph(unit_rows(s, 2), np.array([0, 1, 2]), np.array(["TP53", "MDM2", "ACTB"]), 0.5, pairs, centre=0)
    g.graph["ranks"] = [1, 2]                                    # a list must become a string
    back = nx.read_graphml(io.BytesIO(graphml_bytes(g)))
    assert set(back.nodes) == {"TP53", "MDM2", "ACTB"}
    assert list(back.edges) == [("TP53", "MDM2")]                # cos(TP53, ACTB) = 0 < 0.5
    e = back.edges["TP53", "MDM2"]
    assert e["known"] is True and e["sources"] == "CORUM"
    assert abs(e["cosine"] - 0.9 / np.hypot(0.9, 0.1)) < 1e-6
    assert back.nodes["TP53"]["is_centre"] is True and back.nodes["ACTB"]["row"] == 2
    assert back.graph["ranks"] == "1|2"


def test_csv_and_view_json():
    df = pd.DataFrame({"gene": ["TP53", "MDM2"], "cosine": [1.0, 0.5]})
    pd.testing.assert_frame_equal(pd.read_csv(io.BytesIO(table_csv(df))), df)
    doc = json.loads(view_json("Gene neighbourhood", "demo", {"gene": "TP53", "k": np.int64(20)}, ["TP53", "MDM2"]))
    assert doc["format"] == "txfm-app-view" and doc["params"] == {"gene": "TP53", "k": 20}
    assert doc["genes"] == ["TP53", "MDM2"] and doc["bundle"] == "demo"


def test_module_network_export_is_whole_or_says_it_is_not():
    """A module's GraphML holds all its genes up to the cap; beyond it, the file states the selection.
    No node attribute is NaN (Cytoscape shows NaN as a broken value)."""
    from app.network import module_network

    rng = np.random.default_rng(0)
    x = unit_rows(rng.normal(size=(100, 8)).astype(np.float32), 8)
    symbols = np.array([f"G{i}" for i in range(100)])
    rows = np.arange(10, 90)                                     # an 80-gene module
    whole = nx.read_graphml(io.BytesIO(graphml_bytes(module_network(x, rows, symbols, 0.5, None, 2000))))
    assert set(whole.nodes) == {f"G{i}" for i in rows}
    assert whole.graph["selection"] == "all genes of the module" and whole.graph["genes_in_network"] == 80
    part = module_network(x, rows, symbols, 0.5, None, 60)
    core = np.argsort(-(x[rows] @ x[rows].mean(0)))[:60]         # independent: the 60 highest cosines to the mean
    assert set(part.nodes) == {f"G{rows[i]}" for i in core}
    back = nx.read_graphml(io.BytesIO(graphml_bytes(part)))
    assert back.graph["genes_in_module"] == 80 and back.graph["genes_in_network"] == 60
    assert back.graph["selection"].startswith("the 60 most central of 80 genes")
    for _, d in back.nodes(data=True):
        assert "similarity_to_centre" not in d and all(not (isinstance(v, float) and np.isnan(v)) for v in d.values())
