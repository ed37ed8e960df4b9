"""A bundle from a tiny trained TxFM checkpoint and from the PCA baseline file validates."""
import json

import numpy as np
import pandas as pd
import pytest

from precompute.cli import main
from precompute.bundle.synthetic import write_synthetic_references
from precompute.bundle.validate import validate_bundle


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from txfm.config import TrainConfig, model_config
    from txfm.corpus import CorpusWriter
    from txfm.trainer import train

    root = tmp_path_factory.mktemp("ck")
    rng = np.random.default_rng(0)
    n, g = 128, 120
    programs = rng.integers(0, 6, g)
    counts = rng.poisson(rng.gamma(2.0, 1.0, (n, 6))[:, programs] * rng.gamma(2.0, 1.0, g) * 3)
    genes = [f"SYN{i:05d}" for i in range(g)]
    with CorpusWriter(root / "corpus", genes, [f"ENSG9{i:010d}" for i in range(g)], shard_size=64) as w:
        d = w.add_dataset("toy", np.arange(g))
        w.add_samples(d, counts, pd.DataFrame({"batch": np.repeat(["a", "b"], n // 2)}))
    cfg = TrainConfig(corpus=str(root / "corpus"), out=str(root / "run"), reveal=64, batch_size=32,
                      max_steps=4, val_every=0, log_every=1, save_every=4, device="cpu")
    ck = train(cfg, model_config("tiny", g, dim=32, depth=1, heads=2, decoder_depth=1), quiet=True)
    ref = write_synthetic_references(root / "refs", genes, programs, pairs_per_source=60)
    return root, ck, ref


def test_bundle_from_tiny_checkpoint_validates(trained, tmp_path):
    root, ck, ref = trained
    out = tmp_path / "bundle"
    rc = main(["run", "--checkpoint", str(ck), "--references", str(ref), "--out", str(out), "--quiet",
               "--k", "8", "--null-size", "60", "--umap-epochs", "20", "--resolutions", "1"])
    assert rc == 0 and validate_bundle(out) == []
    m = json.loads((out / "manifest.json").read_text())
    assert m["source"]["kind"] == "txfm" and len(m["source"]["sha256"]) == 64
    assert m["matrices"]["codebook"]["shape"] == [120, 31]
    assert m["matrices"]["decoder"]["shape"][0] == 120
    assert m["source"]["samples_seen"] == 4 * 32
    genes = pd.read_parquet(out / "genes.parquet")
    assert genes.ensembl_id.iloc[7] == "ENSG90000000007"


def _numpy_pca_file(path, seed):
    """A PCA baseline file in txfm's format, written from a numpy PCA of 120 genes named SYN00000...,
    so the tests depend only on the file format (txfm.baseline.PCABaseline), not on txfm's fitting."""
    from txfm.baseline import PCABaseline, PCAConfig

    rng = np.random.default_rng(seed)
    x = np.log1p(rng.poisson(3.0, (80, 120)).astype(float))
    mean, sd = x.mean(0), x.std(0, ddof=1)
    _, s, vt = np.linalg.svd((x - mean) / sd, full_matrices=False)
    genes = [f"SYN{i:05d}" for i in range(120)]
    PCABaseline(genes, [""] * 120, np.arange(120), mean, sd, vt[:16], s[:16] ** 2 / 79,
                PCAConfig(n_components=16), 80).save(path)
    return path


def test_bundle_from_pca_baseline_file(trained, tmp_path):
    root, _, ref = trained
    pca = _numpy_pca_file(tmp_path / "pca.pt", seed=1)
    out = tmp_path / "pca_bundle"
    assert main(["run", "--checkpoint", str(pca), "--baseline", "pca", "--references", str(ref),
                 "--out", str(out), "--quiet", "--k", "8", "--null-size", "60", "--umap-epochs", "20",
                 "--resolutions", "1"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["source"]["kind"] == "pca" and m["matrices"]["pca"]["rank"] == 16
    assert validate_bundle(out) == []


def test_results_along_a_run_vs_pca(trained, tmp_path):
    from evaluation.results import best_table, evaluate, write_results_doc

    root, ck, ref = trained
    _numpy_pca_file(tmp_path / "pca.pt", seed=2)
    genes = [f"SYN{i:05d}" for i in range(120)]
    table, info = evaluate(ck.parent, tmp_path / "pca.pt", ref, n_nulls=2, null_size=50)
    # honest population: the genes the corpus measures well (from the checkpoint's gene_support)
    from txfm.inference import gene_matrices
    support = gene_matrices(ck)[1]["support"].to_numpy()
    assert info["genes"] == int((support >= min(2, support.max())).sum()) <= 120
    assert info["population"].startswith("genes measured well")
    assert set(table.matrix) == {"codebook", "decoder", "pca"}
    best = best_table(table).set_index("matrix")
    assert best.loc["pca", "rank"] in (8, 16) and 0 <= best.loc["codebook", "combined"] <= 1
    ptable, pinfo = evaluate(ck.parent, tmp_path / "pca.pt", ref, n_nulls=2, null_size=50,
                             whole_vocabulary=True, final_only=True)
    assert pinfo["genes"] == 120 and pinfo["population"] == "whole vocabulary"
    assert ptable.checkpoint.nunique() == 2  # the PCA file and the final checkpoint only
    doc = tmp_path / "results.md"
    write_results_doc(doc, table, info, "pytest", ptable, pinfo)
    text = doc.read_text()
    assert "| pca |" in text and "results-learning-curve.png" in text
    assert f"over the {120:,} genes of the whole shared vocabulary" in text
    assert (tmp_path / "results-recall-vs-rank.png").stat().st_size > 1000
    # the command (python -m evaluation results) writes the same table
    import subprocess
    import sys
    cli_doc = tmp_path / "cli" / "results.md"
    cli_doc.parent.mkdir()
    r = subprocess.run([sys.executable, "-m", "evaluation", "results", "--run", str(ck.parent), "--pca",
                        str(tmp_path / "pca.pt"), "--references", str(ref), "--doc", str(cli_doc), "--n-nulls", "2",
                        "--null-size", "50"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cli_text = cli_doc.read_text()
    assert "python -m evaluation results --run" in cli_text
    assert [ln for ln in cli_text.splitlines() if ln.startswith("| pca |")] == \
        [ln for ln in text.splitlines() if ln.startswith("| pca |")]
