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


def test_neighbour_diff_kept_lost_gained_by_hand():
    from precompute.bundle.compare import neighbour_diff
    sym_a = np.array(["A", "B", "C", "D", "E"])
    knn_a = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2], [0, 1, 2]])
    sym_b = np.array(["E", "D", "C", "A", "X", "B"])      # other order; X is not in A
    knn_b = np.zeros((6, 3), dtype=np.int64)
    knn_b[3] = [0, 4, 2]                                  # A's neighbours in B: E, X (dropped), C
    df = neighbour_diff(0, knn_a, knn_b, sym_a, sym_b, 3)
    assert df["gene"].tolist() == ["C", "B", "D", "E"]
    assert df["status"].tolist() == ["in both", "only in A (lost)", "only in A (lost)", "only in B (gained)"]
    np.testing.assert_array_equal(df["rank_a"].to_numpy(), [2, 1, 3, np.nan])
    np.testing.assert_array_equal(df["rank_b"].to_numpy(), [3, np.nan, np.nan, 1])


def test_module_change_by_hand():
    from precompute.bundle.compare import module_change
    a = np.array([0, 0, 0, 0, 1, 1, 2])
    b = np.array([5, 5, 6, 7, 5, 5, 8])
    table, summary = module_change(a, b)
    assert table["module_a"].tolist() == [0, 1, 2]                    # largest first
    assert table["best_module_b"].tolist() == [5, 5, 8]
    np.testing.assert_allclose(table["kept"], [0.5, 1.0, 1.0])
    assert table["modules_to_cover"].tolist() == [3, 1, 1]           # 80% of 4 genes needs 2 + 1 + 1
    assert table["b_module_genes"].tolist() == [4, 4, 1]
    assert summary["genes"] == 7
    same, s2 = module_change(np.array([0, 0, 1, 1, 2]), np.array([9, 9, 4, 4, 7]))   # relabelled: identical
    assert s2["adjusted_rand"] == 1.0 and abs(s2["normalised_mutual_info"] - 1.0) < 1e-12
    assert same["kept"].tolist() == [1.0, 1.0, 1.0]


def test_recall_side_by_side_same_population_same_pairs(alpha):
    """Both sides are scored on the genes both bundles have and measure well, with the same pairs and nulls:
    a matrix compared with itself gives the same figures; a gene missing from B leaves the population."""
    import pandas as pd
    from precompute.bundle.compare import recall_side_by_side
    from precompute.bundle.recall import pairs_to_indices, recall_sweep
    x = np.asarray(alpha.subspace("codebook")[:, :8])
    rec, n, label = recall_side_by_side(x, x, alpha.genes, alpha.genes, alpha.pairs)
    a, b = rec[rec.side == "A"].reset_index(drop=True), rec[rec.side == "B"].reset_index(drop=True)
    pd.testing.assert_frame_equal(a.drop(columns="side"), b.drop(columns="side"))
    assert n == alpha.n_genes and "shared genes" in label
    keep = np.arange(alpha.n_genes) % 3 != 0                          # B lacks every third gene
    genes_b = alpha.genes[keep].reset_index(drop=True)
    rec2, n2, _ = recall_side_by_side(x, x[keep], alpha.genes, genes_b, alpha.pairs)
    assert n2 == int(keep.sum())
    sym = alpha.symbols[keep]                                         # independent: restrict, then the sweep
    pairs = {s: p for s, p in pairs_to_indices(alpha.pairs, sym).items() if s != "combined"}
    expect = recall_sweep(x[keep], pairs, [8])
    got = rec2[rec2.side == "B"].set_index("source")
    for _, r in expect.iterrows():
        assert abs(got.loc[r.source, "recall_mean"] - r.recall_mean) < 1e-12
        assert got.loc[r.source, "n_pairs"] == r.n_pairs
