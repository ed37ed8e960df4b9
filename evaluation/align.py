"""The paper's alignment of cell embeddings before perturbation metrics: PCA fitted on the
non-targeting control cells, then per-batch standardisation.

Per-batch standardisation uses each batch's CONTROL cells (centre and scale every component by
the controls of the same batch, as EFAAR's "centerscale on controls"), so that a perturbation's
vector is its shift away from the controls measured alongside it. A batch with fewer than
``min_controls`` controls is standardised by all of its cells instead (recorded in the result).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Aligned:
    z: np.ndarray  # (n, k) aligned embeddings
    n_components: int
    explained_variance_ratio: float  # of the control PCA, summed over kept components
    batches_without_controls: list[str] = field(default_factory=list)


def align_embeddings(z: np.ndarray, batch: np.ndarray, is_control: np.ndarray, n_components: int = 50,
                     min_controls: int = 10, seed: int = 0) -> Aligned:
    """Align (n, D) embeddings: PCA on the controls -> (n, k), then standardise per batch.

    Args:
        z: (n, D) embeddings of all cells.
        batch: (n,) batch (replicate) label per cell.
        is_control: (n,) bool, the non-targeting control cells.
        n_components: k, capped by D and by the number of controls - 1.
        min_controls: a batch needs this many controls to be standardised by them.
    Returns:
        Aligned with z of shape (n, k): within each batch its controls have mean 0 and std 1
        per component.
    """
    from sklearn.decomposition import PCA

    z = np.asarray(z, dtype=np.float64)
    batch = np.asarray(batch).astype(str)
    is_control = np.asarray(is_control, dtype=bool)
    if z.ndim != 2 or len(batch) != len(z) or len(is_control) != len(z):
        raise ValueError(f"embedding {z.shape}, {len(batch)} batch labels and {len(is_control)} control flags "
                         "must describe the same cells")
    n_ctrl = int(is_control.sum())
    if n_ctrl < 3:
        raise ValueError(f"only {n_ctrl} control cells; the alignment fits PCA on controls — check --control "
                         "(the label of non-targeting cells)")
    k = max(1, min(n_components, z.shape[1], n_ctrl - 1))
    pca = PCA(n_components=k, random_state=seed).fit(z[is_control])
    y = pca.transform(z)
    out = np.empty_like(y)
    fallback = []
    for b in np.unique(batch):
        rows = batch == b
        ref = rows & is_control
        if ref.sum() < min_controls:
            ref = rows
            fallback.append(str(b))
        mu, sd = y[ref].mean(0), y[ref].std(0)
        out[rows] = (y[rows] - mu) / np.where(sd > 0, sd, 1.0)
    return Aligned(out.astype(np.float32), k, float(pca.explained_variance_ratio_.sum()), fallback)
