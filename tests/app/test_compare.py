"""Bundle comparison: Procrustes alignment and per-gene neighbourhood change."""
import numpy as np

from app.compare import align_layout, neighbourhood_change, row_map


def test_row_map():
    assert row_map(np.array(["A", "B", "C"]), np.array(["C", "A"])).tolist() == [1, -1, 0]


def test_align_layout_recovers_a_rotated_scaled_shifted_copy():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 2))
    theta = 1.1
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    moved = (ref @ rot) * 3.0 + np.array([10.0, -4.0])
    perm = rng.permutation(50)                           # the other bundle orders genes differently
    extra = np.array([[100.0, 100.0]])                   # and has a gene the reference lacks
    mov = np.vstack([moved[perm], extra])
    mov_to_ref = np.concatenate([perm, [-1]])
    out = align_layout(ref, mov, mov_to_ref)
    np.testing.assert_allclose(out[:50], ref[perm], atol=1e-9)
    assert out.shape == (51, 2)
    np.testing.assert_allclose(align_layout(ref, mov[:2], np.array([-1, -1])), mov[:2])   # nothing shared


def test_neighbourhood_change_ranks_most_changed_first():
    sym_a = np.array(["A", "B", "C", "D"])
    knn_a = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
    sym_b = np.array(["D", "C", "B", "A", "E"])           # other order, one extra gene
    # In B: A's neighbours B, C (same); B's: A, E (one shared); C's: D, E (none); D's: A, B (same).
    knn_b = np.array([[3, 2], [0, 4], [3, 4], [2, 1], [0, 1]])
    df = neighbourhood_change(sym_a, knn_a, sym_b, knn_b, 2)
    assert df["gene"].tolist() == ["C", "B", "A", "D"]
    np.testing.assert_allclose(df["jaccard"], [0.0, 1 / 3, 1.0, 1.0])
    assert df["shared_neighbours"].tolist() == [0, 1, 2, 2]
