"""PCA baseline against sklearn on dense data; CLI help, embed and a diverging run."""
import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from txfm.__main__ import build_parser, main
from txfm.baseline import PCAConfig, fit_pca
from txfm.config import ModelConfig, TrainConfig
from txfm.corpus import Corpus
from txfm.inference import gene_matrices
from txfm.preprocessing import library_normalize_log1p
from txfm.trainer import TrainingDiverged, resolve_precision, train


def test_pca_baseline_equals_sklearn_on_dense(tiny_corpus):
    c = Corpus(tiny_corpus)
    cfg = PCAConfig(n_components=5, min_cells=1, n_iter=20)
    pca = fit_pca(c, cfg)
    x, _ = c.read_rows(np.arange(c.n_samples))
    z = library_normalize_log1p(x.toarray().astype(np.float64), 1e5)[:, pca.gene_index]
    z = (z - z.mean(0)) / z.std(0, ddof=1)
    ref = PCA(n_components=5, svd_solver="full").fit(z)
    np.testing.assert_allclose(pca.explained_variance, ref.explained_variance_, rtol=1e-4)
    # axes equal up to sign
    np.testing.assert_allclose(np.abs(np.sum(pca.components * ref.components_, axis=1)), 1.0, atol=1e-4)
    scores = pca.transform(x)
    np.testing.assert_allclose(np.abs(scores), np.abs(ref.transform(z)), rtol=1e-3, atol=1e-3)


def test_pca_baseline_file_gives_a_gene_matrix(tiny_corpus, tmp_path):
    assert main(["baseline-pca", "--corpus", tiny_corpus, "--out", str(tmp_path / "pca.pt"),
                 "--n-components", "4", "--min-cells", "1"]) == 0
    mats, genes, meta = gene_matrices(tmp_path / "pca.pt")
    assert mats["pca"].shape == (len(genes), 4) and meta["kind"] == "pca"


def test_help_documents_every_option():
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for cls in (TrainConfig, ModelConfig):
        for f in fields(cls):
            if f.name == "n_genes":
                continue
            opt = "--" + f.name.replace("_", "-")
            assert opt in text, opt
    assert "(default: None)" not in text  # every option states its default (or that it is required)


def test_embed_cli_on_a_corpus(tiny_corpus, tmp_path):
    assert main(["train", "--corpus", tiny_corpus, "--out", str(tmp_path / "run"), "--dim", "16", "--depth", "1",
                 "--heads", "2", "--reveal", "8", "--batch-size", "8", "--max-steps", "2"]) == 0
    assert main(["embed", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--input", tiny_corpus,
                 "--out", str(tmp_path / "emb.npz"), "--all-layers"]) == 0
    with np.load(tmp_path / "emb.npz", allow_pickle=False) as z:
        assert z["cls"].shape == (96, 16) and z["layers"].shape == (96, 1, 16) and z["sample_id"][0] == "a:0"


def test_non_finite_loss_stops_with_a_clear_message(tiny_corpus, tmp_path):
    tc = TrainConfig(corpus=tiny_corpus, out=str(tmp_path / "run"), reveal=8, batch_size=8, max_steps=3, lr=1e30)
    mc = ModelConfig(n_genes=40, dim=16, depth=1, heads=2, activation="relu")
    with pytest.raises(TrainingDiverged, match="loss is not finite at step"):
        train(tc, mc, quiet=True)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_cli_reports_bad_corpus_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "txfm", "train", "--corpus", str(tmp_path / "nope"), "--out",
                        str(tmp_path / "run")], capture_output=True, text=True)
    assert r.returncode == 2 and "not a corpus (no manifest.json)" in r.stderr and "Traceback" not in r.stderr


def test_precision_resolution():
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"   # never a load-dependent timing


def test_the_run_records_its_resolved_precision(tiny_corpus, tmp_path):
    import json
    tc = TrainConfig(corpus=tiny_corpus, out=str(tmp_path / "run"), reveal=8, batch_size=8, max_steps=1)
    train(tc, ModelConfig(n_genes=40, dim=16, depth=1, heads=2), quiet=True)
    used = json.loads((tmp_path / "run" / "config.json").read_text())["train"]["precision"]
    assert used in ("fp32", "bf16")
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["train_config"]["precision"] == used
