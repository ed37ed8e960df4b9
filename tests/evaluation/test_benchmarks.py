"""The two benchmarks end to end on synthetic files: every embedding kind, outputs, errors."""
import json

import numpy as np
import pandas as pd
import pytest

from evaluation.benchmarks import run_celltype, run_perturbation
from evaluation.perturbation import PerturbationParams

from .conftest import write_screen_h5ad


@pytest.fixture(scope="module")
def pca_file(eval_corpus, tmp_path_factory):
    from txfm.baseline import PCAConfig, run_baseline

    return str(run_baseline(eval_corpus, tmp_path_factory.mktemp("pca") / "pca.pt", PCAConfig(n_components=12, min_cells=1)))


def test_perturbation_benchmark_on_an_h5ad(tiny_checkpoint, pca_file, eval_references, tmp_path):
    h5 = write_screen_h5ad(tmp_path / "screen.h5ad")
    out = tmp_path / "res"
    t = run_perturbation(str(h5), out, tiny_checkpoint, pca_file, eval_references, label_column="grna_target",
                         batch_column="bio_rep", params=PerturbationParams(n_null=2000))
    assert t["embedding"].tolist() == ["txfm", "pca_baseline", "log1p_counts", "txfm_shuffled_labels"]
    row = t.set_index("embedding")
    assert row.loc["log1p_counts", "consistency"] == pytest.approx(0.6)       # G1..G3 planted of G1..G5
    assert (row["n_perturbations"] == 5).all() and (row["mean_recall_pairs"] == 1).all()  # only G1-G2
    assert row.loc["pca_baseline", "dims_in"] == 12 and row.loc["txfm", "dims_in"] == 16
    cons = pd.read_csv(out / "consistency.csv")
    assert len(cons) == 4 * 5 and set(cons["embedding"]) == set(t["embedding"])
    info = json.loads((out / "run.json").read_text())
    assert info["embeddings"]["txfm"]["genes_mapped"] == 60 and info["label_counts"]["non-targeting"] == 150
    assert (out / "perturbation.md").read_text().startswith("| embedding |")


def test_perturbation_benchmark_from_a_corpus_dataset_and_bad_inputs(eval_corpus, tmp_path):
    t = run_perturbation(eval_corpus, tmp_path / "r", dataset="screen", shuffled=False,
                         params=PerturbationParams(n_null=1000))
    assert t["embedding"].tolist() == ["log1p_counts"] and t.loc[0, "consistency"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="pass --dataset"):
        run_perturbation(eval_corpus, tmp_path / "r2")
    with pytest.raises(ValueError, match="no obs column 'guide'"):
        run_perturbation(eval_corpus, tmp_path / "r3", dataset="screen", label_column="guide")
    with pytest.raises(ValueError, match="--control"):
        run_perturbation(eval_corpus, tmp_path / "r4", dataset="screen", params=PerturbationParams(control="NT"))
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()


def test_celltype_benchmark_rows_and_columns(tiny_checkpoint, pca_file, tmp_path):
    h5 = write_screen_h5ad(tmp_path / "screen.h5ad")
    t = run_celltype([f"{h5}:grna_target"], tmp_path / "ct", tiny_checkpoint, pca_file, dataset_pca=10)
    assert t["embedding"].tolist() == ["txfm", "pca_baseline", "dataset_pca10", "txfm_shuffled_labels"]
    assert (t["n_labels"] == 6).all()                          # 5 targets + controls; "unassigned" ignored
    for c in ("knn_accuracy", "ari@1", "nmi@1"):
        assert np.isfinite(t[c]).all()
    assert (tmp_path / "ct" / "celltype.md").is_file()
    with pytest.raises(ValueError, match="PATH:LABEL_COLUMN"):
        run_celltype([str(h5)], tmp_path / "ct2")
