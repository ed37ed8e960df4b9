"""2-D maps: UMAP from the precomputed exact kNN graph (umap-learn), fixed seed."""
from __future__ import annotations

import warnings

import numpy as np


def umap_from_knn(x: np.ndarray, knn_indices: np.ndarray, knn_sims: np.ndarray,
                  n_epochs: int = 100, min_dist: float = 0.1, seed: int = 0) -> np.ndarray:
    """UMAP layout from a cosine kNN graph.

    Args:
        x: (G, r) the vectors the graph was built from; the layout starts from their first two
            principal components (init="pca": deterministic, and at 45,000 genes much faster
            than umap's spectral initialisation of the graph).
        knn_indices: (G, k) int neighbours, self excluded; knn_sims: (G, k) cosine similarities.
        n_epochs: optimisation epochs (fewer is faster; umap's own default for large data is 200).
    Returns:
        (G, 2) float32 coordinates. Deterministic for a given seed (umap runs single-threaded then).
    """
    import umap  # heavy import (numba), only when this step runs

    g, k = knn_indices.shape
    self_col = np.arange(g, dtype=np.int64)[:, None]
    idx = np.hstack([self_col, knn_indices.astype(np.int64)])                  # umap wants self first
    dist = np.hstack([np.zeros((g, 1), np.float32),
                      np.clip(1.0 - knn_sims, 0.0, 2.0).astype(np.float32)])   # cosine distance
    model = umap.UMAP(n_neighbors=k + 1, n_components=2, metric="cosine", min_dist=min_dist,
                      n_epochs=n_epochs, random_state=seed, precomputed_knn=(idx, dist),
                      force_approximation_algorithm=True, init="pca", verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # n_jobs overridden by random_state; no search index: expected
        emb = model.fit_transform(np.asarray(x, dtype=np.float32))
    return emb.astype(np.float32)
