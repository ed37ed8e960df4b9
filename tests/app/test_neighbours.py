"""Neighbour lookup and relationship marking on hand-made matrices."""
import numpy as np
import pandas as pd
import pytest

from app.neighbours import PairIndex, neighbour_table, top_k, top_k_precomputed, unit_rows
from precompute.bundle.compare import neighbour_overlap

# Rows at angles 0, 30, 90, 180 degrees in the first two columns; the third column is noise that
# rank 2 ignores.
S = np.array([[1.0, 0.0, 5.0],
              [np.cos(np.pi / 6), np.sin(np.pi / 6), -5.0],
              [0.0, 2.0, 0.0],
              [-3.0, 0.0, 1.0],
              [0.0, 0.0, 0.0]], dtype=np.float32)


def test_unit_rows_rank_and_zero_row():
    u = unit_rows(S, 2)
    assert u.shape == (5, 2) and u.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(u[:4], axis=1), 1.0, atol=1e-6)
    assert np.all(u[4] == 0)
    with pytest.raises(ValueError, match="rank 4 is outside 1..3"):
        unit_rows(S, 4)


def test_top_k_cosines_by_hand():
    rows, sims = top_k(unit_rows(S, 2), 0, 4)
    # cos(30°)=0.866, zero row 0, cos(90°)=0, cos(180°)=-1; ties (0, 0) broken by row.
    assert rows.tolist() == [1, 2, 4, 3]
    np.testing.assert_allclose(sims, [np.sqrt(3) / 2, 0.0, 0.0, -1.0], atol=1e-6)
    rows3, _ = top_k(unit_rows(S, 3), 0, 1)   # with the noise column, row 1 points away
    assert rows3.tolist() == [3]                  # cos = 2 / (sqrt(26) * sqrt(10)) = 0.124, the only positive one


def test_top_k_precomputed_slices():
    idx = np.array([[1, 2, 3], [0, 2, 3]], dtype=np.int32)
    sims = np.array([[0.9, 0.5, 0.1], [0.9, 0.4, 0.2]], dtype=np.float32)
    r, s = top_k_precomputed(idx, sims, 1, 2)
    assert r.tolist() == [0, 2] and s.tolist() == pytest.approx([0.9, 0.4])


def test_pair_index():
    pairs = pd.DataFrame({"source": ["CORUM", "StringDB", "StringDB", "CORUM"],
                          "gene_a": ["A", "A", "C", "A"], "gene_b": ["B", "B", "A", "ZZZ"]})
    pi = PairIndex.from_pairs(pairs, np.array(["A", "B", "C", "D"], dtype=object))
    assert pi.sources == ["CORUM", "StringDB"]
    assert pi.partners(0) == {1: ["CORUM", "StringDB"], 2: ["StringDB"]}   # ZZZ is not in the bundle
    assert pi.partners(3) == {}
    assert pi.rows_in_source("CORUM").tolist() == [0, 1]
    assert pi.rows_in_source("nope").tolist() == []
    assert sorted(pi.pairs_among(np.array([0, 2]))) == [(2, 0, "StringDB")]
    t = neighbour_table(np.array(["A", "B", "C", "D"]), np.array([1, 3]), np.array([0.5, 0.25]), pi.partners(0))
    assert t["known"].tolist() == [True, False] and t["sources"].tolist() == ["CORUM|StringDB", ""]


def test_neighbour_overlap_by_hand():
    knn_a = np.array([[1, 2], [0, 2], [0, 1]])
    # B has genes in another order: B row 0 = A row 2, B row 1 = A row 0, B row 2 = A row 1, B row 3 new.
    b_to_a = np.array([2, 0, 1, -1])
    knn_b_for_a = np.array([[0, 3],   # gene A0: A2 and a gene A lacks (dropped) -> {2} vs {1,2}: 1/2
                            [1, 0],   # gene A1: A0, A2 -> same set: 1
                            [3, 3]])  # gene A2: only the gene A lacks -> {} vs {0,1}: 0
    j, inter = neighbour_overlap(knn_a, knn_b_for_a, b_to_a, 2)
    np.testing.assert_allclose(j, [1 / 2, 1.0, 0.0])
    assert inter.tolist() == [1, 2, 0]
    # A's neighbour A1 is not in B: it is dropped from A's side too -> gene A0: {2} vs {2}: 1.
    j, _ = neighbour_overlap(knn_a, knn_b_for_a, b_to_a, 2, a_shared=np.array([True, False, True]))
    assert j[0] == 1.0
    # Both restricted sets empty -> NaN.
    j, _ = neighbour_overlap(np.array([[1]]), np.array([[3]]), b_to_a, 1, a_shared=np.array([True, False, True]))
    assert np.isnan(j[0])
