"""Low-rank subspaces of a gene matrix: standardise the columns, then PCA with the full spectrum."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch


def pca_scores(m: np.ndarray, standardise: bool = True,
               fit_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Standardise (or only centre), then PCA over genes.

    Args:
        m: (G, D) gene matrix.
        standardise: z-score every column (the paper's recipe for codebook and decoder). False
            only centres the columns, keeping their relative scale: for PCA loadings weighted
            by sqrt(eigenvalue), standardising would undo the weighting (whiten them).
        fit_rows: genes (row indices) the column moments and the axes are fitted on; every row is
            then projected onto those axes. The bundle fits on the honest recall population
            (``precompute.bundle.recall.recall_population``), so rarely measured genes, whose rows stay
            near initialisation, do not shape the subspace, and the population's scores equal a
            fit on the population alone (what ``evaluation curves`` and ``evaluation results`` do).
            None: all rows.
    Returns:
        scores: (G, W) float32 with W = min(G, D), columns by decreasing variance
            (rank r = first r columns). Each component's sign is fixed so that its largest
            absolute loading is positive (deterministic across runs and BLAS builds).
        explained_variance: (W,) float64, variance of each score column (ddof=1).
    """
    x = np.asarray(m, dtype=np.float32)
    d = x.shape[1]
    fit = x if fit_rows is None else x[np.asarray(fit_rows)]
    g = fit.shape[0]
    if g < 2:
        raise ValueError(f"need at least 2 genes for PCA, got {g}")
    # float64 moments, float32 products: the big (G, D) products are BLAS sgemm (fast on CPU)
    mu = fit.mean(axis=0, dtype=np.float64)
    sd = fit.std(axis=0, dtype=np.float64) if standardise else np.ones(d)
    sd[sd == 0] = 1.0
    z = torch.from_numpy(((x - mu.astype(np.float32)) / sd.astype(np.float32)).astype(np.float32))
    zf = z if fit_rows is None else z[torch.from_numpy(np.asarray(fit_rows, dtype=np.int64))]
    if d <= g:
        cov = (zf.T @ zf).double().numpy() / (g - 1)    # (D, D); cheaper than an SVD of (G, D)
        evals, evecs = np.linalg.eigh(cov)
        order = np.argsort(evals)[::-1]
        evals, evecs = np.clip(evals[order], 0, None), evecs[:, order]
    else:
        _, s, vt = np.linalg.svd(zf.double().numpy(), full_matrices=False)
        evals, evecs = s ** 2 / (g - 1), vt.T
    w = min(g, d)
    evals, evecs = evals[:w], evecs[:, :w]
    flip = np.sign(evecs[np.argmax(np.abs(evecs), axis=0), np.arange(w)])
    flip[flip == 0] = 1.0
    evecs = evecs * flip
    scores = (z @ torch.from_numpy(evecs.astype(np.float32))).numpy()
    return scores, evals


def rank_sweep(width: int, start: int = 8) -> list[int]:
    """Ranks 8, 16, 32, ... below `width`, then `width` itself: e.g. 768 -> [8, ..., 512, 768]."""
    ranks, r = [], start
    while r < width:
        ranks.append(r)
        r *= 2
    ranks.append(width)
    return ranks


def spectrum_table(name: str, explained_variance: np.ndarray) -> pd.DataFrame:
    """Rows (matrix, component, explained_variance, explained_variance_ratio) for spectrum.parquet."""
    ev = np.asarray(explained_variance, dtype=np.float64)
    total = ev.sum()
    return pd.DataFrame({"matrix": name, "component": np.arange(1, ev.size + 1, dtype=np.int32),
                         "explained_variance": ev,
                         "explained_variance_ratio": ev / total if total > 0 else np.zeros_like(ev)})
