"""Every page x every gene matrix x rank in {1, chosen, width} on bundles written by the real
`precompute run` (a TxFM checkpoint with its codebook at a chosen rank below the width and its decoder
at the width, and a PCA baseline whose chosen rank is its width -- the case that used to fail with
"output array is read-only")."""
import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

MAIN = str(Path(__file__).resolve().parents[2] / "app" / "main.py")
PAGES = ["overview", "gene_map", "neighbourhood", "modules", "enrichment", "compare", "subspaces"]


def _cases():
    # (bundle, matrix); ranks are resolved from the bundle at run time.
    return [("txfm", "codebook"), ("txfm", "decoder"), ("pca", "pca")]


def _ranks(bundle: Path, matrix: str) -> dict[str, int]:
    import numpy as np
    m = json.loads((bundle / "manifest.json").read_text())
    width = int(np.load(bundle / "subspaces" / f"{matrix}.npy", mmap_mode="r").shape[1])
    return {"smallest": 1, "chosen": int(m["matrices"][matrix]["rank"]), "width": width}


def unescape(md: str) -> str:
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", md)


@pytest.mark.parametrize("which", ["smallest", "chosen", "width"])
@pytest.mark.parametrize("bundle,matrix", _cases())
def test_every_page_every_matrix_every_rank(monkeypatch, real_bundles, bundle, matrix, which):
    ranks = _ranks(real_bundles[bundle], matrix)
    rank = ranks[which]
    monkeypatch.setenv("TXFM_BUNDLES", str(real_bundles["root"]))
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.query_params.update({"bundle": [bundle, f"{bundle}-b"], "matrix": matrix, "rank": str(rank),
                            "gene": "GENE0"})
    at.run()
    for page in PAGES:
        if page != "overview":
            at.switch_page(f"views/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert not at.error, (page, [e.value for e in at.error])
        if page == "neighbourhood":
            sub = unescape(at.subheader[0].value)
            assert f"GENE0: 20 nearest genes in `{matrix}` at rank {rank}" in sub, sub
            assert len(at.dataframe[0].value) == 20
            assert len(at.get("plotly_chart")) == 1            # the ego network (unit rows at this rank)
        if page == "subspaces":
            assert at.slider(key=f"w_rank_{bundle}_{matrix}").value == rank
            assert any(f"at rank {rank}:" in unescape(m.value) for m in at.markdown)   # top-10 neighbours
        if page == "modules":
            assert len(at.get("plotly_chart")) == 1            # the module network at the chosen rank
    # the view survives every page switch: a value at its default (the first matrix, the chosen rank) is
    # left out of the URL, any other is kept
    url = dict(at.query_params)
    first = json.loads((real_bundles[bundle] / "manifest.json").read_text())["matrices"]
    assert url.get("matrix", next(iter(first))) == matrix
    assert url.get("rank", str(ranks["chosen"])) == str(rank)
    assert ("rank" in url) == (rank != ranks["chosen"])


def test_rank_slider_at_its_maximum(monkeypatch, real_bundles):
    """Moving the slider to the width (not only a deep link) works on every matrix."""
    monkeypatch.setenv("TXFM_BUNDLES", str(real_bundles["root"]))
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.query_params.update({"bundle": "txfm", "gene": "GENE3", "matrix": "codebook", "rank": "1"})
    at.run()
    at.switch_page("views/neighbourhood.py").run()
    width = _ranks(real_bundles["txfm"], "codebook")["width"]
    at.slider(key="w_rank_txfm_codebook").set_value(width).run()
    assert not at.exception and not at.error
    assert f"at rank {width}" in at.subheader[0].value


def test_recall_pages_name_the_honest_population(monkeypatch, real_bundles):
    """Overview, Compare and Subspaces say which genes the recall was measured on, and how many."""
    import pandas as pd
    rec = pd.read_parquet(real_bundles["txfm"] / "recall" / "recall.parquet")
    n = int(rec["n_genes"].iloc[0])
    assert n == len(pd.read_parquet(real_bundles["txfm"] / "genes.parquet").query("support >= 1"))
    monkeypatch.setenv("TXFM_BUNDLES", str(real_bundles["root"]))
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.query_params.update({"bundle": ["txfm", "txfm-b"]})
    at.run()
    for page in ("overview", "compare", "subspaces"):
        if page != "overview":
            at.switch_page(f"views/{page}.py").run()
        texts = [unescape(c.value) for c in at.caption]
        said = f"on the same {n:,} genes" if page == "compare" else f"Recall measured on {n:,} genes"
        assert any(said in t for t in texts), (page, texts)


def test_training_run_page(monkeypatch, real_bundles):
    """Recall per checkpoint against samples seen, a gene step by step (entered/left computed here from the
    stored kNN of each step's bundle), the map at a step chosen in the URL."""
    import numpy as np
    from precompute.bundle.reader import open_bundle, read_series
    series_dir = real_bundles["root"] / "run-series"
    steps = read_series(series_dir)["checkpoints"]
    monkeypatch.setenv("TXFM_BUNDLES", str(real_bundles["root"]))
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.query_params.update({"bundle": "txfm", "gene": "GENE5", "step": "2"})
    at.run()
    at.switch_page("views/run.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    curve = at.dataframe[0].value
    assert curve["step"].tolist() == [2, 4] and curve["samples seen"].tolist() == [32, 64]
    best = json.loads((series_dir / steps[1]["bundle"] / "recall" / "best.json").read_text())
    assert abs(curve["decoder"].iloc[1] - best["decoder"]["recall"]) < 1e-12
    k = at.slider(key="run_k").value
    at.selectbox(key="run_matrix").set_value("codebook").run()
    lists = []
    for c in steps:
        b = open_bundle(series_dir / c["bundle"])
        r = int(np.flatnonzero(b.symbols == "GENE5")[0])
        lists.append([str(b.symbols[j]) for j in b.knn("codebook")[0][r, :k]])
    table = at.dataframe[1].value
    assert table["neighbours"].tolist() == [", ".join(x) for x in lists]
    assert table["entered"].iloc[1] == ", ".join(g for g in lists[1] if g not in lists[0])
    assert table["left"].iloc[1] == ", ".join(g for g in lists[0] if g not in lists[1])
    assert at.select_slider(key="run_step").value == "step 2"          # the step from the URL
    assert len(at.get("plotly_chart")) == 2                            # the curve and the map


def test_training_run_page_without_series(monkeypatch, bundles_dir):
    monkeypatch.setenv("TXFM_BUNDLES", str(bundles_dir))
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    at.switch_page("views/run.py").run()
    assert not at.exception
    assert "No run series" in at.info[0].value and "precompute series --run" in at.code[0].value
