"""Curation: scaled thresholds, the cell filter's reasons, duplicate detection, phenoprint curation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from data.corpus.curation import (CurationConfig, cell_filter, cell_threshold, dataset_kind, gene_threshold,
                           pca_consistency, phenoprint_keep, row_hashes)


def test_thresholds_scale_with_dataset_and_cap_at_paper_values():
    c = CurationConfig()
    assert gene_threshold(2000, "single-cell", c) == 20          # 1% of 2,000 cells
    assert gene_threshold(250_000, "single-cell", c) == 1000     # capped at the paper's 1,000
    assert gene_threshold(150, "single-cell", c) == 2            # ceil(1.5)
    assert cell_threshold(9015, "single-cell", c) == 91          # ceil(90.15)
    assert cell_threshold(500_000, "single-cell", c) == 2000     # capped at the paper's 2,000
    # bulk samples are never filtered by single-cell thresholds
    assert gene_threshold(77, "bulk", c) == 1 and cell_threshold(30_000, "bulk", c) == 0
    explicit = CurationConfig(min_cells=5, min_genes=300)
    assert gene_threshold(2000, "single-cell", explicit) == 5 and cell_threshold(10, "single-cell", explicit) == 300
    assert gene_threshold(77, "bulk", explicit) == 1


def test_dataset_kind():
    c = CurationConfig()
    assert dataset_kind("islets", 77, 2e7, c) == "bulk"
    assert dataset_kind("deep", 500, 3e6, c) == "bulk"
    assert dataset_kind("pbmc", 2000, 1500, c) == "single-cell"
    assert dataset_kind("tiny", 50, 900, c) == "bulk"
    assert dataset_kind("pbmc", 2000, 1500, CurationConfig(kinds={"pbmc": "bulk"})) == "bulk"


def test_cell_filter_counts_each_sample_under_first_reason():
    n_genes = np.array([0, 5, 50, 60, 60, 70])
    total = np.array([0, 10, 100, 100, 100, 200])
    mito = np.array([0, 0, 90, 10, 10, 0])
    dup = np.array([False, False, False, False, True, False])
    keep, removed = cell_filter(n_genes, total, mito, dup, min_genes=10,
                                config=CurationConfig(max_mito_fraction=0.5))
    assert keep.tolist() == [False, False, False, True, False, True]
    assert removed == {"fewer than 1 counts (empty)": 1, "fewer than 10 detected genes": 1,
                       "mitochondrial fraction above 0.5": 1, "exact duplicate of an earlier sample": 1}
    keep, removed = cell_filter(n_genes, total, mito, dup, min_genes=0,
                                config=CurationConfig(deduplicate=False))
    assert keep.tolist() == [False, True, True, True, True, True] and removed == {"fewer than 1 counts (empty)": 1}


def test_row_hashes_equal_for_equal_rows():
    x = sp.csr_matrix(np.array([[1, 0, 2], [0, 3, 0], [1, 0, 2], [1, 0, 3]]))
    h = row_hashes(x)
    assert h[0] == h[2] and len({h[0], h[1], h[3]}) == 3
    assert pd.Series(h).duplicated().tolist() == [False, False, True, False]


def _screen(seed=0):
    """200 control cells, 40 cells of a perturbation that switches on a 10-gene programme, 40 of one that does nothing."""
    rng = np.random.default_rng(seed)
    g = 60
    base = rng.uniform(2, 8, g)
    def cells(n, shift):
        lam = np.tile(base, (n, 1))
        lam[:, :10] *= shift
        return rng.poisson(lam)
    x = np.vstack([cells(200, 1.0), cells(40, 6.0), cells(40, 1.0)])
    labels = np.array(["non-targeting"] * 200 + ["GENE_A"] * 40 + ["GENE_B"] * 40)
    return sp.csr_matrix(x), labels


def test_pca_consistency_separates_real_from_null_perturbation():
    x, labels = _screen()
    s = pca_consistency(x, labels, n_components=10, n_null=2000).set_index("perturbation")
    assert list(s.index) == ["GENE_A", "GENE_B"] and s.loc["GENE_A", "n_cells"] == 40
    assert s.loc["GENE_A", "p_value"] < 0.01 < 0.1 < s.loc["GENE_B", "p_value"]
    assert s.loc["GENE_A", "statistic"] > 0.5 > 0.2 > s.loc["GENE_B", "statistic"]
    # null = the 240 cells outside GENE_A; none reaches its statistic, so p = 1 / 241
    assert s.loc["GENE_A", "p_value"] == pytest.approx(1 / 241)


def test_pca_consistency_statistic_matches_a_hand_loop():
    x, labels = _screen(1)
    from data.corpus.curation import _unit, pca_embedding
    z = pca_embedding(x, labels == "non-targeting", None, 10, 0).astype(np.float64)
    own = z[labels == "GENE_A"]
    loo = [np.dot(_unit(own[i]), _unit(np.delete(own, i, axis=0).mean(0))) for i in range(len(own))]
    s = pca_consistency(x, labels, n_components=10, n_null=100).set_index("perturbation")
    assert s.loc["GENE_A", "statistic"] == pytest.approx(np.mean(loo), rel=1e-9)


def test_phenoprint_keep_drops_only_inconsistent_perturbations():
    labels = np.array(["non-targeting", "A", "B", "B", "unassigned", "C"])
    scores = pd.DataFrame({"perturbation": ["A", "B"], "p_value": [0.01, 0.4]})
    keep, scored = phenoprint_keep(labels, scores, alpha=0.1)
    assert keep.tolist() == [True, True, False, False, True, True]  # C has no score: kept
    assert scored.set_index("perturbation")["kept"].to_dict() == {"A": True, "B": False}
    with pytest.raises(ValueError, match="perturbation and p_value"):
        phenoprint_keep(labels, pd.DataFrame({"perturbation": ["A"]}))


def test_curation_uses_the_one_control_alignment_per_batch():
    """The phenoprint PCA embedding standardises each batch by its own controls (the paper's
    alignment, shared with `evaluation perturbation`), so a batch-wide shift is removed."""
    import scipy.sparse as sp

    from data.corpus.curation import pca_embedding

    rng = np.random.default_rng(0)
    n, g = 240, 60
    rate = rng.gamma(2.0, 2.0, g)
    batch = np.repeat(["r1", "r2"], n // 2)
    # r2 measures the first half of the genes 4x higher relative to the second half (a batch effect)
    shift = np.where((batch == "r2")[:, None], np.r_[np.full(30, 4.0), np.ones(30)][None, :], 1.0)
    x = sp.csr_matrix(rng.poisson(rate * shift * 20))
    control = np.tile(np.r_[np.ones(40, bool), np.zeros(80, bool)], 2)
    z = pca_embedding(x, control, batch, n_components=5)
    for b in ("r1", "r2"):
        ref = z[(batch == b) & control]
        np.testing.assert_allclose(ref.mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(ref.std(0), 1, atol=1e-4)
    # without batches the shift stays: the two batches' controls sit apart on the first component
    z1 = pca_embedding(x, control, None, n_components=5)
    assert abs(z1[(batch == "r1") & control, 0].mean() - z1[(batch == "r2") & control, 0].mean()) > 1.0
