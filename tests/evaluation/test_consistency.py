"""Perturbation consistency: the hand example (leave-one-out, own cells out of the null),
planted consistent vs random perturbations, and the alignment it runs on."""
import numpy as np
import pandas as pd
import pytest

from data.corpus.curation import embedding_consistency
from data.corpus.curation import align_embeddings
from evaluation.embeddings import log1p_embedding
from evaluation.inputs import LabelledCounts
from evaluation.perturbation import PerturbationParams, consistency, evaluate_embedding

from .conftest import N_GENES, screen_counts


def test_hand_example_leave_one_out_and_own_cells_excluded_from_null():
    z = np.array([[1, 0], [0, 1], [1, 1],          # A
                  [1, -1], [1, -1.2],              # B
                  [1, 1], [-1, 0], [0, -1]], float)  # controls
    labels = ["A", "A", "A", "B", "B", "non-targeting", "non-targeting", "non-targeting"]
    s = embedding_consistency(z, labels, n_null=10_000).set_index("perturbation")
    assert list(s.index) == ["A", "B"]
    # A: LOO means (0.5, 1), (1, 0.5), (0.5, 0.5) -> cosines 0.5/sqrt(1.25) twice and 1
    stat_a = (2 * 0.5 / np.sqrt(1.25) + 1.0) / 3
    assert s.loc["A", "statistic"] == pytest.approx(stat_a, abs=1e-12)
    # null of A = the 5 other cells; cosines to (1, 1): B -0, -0.09; controls 1, -0.71, -0.71.
    # One value >= 0.631, so p = (1 + 1) / (1 + 5). Had A's own cells been in the null
    # (cosines 0.71, 0.71, 1 to the mean), p would be (1 + 4) / (1 + 8).
    assert s.loc["A", "p_value"] == pytest.approx(2 / 6)
    # B: each cell's LOO mean is the other cell; cos((1,-1), (1,-1.2)) = 2.2 / sqrt(2 * 2.44)
    assert s.loc["B", "statistic"] == pytest.approx(2.2 / np.sqrt(2 * 2.44), abs=1e-12)
    assert s.loc["B", "p_value"] == pytest.approx(1 / 7)       # none of the 6 other cells reaches 0.996
    assert s.loc["B", "n_cells"] == 2


def test_single_cell_perturbation_gets_nan_and_is_not_counted():
    z = np.array([[1.0, 0], [0.9, 0.1], [0, 1], [-1, 0], [0, -1]])
    labels = np.array(["A", "A", "C", "non-targeting", "non-targeting"])
    frac, table = consistency(z, labels, PerturbationParams(alpha=0.5))
    assert np.isnan(table.set_index("perturbation").loc["C", "p_value"])
    assert frac == 1.0                                           # A alone is scored (p = 1/4 < 0.5)


def test_planted_consistent_and_random_perturbations_give_the_expected_fraction():
    rng = np.random.default_rng(0)
    d, n = 20, 30
    z, labels = [rng.normal(size=(300, d))], ["non-targeting"] * 300
    for i in range(6):                                           # consistent: a shared shift of norm 6
        mu = rng.normal(size=d)
        z.append(6 * mu / np.linalg.norm(mu) + rng.normal(size=(n, d)))
        labels += [f"P{i}"] * n
    for i in range(4):                                           # random: controls' distribution
        z.append(rng.normal(size=(n, d)))
        labels += [f"R{i}"] * n
    frac, table = consistency(np.vstack(z), np.array(labels), PerturbationParams(n_null=5000))
    assert frac == pytest.approx(0.6)
    t = table.set_index("perturbation")
    assert t.loc[[f"P{i}" for i in range(6)], "consistent"].all()
    assert not t.loc[[f"R{i}" for i in range(4)], "consistent"].any()


def test_alignment_standardises_each_batch_by_its_controls():
    rng = np.random.default_rng(1)
    ctrl_a = rng.normal(size=(50, 3))
    ctrl_b = rng.normal(size=(50, 3)) * 2 + 5                   # batch B: shifted and scaled
    z = np.vstack([ctrl_a, ctrl_b])
    batch = np.repeat(["A", "B"], 50)
    al = align_embeddings(z, batch, np.ones(100, bool), n_components=10)
    assert al.n_components == 3                                  # capped by the embedding's width
    for b in "AB":
        y = al.z[batch == b]
        np.testing.assert_allclose(y.mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(y.std(0), 1, atol=1e-5)
    with pytest.raises(ValueError, match="control cells"):
        align_embeddings(z, batch, np.zeros(100, bool))


def test_screen_counts_log1p_finds_the_planted_perturbations():
    x, labels, batch = screen_counts(0)
    data = LabelledCounts(x, [f"G{i}" for i in range(N_GENES)], pd.DataFrame(), "synthetic")
    z, _ = log1p_embedding(data)
    row, table, _ = evaluate_embedding(z, labels, batch, PerturbationParams(n_null=2000))
    t = table.set_index("perturbation")
    assert set(t.index) == {"G1", "G2", "G3", "G4", "G5"}        # controls and 'unassigned' left out
    assert t.loc[["G1", "G2", "G3"], "consistent"].all() and not t.loc[["G4", "G5"], "consistent"].any()
    assert row["consistency"] == pytest.approx(0.6) and row["n_consistent"] == 3
    assert row["loo_cosine"] == pytest.approx(t["statistic"].mean())
    assert row["consistency_p10"] == pytest.approx(t["p_value"].lt(0.1).mean())
    shuffled, _, _ = evaluate_embedding(z, labels, batch, PerturbationParams(n_null=2000),
                                        shuffle_labels=True)
    assert shuffled["consistency"] <= 0.2 and shuffled["probe_balanced_accuracy"] < row["probe_balanced_accuracy"]
