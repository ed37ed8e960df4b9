"""Comparing two bundles: shared genes, aligned layouts (Procrustes), per-gene neighbourhood change."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.linalg import orthogonal_procrustes

from app.neighbours import neighbour_overlap


def row_map(symbols_from: np.ndarray, symbols_to: np.ndarray) -> np.ndarray:
    """(G_from,) int64: row in ``symbols_to`` of each gene of ``symbols_from``, -1 where absent."""
    if len(symbols_from) == len(symbols_to) and np.array_equal(symbols_from, symbols_to):
        return np.arange(len(symbols_from), dtype=np.int64)   # same vocabulary: the common case
    pos = pd.Series(np.arange(len(symbols_to)), index=pd.Index(np.asarray(symbols_to, dtype=str)))
    pos = pos[~pos.index.duplicated()]
    return pd.Series(np.asarray(symbols_from, dtype=str)).map(pos).fillna(-1).to_numpy(np.int64)


def align_layout(xy_ref: np.ndarray, xy_mov: np.ndarray, mov_to_ref: np.ndarray) -> np.ndarray:
    """Rotate/reflect, scale and shift a 2-D layout onto a reference using the genes both share.

    Rotation: orthogonal Procrustes on the centred shared genes; scale: ratio of their spreads.

    Args:
        xy_ref: (G_ref, 2) reference coordinates.
        xy_mov: (G_mov, 2) coordinates to move.
        mov_to_ref: (G_mov,) row in the reference of each moving gene (-1 = not shared).
    Returns:
        (G_mov, 2) float64 moved coordinates (all genes, shared or not); the moving layout is
        unchanged if fewer than 3 genes are shared.
    """
    shared = mov_to_ref >= 0
    mov = np.asarray(xy_mov, dtype=np.float64)
    if shared.sum() < 3:
        return mov.copy()
    a = np.asarray(xy_ref, dtype=np.float64)[mov_to_ref[shared]]
    m = mov[shared]
    mu_a, mu_m = a.mean(0), m.mean(0)
    a0, m0 = a - mu_a, m - mu_m
    r, _ = orthogonal_procrustes(m0, a0)        # rotation/reflection: m0 @ r ~ a0
    # Match the spread of the shared genes rather than least-squares scale, which shrinks an
    # unrelated layout towards a point.
    scale = np.sqrt((a0 ** 2).sum() / max((m0 ** 2).sum(), 1e-12))
    return (mov - mu_m) @ r * scale + mu_a


def neighbourhood_change(symbols_a: np.ndarray, knn_a: np.ndarray, symbols_b: np.ndarray, knn_b: np.ndarray,
                         k: int) -> pd.DataFrame:
    """Per shared gene, how much its top-k neighbour set differs between bundles A and B.

    Neighbour sets are restricted to the genes both bundles have (as ``precompute.compare``).

    Args:
        symbols_a, symbols_b: gene symbols of each bundle (row order).
        knn_a, knn_b: (G, >=k) stored neighbour rows of each bundle.
        k: neighbours compared (<= both widths).
    Returns:
        DataFrame(gene, jaccard, shared_neighbours, k), one row per gene present in both bundles,
        sorted by jaccard ascending (most changed first; NaN last), then gene.
    """
    a_to_b = row_map(symbols_a, symbols_b)
    b_to_a = row_map(symbols_b, symbols_a)
    both = np.flatnonzero(a_to_b >= 0)
    jac, shared = neighbour_overlap(np.asarray(knn_a)[both], np.asarray(knn_b)[a_to_b[both]], b_to_a, k,
                                    a_shared=a_to_b >= 0)
    df = pd.DataFrame({"gene": np.asarray(symbols_a, dtype=str)[both], "jaccard": jac,
                       "shared_neighbours": shared, "k": k})
    return df.sort_values(["jaccard", "gene"], kind="stable", na_position="last").reset_index(drop=True)
