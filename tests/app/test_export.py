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
