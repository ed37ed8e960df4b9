"""Relationship recall on hand-built embeddings with known answers."""
import numpy as np
import pandas as pd
import pytest

from precompute.bundle.recall import (_null_samples, full_null_thresholds, null_thresholds, null_thresholds_sweep,
                               recall_sweep, relationship_recall)
from precompute.bundle.recall import pairs_to_indices


def test_planted_extreme_pairs_are_recalled_and_random_pairs_at_chance():
    rng = np.random.default_rng(0)
    g, d = 3000, 32
    x = rng.standard_normal((g, d)).astype(np.float32)
    # plant 100 pairs with cosine ~ +1 (copies) and 100 with cosine ~ -1 (negated copies)
    x[1:200:2] = x[0:200:2] + 0.01 * rng.standard_normal((100, d))
    x[201:400:2] = -x[200:400:2]
    planted = np.array([[i, i + 1] for i in range(0, 400, 2)])
    # 2,000 random pairs of unrelated genes among genes 400..2999
    a = rng.integers(400, g, 4000)
    b = rng.integers(400, g, 4000)
    rand = np.unique(np.sort(np.stack([a, b], 1)[a != b], 1), axis=0)[:2000]
    res = relationship_recall(x, {"planted": planted, "random": rand}, n_nulls=3, null_size=1500,
                              seed=1).set_index("source")
    assert res.loc["planted", "recall_mean"] == 1.0
    assert res.loc["planted", "n_pairs"] == 200
    # random pairs: recall ~ 0.10 (binomial sd for 2,000 pairs ~ 0.007)
    assert abs(res.loc["random", "recall_mean"] - 0.10) < 0.03
    assert abs(res.loc["random", "chance"] - 0.10) < 0.01
    assert res.loc["random", "recall_std"] > 0        # three different nulls


@pytest.mark.parametrize("n", [20, 30])     # 2n <= G: disjoint samples; 2n > G: self-pairs removed
def test_null_thresholds_match_quantiles_of_the_sample_without_self_pairs(n):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((50, 4)).astype(np.float32)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    lo, hi = null_thresholds(xn, np.random.default_rng(7), null_size=n)
    ia, ib = _null_samples(50, n, np.random.default_rng(7))
    vals = [xn[i] @ xn[j] for i in ia for j in ib if i != j]
    assert len(vals) == n * n - len(set(ia) & set(ib))
    np.testing.assert_allclose([lo, hi], np.quantile(vals, [0.05, 0.95]), atol=1e-6)


def test_sweep_thresholds_equal_per_rank_computation():
    x = np.random.default_rng(5).standard_normal((80, 6)).astype(np.float32)
    sweep = null_thresholds_sweep(x, [2, 4, 6], np.random.default_rng(1), null_size=30)
    ia, ib = _null_samples(80, 30, np.random.default_rng(1))
    for r, (lo, hi) in zip([2, 4, 6], sweep):
        v = x[:, :r] / np.linalg.norm(x[:, :r], axis=1, keepdims=True)
        np.testing.assert_allclose([lo, hi], np.quantile((v[ia] @ v[ib].T).ravel(), [0.05, 0.95]), atol=1e-5)


def test_recall_sweep_equals_recall_on_truncated_vectors():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((400, 16)).astype(np.float32)
    pairs = {"S": rng.integers(0, 400, (300, 2))}
    pairs["S"] = pairs["S"][pairs["S"][:, 0] != pairs["S"][:, 1]]
    sweep = recall_sweep(x, pairs, [4, 16], n_nulls=2, null_size=100, seed=2).set_index(["rank", "source"])
    for r in (4, 16):
        one = relationship_recall(x[:, :r], pairs, n_nulls=2, null_size=100, seed=2).set_index("source")
        assert sweep.loc[(r, "S"), "recall_mean"] == pytest.approx(one.loc["S", "recall_mean"], abs=1e-9)


def test_full_null_equals_numpy_quantile_of_all_pairs():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 6)).astype(np.float32)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ xn.T
    iu = np.triu_indices(300, 1)
    want = np.quantile(s[iu].astype(np.float64), [0.05, 0.95])
    got = full_null_thresholds(xn, block=64, bins=1024)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_pairs_to_indices_restricts_dedups_and_combines():
    pairs = pd.DataFrame({"source": ["A", "A", "A", "B", "B", "B"],
                          "gene_a": ["X", "Y", "X", "Y", "Q", "Z"],
                          "gene_b": ["Y", "X", "X", "X", "Z", "X"]})
    idx = pairs_to_indices(pairs, ["X", "Y", "Z"])
    assert idx["A"].tolist() == [[0, 1]]            # Y-X same as X-Y; X-X dropped
    assert sorted(idx["B"].tolist()) == [[0, 1], [0, 2]]   # Q not in vocabulary
    assert sorted(idx["combined"].tolist()) == [[0, 1], [0, 2]]


def test_source_without_pairs_gives_nan():
    x = np.random.default_rng(0).standard_normal((100, 3))
    res = relationship_recall(x, {"empty": np.zeros((0, 2), int)}, n_nulls=1, null_size=50)
    assert res.n_pairs.iloc[0] == 0 and np.isnan(res.recall_mean.iloc[0])


def test_best_rank_is_the_mean_of_sources_rule_with_ties_to_the_lower_rank():
    import pandas as pd

    from precompute.bundle.recall import best_rank

    rows = [(32, "mean_of_sources", 0.30), (8, "mean_of_sources", 0.20), (16, "mean_of_sources", 0.30),
            (64, "mean_of_sources", float("nan")), (8, "combined", 0.90), (32, "CORUM", 0.80)]
    t = pd.DataFrame(rows, columns=["rank", "source", "recall_mean"])
    # the pooled 'combined' (0.90 at rank 8) and a single source do not choose; 16 and 32 tie at 0.30
    assert int(best_rank(t)["rank"]) == 16
    assert best_rank(t[t.source != "mean_of_sources"]) is None
    assert best_rank(t[(t.source == "mean_of_sources") & (t["rank"] == 64)]) is None
