"""Which genes the encoder sees.

Convention, stated once: a gene is *revealed* when it is passed to the encoder;
every other gene is *masked* (hidden) and only reconstructed. Padding slots
(when a sample measures fewer than K genes) are marked True in ``pad_mask``
and never reach attention or the loss.
"""
from __future__ import annotations

import numpy as np


def reveal_genes(measured: np.ndarray, k: int, rng: np.random.Generator,
                 weights: np.ndarray | None = None, detected: np.ndarray | None = None,
                 detected_share: float = 0.0) -> np.ndarray:
    """Draw min(k, len(measured)) genes without replacement from ``measured``.

    measured: (m,) int gene indices the sample's dataset profiles.
    weights:  optional (m,) positive sampling weights (w_i ∝ freq_i^tau); drawn by
              successive sampling (Efraimidis-Spirakis keys), i.e. the same law as
              numpy's ``choice(p=..., replace=False)``.
    detected, detected_share: with a share > 0, round(share * k) of the k genes (at most all of
              them) are first drawn uniformly from ``detected`` (the sample's non-zero measured
              genes, sorted), and the rest from the other measured genes as above. At small K on
              sparse single-cell data a uniform draw is mostly zeros (K = 256 of ~9,000 genes
              shows a PBMC cell ~40 expressed genes); the paper's K = 2048 is silent on this.
    Returns (min(k, m),) sorted gene indices.
    """
    m = measured.shape[0]
    if m <= k:
        return measured.copy()
    first = np.zeros(0, dtype=measured.dtype)
    if detected_share > 0 and detected is not None and detected.size:
        kd = min(int(round(detected_share * k)), detected.size)
        first = detected[rng.choice(detected.size, size=kd, replace=False)] if kd < detected.size else detected
        keep = ~np.isin(measured, first, assume_unique=True)
        measured, k = measured[keep], k - first.size
        weights = None if weights is None else weights[keep]
        m = measured.shape[0]
    if weights is None:
        idx = rng.choice(m, size=k, replace=False)
    else:
        keys = rng.exponential(size=m) / weights  # smallest keys win: P(first) ∝ w
        idx = np.argpartition(keys, k)[:k] if k < m else np.arange(m)
    return np.sort(np.concatenate([first, measured[idx]]))


def frequency_weights(detection_counts: np.ndarray, tau: float) -> np.ndarray:
    """w_i ∝ m_i^tau from per-gene detection counts (genes never detected get m = 1)."""
    m = np.maximum(np.asarray(detection_counts, dtype=np.float64), 1.0)
    return m ** tau
