"""Which genes the encoder sees.

Convention, stated once: a gene is *revealed* when it is passed to the encoder;
every other gene is *masked* (hidden) and only reconstructed. Padding slots
(when a sample measures fewer than K genes) are marked True in ``pad_mask``
and never reach attention or the loss.
"""
from __future__ import annotations

import numpy as np


def reveal_genes(measured: np.ndarray, k: int, rng: np.random.Generator,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """Draw min(k, len(measured)) genes without replacement from ``measured``.

    measured: (m,) int gene indices the sample's dataset profiles.
    weights:  optional (m,) positive sampling weights (w_i ∝ freq_i^tau); drawn by
              successive sampling (Efraimidis-Spirakis keys), i.e. the same law as
              numpy's ``choice(p=..., replace=False)``.
    Returns (min(k, m),) sorted gene indices.
    """
    m = measured.shape[0]
    if m <= k:
        return measured.copy()
    if weights is None:
        idx = rng.choice(m, size=k, replace=False)
    else:
        keys = rng.exponential(size=m) / weights  # smallest keys win: P(first) ∝ w
        idx = np.argpartition(keys, k)[:k]
    return np.sort(measured[idx])


def frequency_weights(detection_counts: np.ndarray, tau: float) -> np.ndarray:
    """w_i ∝ m_i^tau from per-gene detection counts (genes never detected get m = 1)."""
    m = np.maximum(np.asarray(detection_counts, dtype=np.float64), 1.0)
    return m ** tau
