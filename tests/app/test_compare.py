"""Bundle comparison: Procrustes alignment and per-gene neighbourhood change."""
import numpy as np

from precompute.bundle.compare import align_layout, neighbourhood_change, row_map


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
    # In B: A's neighbours B, C (same); B's: A, E -> E dropped: {A} vs {A, C} = 1/2;
    # C's: D, E -> {D} vs {A, B} = 0; D's: A, B (same).
    knn_b = np.array([[3, 2], [0, 4], [3, 4], [2, 1], [0, 1]])
    df = neighbourhood_change(sym_a, knn_a, sym_b, knn_b, 2)
    assert df["gene"].tolist() == ["C", "B", "A", "D"]
    np.testing.assert_allclose(df["jaccard"], [0.0, 0.5, 1.0, 1.0])
    assert df["shared_neighbours"].tolist() == [0, 1, 2, 2]


def test_neighbourhood_change_agrees_with_precompute_sets(alpha, bundles_dir):
    """Vectorised Jaccard == Jaccard of Python sets restricted to the shared genes (other gene order in B)."""
    from precompute.bundle.reader import open_bundle

    def neighbour_jaccard(nb_a, nb_b):       # the independent oracle: |A & B| / |A | B|, NaN when empty
        return np.array([len(x & y) / len(x | y) if x | y else np.nan for x, y in zip(nb_a, nb_b)])

    beta = open_bundle(bundles_dir / "beta")
    perm = np.random.default_rng(1).permutation(beta.n_genes)          # pretend B stores genes in another order
    inv = np.argsort(perm)
    sym_b = beta.symbols[perm]
    knn_b = inv[np.asarray(beta.knn("codebook")[0])[perm]]
    df = neighbourhood_change(alpha.symbols, alpha.knn("codebook")[0], sym_b, knn_b, 20).set_index("gene")
    ka = {alpha.symbols[i]: {alpha.symbols[j] for j in row} for i, row in enumerate(alpha.knn("codebook")[0])}
    kb = {sym_b[i]: {sym_b[j] for j in row} for i, row in enumerate(knn_b)}
    genes = list(alpha.symbols)
    expect = neighbour_jaccard([ka[g] for g in genes], [kb[g] for g in genes])
    np.testing.assert_allclose(df.loc[genes, "jaccard"].to_numpy(), expect)
    assert 0 < np.mean(expect) < 1
