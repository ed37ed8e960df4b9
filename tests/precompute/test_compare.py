"""Comparison of two bundles: the alignment recovers a known rotation, the comparison folder."""
import json

import numpy as np
import pandas as pd

from precompute.bundle.compare import align_layout, compare_bundles
from precompute.params import BundleParams
from precompute.bundle.synthetic import make_synthetic_bundle


def test_procrustes_recovers_rotation_scale_shift():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((50, 2))
    th = 0.7
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    mov = (ref @ rot) * 3.0 + np.array([5.0, -2.0])
    np.testing.assert_allclose(align_layout(ref, mov, np.arange(50)), ref, atol=1e-9)


def test_compare_two_bundles(tmp_path):
    fast = BundleParams(umap_epochs=20, null_size=150, n_nulls=2, k=8, resolutions=(1.0,))
    a = make_synthetic_bundle(tmp_path / "a", n_genes=400, params=fast, seed=0)
    b = make_synthetic_bundle(tmp_path / "b", n_genes=400, params=fast, seed=1)
    out = compare_bundles(a, a, tmp_path / "self")
    c = json.loads((out / "comparison.json").read_text())
    assert c["genes"] == {"a": 400, "b": 400, "shared": 400}
    assert c["summary"]["codebook__codebook"]["median_jaccard"] == 1.0     # a bundle vs itself
    lay = pd.read_parquet(out / "layout" / "codebook__codebook.parquet")
    np.testing.assert_allclose(lay[["x_a", "y_a"]].to_numpy(), lay[["x_b", "y_b"]].to_numpy(), atol=1e-4)
    out2 = compare_bundles(a, b, tmp_path / "ab")
    c2 = json.loads((out2 / "comparison.json").read_text())
    # different seeds plant different blocks: neighbourhoods barely overlap
    assert c2["summary"]["decoder__decoder"]["median_jaccard"] < 0.2
    rec = pd.read_parquet(out2 / "recall.parquet")
    assert set(rec.side) == {"A", "B"} and c2["summary"]["decoder__decoder"]["recall_n_genes"] > 0
    same = pd.read_parquet(out / "recall.parquet")                 # a bundle vs itself: the same figures
    for _, grp in same.groupby(["pair", "source"]):
        assert grp.recall_mean.nunique() == 1
    mods = pd.read_parquet(out / "modules" / "codebook__codebook.res_1.parquet")
    assert (mods.kept == 1.0).all() and c["summary"]["codebook__codebook"]["modules"]["res_1"]["adjusted_rand"] == 1.0
    # the app's Compare page and this folder give the same per-gene overlap (one comparison)
    from precompute.bundle.reader import open_bundle
    from precompute.bundle.compare import neighbourhood_change
    ba, bb = open_bundle(a), open_bundle(b)
    page = neighbourhood_change(ba.symbols, ba.knn("decoder")[0], bb.symbols, bb.knn("decoder")[0], 8)
    folder = pd.read_parquet(out2 / "overlap" / "decoder__decoder.parquet")
    np.testing.assert_allclose(page.set_index("gene").loc[folder.symbol, "jaccard"].to_numpy(), folder.jaccard)
