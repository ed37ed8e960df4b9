"""Whole bundles: synthetic and from a tiny trained checkpoint; validation; resume; atomicity."""
import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from common.errors import UserError
from precompute.bundle.files import BundleError, partial_dir
from precompute.params import BundleParams
from precompute.pipeline import build_bundle
from precompute.bundle.synthetic import make_synthetic_bundle, synthetic_matrices, write_synthetic_references
from precompute.bundle.validate import check_bundle, validate_bundle

FAST = BundleParams(umap_epochs=30, null_size=200, n_nulls=2, k=10, resolutions=(1.0,))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_synthetic_bundle(tmp_path_factory.mktemp("b") / "syn", n_genes=600, params=FAST)


def copy(bundle, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(bundle, dst)
    return dst


def test_synthetic_bundle_validates_and_follows_contract(bundle):
    assert validate_bundle(bundle) == []
    m = check_bundle(bundle)
    assert m["format"] == "txfm-bundle" and m["format_version"] == 1
    assert m["matrices"]["codebook"] == {"shape": [600, 63], "rank": 32}
    assert m["matrices"]["decoder"] == {"shape": [600, 128], "rank": 128}   # paper 256, capped at width
    genes = pd.read_parquet(bundle / "genes.parquet")
    assert list(genes.columns) == ["gene", "symbol", "ensembl_id", "aliases", "name", "entrez_id"]
    assert genes.aliases.iloc[3] == "SYNA3|ALT-SYN00003"
    idx = np.load(bundle / "knn" / "codebook.indices.npy")
    assert idx.shape == (600, 10) and idx.dtype == np.int32
    rec = pd.read_parquet(bundle / "recall" / "recall.parquet")
    assert set(rec.source) == {"CORUM", "huMAP", "Reactome", "SIGNOR", "StringDB", "combined", "mean_of_sources"}
    best = json.loads((bundle / "recall" / "best.json").read_text())
    mean = rec[(rec.matrix == "codebook") & (rec.source == "mean_of_sources")]
    assert best["codebook"]["recall"] == pytest.approx(mean.recall_mean.max())
    assert best["codebook"]["source"] == "mean_of_sources"
    # mean_of_sources is the plain mean of the five per-source rows at each rank
    at = rec[(rec.matrix == "codebook") & (rec["rank"] == 32)].set_index("source").recall_mean
    assert at["mean_of_sources"] == pytest.approx(at[["CORUM", "huMAP", "Reactome", "SIGNOR", "StringDB"]].mean())
    comb = rec[(rec.matrix == "codebook") & (rec.source == "combined")]
    # planted pairs (70% inside blocks) are recalled far above chance
    assert comb.recall_mean.max() > 0.4 and comb.chance.between(0.05, 0.15).all()
    enr = pd.read_parquet(bundle / "enrichment" / "codebook.parquet")
    top = enr[enr.library == "SYN_BLOCKS"].sort_values("p").iloc[0]
    assert top.q < 1e-6            # modules are the planted blocks
    assert (bundle / "training" / "metrics.parquet").is_file()
    assert not partial_dir(bundle).exists()


def test_tampered_bundle_is_rejected(bundle, tmp_path):
    b = copy(bundle, tmp_path)
    arr = np.load(b / "matrices" / "codebook.npy")
    arr[0, 0] += 1
    np.save(b / "matrices" / "codebook.npy", arr)   # same size, different bytes
    problems = validate_bundle(b)
    assert any("sha256 differs" in p and "codebook.npy" in p for p in problems)
    assert validate_bundle(b, verify_hashes=False) == []   # the fast mode checks sizes only
    with pytest.raises(BundleError, match="not valid"):
        check_bundle(b)


def test_truncated_bundle_is_rejected(bundle, tmp_path):
    b = copy(bundle, tmp_path)
    (b / "umap" / "decoder.parquet").unlink()
    with open(b / "knn" / "codebook.sims.npy", "r+b") as f:
        f.truncate(100)
    problems = validate_bundle(b, verify_hashes=False)
    assert any("decoder.parquet" in p and "missing" in p for p in problems)
    assert any("codebook.sims.npy" in p and "bytes" in p for p in problems)
    (b / "manifest.json").unlink()
    assert "no manifest.json" in validate_bundle(b)[0]


def test_unknown_format_and_added_file_are_rejected(bundle, tmp_path):
    b = copy(bundle, tmp_path)
    (b / "extra.txt").write_text("x")
    assert any("not listed" in p for p in validate_bundle(b))
    m = json.loads((b / "manifest.json").read_text())
    m["format_version"] = 99
    (b / "manifest.json").write_text(json.dumps(m))
    assert "format_version 99" in validate_bundle(b)[0]


def _inputs(tmp_path, n=300):
    mats, genes, blocks = synthetic_matrices(n, {"pca": 40}, n_blocks=6, seed=3)
    ref = write_synthetic_references(tmp_path / "refs", genes.symbol.tolist(), blocks, pairs_per_source=200)
    return mats, genes, ref


def test_rerun_skips_finished_steps_and_reruns_changed_ones(tmp_path):
    mats, genes, ref = _inputs(tmp_path)
    out = tmp_path / "b"
    src = {"kind": "pca", "checkpoint": "x"}
    build_bundle(mats, genes, ref, out, src, FAST, progress=False)
    m1 = json.loads((out / "manifest.json").read_text())
    build_bundle(mats, genes, ref, out, src, FAST, progress=False)
    m2 = json.loads((out / "manifest.json").read_text())
    assert m1["steps"] == m2["steps"]                      # nothing recomputed
    with pytest.raises(UserError, match="step 'modules' has other inputs or parameters.*--overwrite"):
        build_bundle(mats, genes, ref, out, src, replace(FAST, resolutions=(0.5, 1.0)), progress=False)
    assert json.loads((out / "manifest.json").read_text()) == m2      # refused: untouched
    build_bundle(mats, genes, ref, out, src, replace(FAST, resolutions=(0.5, 1.0)), progress=False,
                 overwrite=True)
    m3 = json.loads((out / "manifest.json").read_text())
    for s in ("matrices", "subspaces", "recall", "knn", "umap"):
        assert m3["steps"][s] == m1["steps"][s]
    assert m3["steps"]["modules"]["finished"] >= m1["steps"]["modules"]["finished"]
    assert m3["steps"]["modules"]["params"]["resolutions"] == [0.5, 1.0]
    assert list(pd.read_parquet(out / "modules" / "pca.parquet").columns) == ["gene", "res_0.5", "res_1"]
    assert validate_bundle(out) == []
    with pytest.raises(UserError, match="--overwrite"):
        build_bundle(mats, genes, ref, out, src, FAST, force=True, progress=False)
    build_bundle(mats, genes, ref, out, src, FAST, force=True, progress=False, overwrite=True)
    assert validate_bundle(out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "refs"]      # no staging left


def test_bad_input_leaves_no_output(tmp_path):
    mats, genes, ref = _inputs(tmp_path)
    mats["pca"][5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        build_bundle(mats, genes, ref, tmp_path / "b", {"kind": "pca"}, FAST, progress=False)
    assert not (tmp_path / "b").exists()
    dup = genes.copy()
    dup.loc[1, "symbol"] = dup.loc[0, "symbol"]
    with pytest.raises(ValueError, match="unique"):
        build_bundle({"pca": np.ones((300, 4))}, dup, ref, tmp_path / "b", {"kind": "pca"}, FAST)


def test_interrupted_build_leaves_nothing_behind(tmp_path, monkeypatch):
    mats, genes, ref = _inputs(tmp_path)
    out = tmp_path / "b"
    import precompute.steps as steps

    def boom(ctx):
        raise RuntimeError("interrupted")
    monkeypatch.setattr(steps, "umap_step", boom)
    with pytest.raises(RuntimeError):
        build_bundle(mats, genes, ref, out, {"kind": "pca"}, FAST, progress=False)
    assert not out.exists() and not partial_dir(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["refs"]      # no staging folder left
    monkeypatch.undo()
    build_bundle(mats, genes, ref, out, {"kind": "pca"}, FAST, progress=False)
    assert validate_bundle(out) == [] and not partial_dir(out).exists()


def test_planted_bundle_command_follows_the_contract(tmp_path):
    """`precompute synthetic --planted` (the app's fixture and benchmark bundle) validates, plants the
    named programs, scores recall with the pipeline's rule, and refuses to replace an existing bundle."""
    import subprocess
    import sys

    from precompute.bundle import files as bundle_files
    from precompute.bundle.recall import best_rank

    out = tmp_path / "planted"
    args = [sys.executable, "-m", "precompute", "synthetic", "--planted", "--out", str(out), "--n-genes", "300",
            "--k", "10"]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert validate_bundle(out) == []
    genes = pd.read_parquet(out / bundle_files.GENES)
    assert {"TP53", "ISG15", "RPL3"} <= set(genes.symbol) and "p53" in genes.set_index("symbol").aliases["TP53"]
    idx = np.load(out / bundle_files.knn_files("decoder")[0])
    p53 = genes.index[genes.symbol == "MDM2"][0]
    # MDM2's neighbours are mostly its planted program (the first 12 genes, the p53 pathway)
    assert np.mean(idx[p53] < 12) > 0.5
    best = json.loads((out / bundle_files.BEST).read_text())
    rec = pd.read_parquet(out / bundle_files.RECALL)
    assert best["decoder"]["rank"] == int(best_rank(rec[rec.matrix == "decoder"])["rank"])
    assert best["decoder"]["recall"] > 0.3            # planted programs are recalled well above chance (0.10)
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 2 and "already exists" in r.stderr
    small = args[:args.index("--out")] + ["--out", str(tmp_path / "small"), "--n-genes", "10"]
    r = subprocess.run(small, capture_output=True, text=True)
    assert r.returncode == 2 and "--n-genes 10: must be >= 60" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["planted"]      # no staging folder left behind
