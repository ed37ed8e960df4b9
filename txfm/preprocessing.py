"""Count preprocessing: library-size normalisation and log1p."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def library_normalize_log1p(counts: sp.csr_matrix | np.ndarray,
                            library_size: float | np.ndarray = 1e5) -> sp.csr_matrix | np.ndarray:
    """log1p(x / sum(x) * L) per row (sample). Rows of all zeros stay zero.

    counts: (n, G) raw counts; library_size: L, one float or (n,) per-row targets.
    Returns float32 of the same kind (CSR or dense).
    """
    if sp.issparse(counts):
        x = sp.csr_matrix(counts, dtype=np.float32, copy=True)
        lib = np.asarray(x.sum(axis=1)).ravel()
        target = np.broadcast_to(np.asarray(library_size, dtype=np.float64), lib.shape)
        scale = np.divide(target, lib, out=np.zeros_like(target), where=lib > 0).astype(np.float32)
        x.data *= np.repeat(scale, np.diff(x.indptr))
        np.log1p(x.data, out=x.data)
        return x
    x = np.asarray(counts, dtype=np.float32)
    lib = x.sum(axis=1, keepdims=True)
    target = np.broadcast_to(np.asarray(library_size, dtype=np.float32).reshape(-1, 1), lib.shape)
    scale = np.divide(target, lib, out=np.zeros_like(lib), where=lib > 0)
    return np.log1p(x * scale).astype(np.float32)


def log1p(counts: sp.csr_matrix | np.ndarray) -> sp.csr_matrix | np.ndarray:
    """log1p of raw counts without library normalisation (the ablation)."""
    if sp.issparse(counts):
        x = sp.csr_matrix(counts, dtype=np.float32, copy=True)
        np.log1p(x.data, out=x.data)
        return x
    return np.log1p(np.asarray(counts, dtype=np.float32))


def preprocess(counts, method: str = "libnorm_log1p", library_size: float = 1e5):
    """Dispatch on the preprocessing name stored in TrainConfig."""
    if method == "libnorm_log1p":
        return library_normalize_log1p(counts, library_size)
    if method == "log1p":
        return log1p(counts)
    raise ValueError(f"unknown preprocessing {method!r}; use 'libnorm_log1p' or 'log1p'")
