"""Checks that a matrix holds raw counts, with messages that say what was found and how to proceed.

TxFM stores raw non-negative integer counts; normalisation happens in
``txfm``. Values that are not counts (log-normalised, TPM, FPKM) are refused
unless the user explicitly asks for rounding (``--allow-non-integer``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp


class DataError(ValueError):
    """An input file cannot be turned into raw counts; the message names the file and the fix."""


# integer test tolerance: counts stored as float32 are exact, so only rounding noise is allowed
_INT_TOL = 1e-6

ROUNDING_RISK = ("rounding keeps the values' scale: estimated counts (salmon, RSEM, kallisto) round to "
                 "near-raw counts, but rounding TPM/FPKM or log values yields numbers that are not counts "
                 "and the Poisson loss will model them wrongly")


def describe_non_integer(x: sp.csr_matrix) -> str:
    """One-line diagnosis of a non-integer matrix (n, g): what the values look like and their statistics."""
    d = np.asarray(x.data, dtype=np.float64)
    nz = d[d != 0]
    frac = float(np.mean(np.abs(nz - np.rint(nz)) > _INT_TOL)) if nz.size else 0.0
    vmax = float(nz.max()) if nz.size else 0.0
    sums = np.asarray(x.sum(axis=1)).ravel()
    med = float(np.median(sums)) if sums.size else 0.0
    stats = f"max {vmax:.4g}, {100 * frac:.0f}% of non-zero values non-integer, median row sum {med:.4g}"
    if sums.size and np.allclose(sums[sums > 0], 1e6, rtol=0.01):
        return f"values look like TPM/CPM (rows sum to 1e6; {stats})"
    if sums.size and np.allclose(sums[sums > 0], 1e4, rtol=0.01):
        return f"values look library-size normalised to 1e4 ({stats})"
    if vmax <= 30:
        return f"values look log-normalised ({stats})"
    return f"values are not integers, e.g. FPKM/TPM or estimated counts ({stats})"


def check_counts(x: sp.spmatrix | np.ndarray, where: str, allow_non_integer: bool = False,
                 hint: str = "") -> tuple[sp.csr_matrix, int]:
    """Validate one chunk of counts and return it as CSR int64 (n, g) without explicit zeros.

    Refuses NaN, Inf and negative values always; refuses non-integer values
    unless ``allow_non_integer`` (then rounds to the nearest integer).
    ``where`` names the file (and rows) for the message; ``hint`` adds a
    format-specific way out (e.g. which h5ad layers exist). Returns
    ``(counts, n_rounded)`` where ``n_rounded`` counts entries changed by rounding.
    """
    x = sp.csr_matrix(x)
    d = x.data
    if d.size == 0:
        return sp.csr_matrix(x.shape, dtype=np.int64), 0
    if np.issubdtype(d.dtype, np.floating) or np.issubdtype(d.dtype, np.complexfloating):
        bad = ~np.isfinite(d)
        if bad.any():
            n_nan = int(np.isnan(d).sum())
            raise DataError(f"{where}: {n_nan} NaN and {int(bad.sum()) - n_nan} infinite values; raw counts are "
                            f"finite. Re-export the raw count matrix (missing measurements are not counts)"
                            + (f"; {hint}" if hint else ""))
    elif not np.issubdtype(d.dtype, np.integer) and d.dtype != np.bool_:
        raise DataError(f"{where}: values have dtype {d.dtype}, expected numbers; check the file's format")
    if d.min() < 0:
        raise DataError(f"{where}: {int((d < 0).sum())} negative values (min {d.min():.4g}); counts are >= 0, "
                        f"so this looks centred/scaled or batch-corrected data. Use the raw count matrix"
                        + (f"; {hint}" if hint else ""))
    n_rounded = 0
    if not np.issubdtype(d.dtype, np.integer):
        nonint = np.abs(d - np.rint(d)) > _INT_TOL
        if nonint.any():
            if not allow_non_integer:
                raise DataError(f"{where}: {describe_non_integer(x)}. TxFM needs raw integer counts: point to the "
                                f"raw counts" + (f" ({hint})" if hint else "") + ", or pass --allow-non-integer "
                                f"to round them ({ROUNDING_RISK})")
            n_rounded = int(nonint.sum())
    out = sp.csr_matrix((np.rint(d).astype(np.int64), x.indices, x.indptr), shape=x.shape)
    out.eliminate_zeros()
    out.sort_indices()
    return out, n_rounded


def check_sample_ids(ids: pd.Index, where: str) -> None:
    """Refuse duplicate sample ids within one source, naming examples and the fix."""
    dup = ids[ids.duplicated()].unique()
    if len(dup):
        raise DataError(f"{where}: {len(dup)} duplicate sample ids (e.g. {list(map(str, dup[:3]))}); each sample "
                        f"needs a unique id. Make them unique in the source (e.g. anndata's "
                        f"`adata.obs_names_make_unique()`) or split the file by batch")


def check_not_empty(n_samples: int, n_genes: int, where: str) -> None:
    """Refuse a matrix with no samples or no genes."""
    if n_samples == 0 or n_genes == 0:
        raise DataError(f"{where}: the count matrix is empty ({n_samples} samples x {n_genes} genes); "
                        f"check that the file holds data or remove it from --source")
