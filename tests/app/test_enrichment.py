"""Enrichment of a list: p-values and q-values worked out by hand and checked against Fisher's test."""
import numpy as np
import pytest
from scipy.stats import false_discovery_control, fisher_exact

from app.enrichment import ENRICHMENT_COLUMNS, enrich_list

UNIVERSE = [f"G{i}" for i in range(10)]
L1 = {"T1": ["G0", "G1", "G2", "G3"], "T2": ["G4", "G5", "G6", "G7", "G8"], "T3": ["G0", "G9", "NOT_IN_BUNDLE"]}
L2 = {"T4": ["G0", "G1"], "T5": ["G2", "G3"]}


def test_hypergeometric_and_bh_by_hand():
    raw = enrich_list(["G0", "G1", "G4", "G1"], {"L1": L1}, UNIVERSE, min_set_size=2)
    assert list(raw.columns) == ENRICHMENT_COLUMNS
    res = raw.set_index("term")
    # N = 10 (all genes annotated), n = 3.
    # T1: K=4, k=2 -> (C(4,2)C(6,1) + C(4,3)) / C(10,3) = 40/120
    # T3: K=2 (G0, G9), k=1 -> 1 - C(8,3)/C(10,3) = 64/120 ; T2: K=5, k=1 -> 1 - C(5,3)/C(10,3) = 110/120
    assert res.loc["T1", "p"] == pytest.approx(1 / 3)
    assert res.loc["T3", "p"] == pytest.approx(8 / 15)
    assert res.loc["T2", "p"] == pytest.approx(11 / 12)
    # BH over 3 tests: sorted 1/3, 8/15, 11/12 -> ranked 1, 0.8, 0.9167 -> q 0.8, 0.8, 0.9167
    assert res.loc["T1", "q"] == pytest.approx(0.8)
    assert res.loc["T3", "q"] == pytest.approx(0.8)
    assert res.loc["T2", "q"] == pytest.approx(11 / 12)
    assert res.loc["T1", "genes"] == "G0|G1" and res.loc["T1", "overlap"] == 2
    assert (res["list_size"] == 3).all() and (res["background"] == 10).all()
    assert res.index.tolist() == ["T1", "T3", "T2"]                 # sorted by p
    # Independent check: one-sided Fisher's exact test on the 2x2 table of T1.
    assert fisher_exact([[2, 2], [1, 5]], alternative="greater")[1] == pytest.approx(res.loc["T1", "p"])


def test_background_is_genes_annotated_in_the_library_and_untouched_terms_count():
    res = enrich_list(["G0", "G1", "G4"], {"L2": L2}, UNIVERSE, min_set_size=2)
    # Background = G0..G3 (N=4); G4 is not annotated so n=2. T4: K=2, k=2 -> 1/C(4,2) = 1/6.
    # T5 has overlap 0 (not shown) but is a test: BH over m=2 -> q(T4) = 1/6 * 2 = 1/3.
    assert res["term"].tolist() == ["T4"]
    assert res.loc[0, "p"] == pytest.approx(1 / 6)
    assert res.loc[0, "q"] == pytest.approx(1 / 3)
    assert res.loc[0, "background"] == 4 and res.loc[0, "list_size"] == 2


def test_q_matches_scipy_bh_on_a_random_family():
    rng = np.random.default_rng(3)
    universe = [f"G{i}" for i in range(400)]
    lib = {f"S{j}": list(rng.choice(universe, rng.integers(5, 60), replace=False)) for j in range(80)}
    genes = list(rng.choice(universe[:100], 40, replace=False)) + lib["S0"][:10]
    res = enrich_list(genes, {"L": lib}, universe, min_set_size=5, max_set_size=500)
    n_tested = sum(5 <= len(set(v)) <= 500 for v in lib.values())
    p_all = np.concatenate([res["p"].to_numpy(), np.ones(n_tested - len(res))])
    np.testing.assert_allclose(res["q"].to_numpy(), false_discovery_control(p_all)[: len(res)], rtol=1e-10)
    assert res.iloc[0]["term"] == "S0"


def test_custom_background_and_empty_list():
    res = enrich_list(["G0", "G1", "G4"], {"L1": L1}, UNIVERSE[:5], min_set_size=2)
    # Background G0..G4: only T1 (K=4) is large enough; n=3, k=2: (C(4,2)C(1,1) + C(4,3)) / C(5,3) = 1.
    assert res["term"].tolist() == ["T1"] and res.loc[0, "p"] == pytest.approx(1.0)
    empty = enrich_list(["NOPE"], {"L1": L1}, UNIVERSE)
    assert empty.empty and list(empty.columns) == ENRICHMENT_COLUMNS
