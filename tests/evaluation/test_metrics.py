"""Cross-batch kNN retrieval, linear probe, recall of perturbation means, cell-type metrics."""
import numpy as np
import pandas as pd
import pytest

from evaluation.celltype import CellTypeParams, evaluate_celltypes, knn_vote
from evaluation.perturbation import PerturbationParams, knn_cross_batch, linear_probe, mean_embedding_recall


def test_knn_retrieval_searches_other_batches_only():
    z = np.array([[1, 0], [0, 1],                 # r1: A, B
                  [1, 0.1], [0.1, 1], [1, -0.05]])  # r2: A, B, B (the last one looks like A)
    labels = np.array(["A", "B", "A", "B", "B"])
    batch = np.array(["r1", "r1", "r2", "r2", "r2"])
    out = knn_cross_batch(z, labels, batch, ks=(1, 2))
    # nearest cross-batch cells: 0 -> 4 (B, miss), 1 -> 3 (hit), 2 -> 0 (hit), 3 -> 1 (hit), 4 -> 0 (A, miss)
    assert out["knn_top1_micro"] == pytest.approx(3 / 5)
    assert out["knn_top1"] == pytest.approx((1 / 2 + 2 / 3) / 2)   # per label: A 1/2, B 2/3
    assert out["knn_top2"] == pytest.approx(1.0)                   # 0 -> {4, 2}, 4 -> {0, 1}
    with pytest.raises(ValueError, match="two batches"):
        knn_cross_batch(z, labels, np.array(["r1"] * 5))


def test_linear_probe_on_separable_and_on_shuffled_labels():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)) * 5
    lab = np.repeat(np.arange(4), 60)
    z = centres[lab] + rng.normal(size=(240, 8))
    batch = np.tile(["a", "b", "c"], 80)
    labels = np.array([f"L{i}" for i in lab])
    assert linear_probe(z, labels, batch)["probe_balanced_accuracy"] == pytest.approx(1.0)
    shuffled = linear_probe(z, rng.permutation(labels), batch)["probe_balanced_accuracy"]
    assert shuffled < 0.45                                           # chance is 0.25


def test_recall_of_perturbation_means_finds_planted_pairs():
    rng = np.random.default_rng(2)
    dirs = rng.normal(size=(30, 10))
    for a, b in [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]:
        dirs[b] = dirs[a]                                              # related targets: same mean direction
    names = [f"T{i:02d}" for i in range(30)]
    z = np.repeat(dirs, 4, axis=0) + rng.normal(scale=0.01, size=(120, 10))
    labels = np.repeat(names, 4)
    pairs = pd.DataFrame({"source": "CORUM", "gene_a": [f"T{a:02d}" for a in (0, 2, 4, 6, 8)],
                          "gene_b": [f"T{b:02d}" for b in (1, 3, 5, 7, 9)]})
    rec = mean_embedding_recall(z, labels, pairs, PerturbationParams()).set_index("source")
    assert rec.loc["combined", "n_pairs"] == 5
    assert rec.loc["combined", "recall_mean"] == pytest.approx(1.0)
    assert 0.05 < rec.loc["combined", "chance"] < 0.2


def test_knn_vote_majority_and_tie_to_the_nearest():
    labels = np.array(["x", "a", "b", "b", "a"])
    idx = np.array([[1, 2, 3], [0, 2, 4], [4, 3, 1], [2, 0, 1], [1, 2, 0]])
    # row 0: a, b, b -> b; row 1: x, b, a -> tie, nearest is x; row 2: a, b, a -> a;
    # row 3: b, x, a -> tie, nearest b; row 4: a, b, x -> tie, nearest a
    assert knn_vote(idx, labels).tolist() == ["b", "x", "a", "b", "a"]


def test_celltype_metrics_on_separated_clusters_and_shuffled_labels():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(3, 10)) * 10
    lab = np.repeat([0, 1, 2], 50)
    z = centres[lab] + rng.normal(size=(150, 10))
    labels = np.array(["T", "B", "NK"])[lab]
    labels[:3] = "?"                                                  # ignored label
    out = evaluate_celltypes(z, labels, CellTypeParams(resolutions=(0.3, 1.0)))
    assert out["n_cells"] == 147 and out["n_labels"] == 3
    assert out["knn_accuracy"] == 1.0 and out["knn_balanced_accuracy"] == 1.0
    assert max(out["ari@0.3"], out["ari@1"]) == pytest.approx(1.0)
    assert max(out["nmi@0.3"], out["nmi@1"]) == pytest.approx(1.0)
    shuf = evaluate_celltypes(z, rng.permutation(labels), CellTypeParams(resolutions=(0.3,)))
    assert abs(shuf["ari@0.3"]) < 0.05 and shuf["knn_accuracy"] < 0.6
