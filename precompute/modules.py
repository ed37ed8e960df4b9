"""Gene modules: Leiden community detection (igraph) on the kNN graph at several resolutions."""
from __future__ import annotations

import random

import numpy as np


def knn_graph(knn_indices: np.ndarray, knn_sims: np.ndarray):
    """Undirected weighted igraph Graph from a kNN table.

    Edge weight = max(cosine, 0); an edge found from both ends is kept once with the larger
    weight; edges with weight 0 are dropped.
    """
    import igraph as ig

    g, k = knn_indices.shape
    src = np.repeat(np.arange(g, dtype=np.int64), k)
    dst = knn_indices.reshape(-1).astype(np.int64)
    w = np.clip(knn_sims.reshape(-1).astype(np.float64), 0.0, None)
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    key = lo * g + hi
    order = np.lexsort((-w, key))                     # per key, largest weight first
    key, w = key[order], w[order]
    first = np.ones(key.size, dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key, w = key[first], w[first]
    keep = w > 0
    key, w = key[keep], w[keep]
    edges = np.stack([key // g, key % g], axis=1)
    graph = ig.Graph(n=g, edges=edges, directed=False)
    graph.es["weight"] = w
    return graph


def leiden_modules(graph, resolution: float, seed: int = 0, n_iterations: int = 2) -> np.ndarray:
    """Leiden (modularity with a resolution parameter) membership, (G,) int32.

    Modules are renumbered by decreasing size (0 = largest), ties by smallest member gene.
    n_iterations: Leiden passes (igraph default 2; -1 = until no improvement, several times slower
    at 45,000 genes for nearly the same partition).
    """
    import igraph as ig

    ig.set_random_number_generator(random)
    random.seed(seed)
    part = graph.community_leiden(objective_function="modularity", weights="weight",
                                  resolution=resolution, n_iterations=n_iterations)
    memb = np.asarray(part.membership, dtype=np.int64)
    return renumber_by_size(memb)


def renumber_by_size(memb: np.ndarray) -> np.ndarray:
    """Relabel module ids 0..M-1 by decreasing size, ties broken by the smallest member index."""
    labels, first, counts = np.unique(memb, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    new = np.empty(labels.size, dtype=np.int32)
    new[order] = np.arange(labels.size, dtype=np.int32)
    return new[np.searchsorted(labels, memb)]


def module_sizes(memb: np.ndarray) -> list[int]:
    """Sizes of modules 0..M-1."""
    return np.bincount(memb).astype(int).tolist()
