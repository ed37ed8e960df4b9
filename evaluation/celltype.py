"""Cell-type structure of an embedding against known labels:

* kNN accuracy: each cell's label predicted by a majority vote of its k nearest other cells
  (cosine, leave-one-out), reported as accuracy and balanced accuracy;
* clusters: Leiden (modularity, igraph) on the k-nearest-neighbour graph, with precompute's
  ``cosine_knn``/``knn_graph``/``leiden_modules``; agreement with the labels as ARI and NMI.

Embeddings are centred per column before the cosine (a shared offset would otherwise make all
cells look alike).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CellTypeParams:
    k: int = 15  # neighbours for the vote and for the Leiden graph
    resolutions: tuple[float, ...] = (0.5, 1.0, 2.0)  # Leiden resolutions
    ignore: tuple[str, ...] = ("?", "", "nan", "unassigned")  # labels left out
    seed: int = 0  # seed of the subsampling and Leiden

    def __post_init__(self) -> None:
        from common.options import check_range
        check_range("k", self.k, lo=1, integer=True, what="neighbours for the vote and the Leiden graph")
        for r in self.resolutions:
            check_range("resolutions", r, lo=0, lo_open=True)
        check_range("seed", self.seed, lo=0, integer=True)


def knn_vote(indices: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n,) majority label among each row's neighbours (n, k) (self already excluded).

    Ties go to the label of the nearest neighbour among the tied ones.
    """
    codes, lab = np.unique(labels, return_inverse=True)
    n, k = indices.shape
    nl = lab[indices]                                                     # (n, k)
    counts = np.zeros((n, len(codes)), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(n), k), nl.ravel()), 1)
    best = counts.max(1, keepdims=True)
    tied = counts[np.arange(n)[:, None], nl] == best                      # neighbour's label is a winner
    first = np.argmax(tied, axis=1)                                       # nearest such neighbour
    return codes[nl[np.arange(n), first]]


def evaluate_celltypes(z: np.ndarray, labels: np.ndarray, params: CellTypeParams = CellTypeParams()) -> dict:
    """Metrics of one (n, D) embedding vs (n,) labels (cells with ``ignore`` labels dropped).

    Returns {"n_cells", "n_labels", "knn_accuracy", "knn_balanced_accuracy",
    "ari@res", "nmi@res", "n_clusters@res" per resolution}.
    """
    from sklearn.metrics import adjusted_rand_score, balanced_accuracy_score, normalized_mutual_info_score

    from precompute.knn import cosine_knn
    from precompute.modules import knn_graph, leiden_modules

    labels = np.asarray(labels).astype(str)
    keep = ~np.isin(labels, list(params.ignore))
    z, labels = np.asarray(z, dtype=np.float32)[keep], labels[keep]
    if len(np.unique(labels)) < 2:
        raise ValueError("cell-type metrics need at least two labels")
    z = z - z.mean(0)
    idx, sims = cosine_knn(z, k=min(params.k, len(z) - 1))
    pred = knn_vote(idx, labels)
    out = {"n_cells": int(len(z)), "n_labels": int(len(np.unique(labels))),
           "knn_accuracy": float((pred == labels).mean()),
           "knn_balanced_accuracy": float(balanced_accuracy_score(labels, pred))}
    graph = knn_graph(idx, sims)
    for res in params.resolutions:
        memb = leiden_modules(graph, res, seed=params.seed)
        out[f"ari@{res:g}"] = float(adjusted_rand_score(labels, memb))
        out[f"nmi@{res:g}"] = float(normalized_mutual_info_score(labels, memb))
        out[f"n_clusters@{res:g}"] = int(memb.max() + 1)
    return out
