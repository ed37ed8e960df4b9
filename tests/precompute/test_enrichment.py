"""Enrichment p-values against scipy.stats.hypergeom on a hand example; BH by hand."""
import numpy as np
import pytest
from scipy.stats import hypergeom

from precompute.bundle.enrichment import bh_qvalues, enrich_membership, hypergeom_sf


def test_bh_qvalues_hand_computed():
    p = np.array([0.01, 0.04, 0.03, 0.20])
    # sorted 0.01, 0.03, 0.04, 0.20; p*m/rank = 0.04, 0.06, 0.0533.., 0.20; running min from top
    q = bh_qvalues(p)
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.20])
    np.testing.assert_allclose(bh_qvalues(np.array([0.5, 0.9])), [0.9, 0.9])
    assert bh_qvalues(np.array([0.9, 0.95, 0.99]))[0] <= 1.0


def test_hypergeometric_hand_example():
    # 12 model genes; library covers g0..g9 (background 10); g10, g11 are not in the library
    symbols = [f"g{i}" for i in range(12)]
    library = {"T1": ["g0", "g1", "g2", "g3", "NOT_IN_MODEL"],   # size 4 after restriction
               "T2": ["g4", "g5", "g6", "g7", "g8", "g9"],       # size 6
               "tiny": ["g0"]}                                    # below min_set_size, not tested
    membership = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1])   # module 0: g0 g1 g2 (+g10 outside)
    df = enrich_membership(membership, symbols, library, "LIB", 1.0, min_set_size=2, max_set_size=10)
    row = df[(df.module == 0) & (df.term == "T1")].iloc[0]
    assert (row.overlap, row.set_size, row.module_size, row.background) == (3, 4, 3, 10)
    p_t1_m0 = hypergeom.sf(2, 10, 4, 3)       # P[X >= 3], X ~ Hypergeom(M=10, n=4, N=3)
    assert row.p == pytest.approx(p_t1_m0) and row.p == pytest.approx(4 / 120)
    assert row.genes == "g0|g1|g2"
    # module 1 = g3..g9 (7 in background): T1 overlap 1, T2 overlap 6
    r2 = df[(df.module == 1) & (df.term == "T2")].iloc[0]
    assert r2.p == pytest.approx(hypergeom.sf(5, 10, 6, 7))
    r3 = df[(df.module == 1) & (df.term == "T1")].iloc[0]
    assert r3.p == pytest.approx(hypergeom.sf(0, 10, 4, 7))
    # BH over the 4 tests (2 modules x 2 tested terms); module 0 x T2 has overlap 0 -> p = 1
    all_p = np.array([p_t1_m0, 1.0, hypergeom.sf(0, 10, 4, 7), hypergeom.sf(5, 10, 6, 7)])
    q = bh_qvalues(all_p)
    assert row.q == pytest.approx(q[0]) and r2.q == pytest.approx(q[3]) and r3.q == pytest.approx(q[2])
    assert "tiny" not in set(df.term)
    assert len(df) == 3   # overlap-0 rows are not stored


def test_vectorised_hypergeom_sf_equals_scipy():
    rng = np.random.default_rng(0)
    total = rng.integers(50, 45_000, 400)
    succ = np.minimum(rng.integers(1, 500, 400), total)
    draws = np.minimum(rng.integers(1, 2_000, 400), total)
    k = rng.integers(0, 40, 400)
    want = hypergeom.sf(k - 1, total, succ, draws)
    got = hypergeom_sf(k, total, succ, draws)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-300)
    assert hypergeom_sf(np.array([3]), 10, 4, 3)[0] == pytest.approx(4 / 120)


def test_hypergeom_sf_exhaustive_small_cases():
    grid = np.array([(k, M, n, N) for M in range(1, 16) for n in range(0, M + 1)
                     for N in range(0, M + 1) for k in range(0, min(n, N) + 2)])
    k, M, n, N = grid.T
    np.testing.assert_allclose(hypergeom_sf(k, M, n, N), hypergeom.sf(k - 1, M, n, N), rtol=1e-9, atol=1e-15)
