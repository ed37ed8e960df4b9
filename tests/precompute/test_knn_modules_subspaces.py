"""Blockwise kNN vs brute force; Leiden recovers planted blocks; PCA scores vs sklearn."""
import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score

from precompute.knn import cosine_knn
from precompute.modules import knn_graph, leiden_modules, renumber_by_size
from precompute.subspaces import pca_scores, rank_sweep


def test_blockwise_knn_equals_brute_force():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((537, 12))
    idx, sims = cosine_knn(x, k=7, block=100)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ xn.T
    np.fill_diagonal(s, -np.inf)
    want = np.argsort(-s, axis=1, kind="stable")[:, :7]
    assert idx.dtype == np.int32 and sims.dtype == np.float32
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_allclose(sims, np.take_along_axis(s, want, 1), atol=1e-5)


def test_knn_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        cosine_knn(np.ones((5, 2)), k=5)


def test_leiden_recovers_planted_blocks():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(6), [40, 50, 60, 70, 80, 100])
    centres = rng.standard_normal((6, 20)) * 3
    x = centres[labels] + rng.standard_normal((labels.size, 20))
    idx, sims = cosine_knn(x, k=15)
    memb = leiden_modules(knn_graph(idx, sims), resolution=1.0, seed=0)
    assert adjusted_rand_score(labels, memb) > 0.95
    assert np.all(np.diff(np.bincount(memb)) <= 0)   # numbered by decreasing size
    again = leiden_modules(knn_graph(idx, sims), resolution=1.0, seed=0)
    np.testing.assert_array_equal(memb, again)


def test_renumber_by_size():
    np.testing.assert_array_equal(renumber_by_size(np.array([5, 7, 7, 5, 7, 9])), [1, 0, 0, 1, 0, 2])


def test_pca_scores_match_sklearn_on_standardised_columns():
    rng = np.random.default_rng(2)
    m = rng.standard_normal((200, 10)) @ rng.standard_normal((10, 10)) + 5
    scores, ev = pca_scores(m)
    z = (m - m.mean(0)) / m.std(0)
    ref = PCA().fit(z)
    np.testing.assert_allclose(ev, ref.explained_variance_, rtol=1e-4)   # float32 products
    sk = ref.transform(z)
    np.testing.assert_allclose(np.abs(scores), np.abs(sk), atol=1e-4)
    assert scores.dtype == np.float32 and scores.shape == (200, 10)


def test_rank_sweep():
    assert rank_sweep(768) == [8, 16, 32, 64, 128, 256, 512, 768]
    assert rank_sweep(256) == [8, 16, 32, 64, 128, 256]
    assert rank_sweep(5) == [5]
