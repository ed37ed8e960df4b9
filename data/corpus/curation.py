"""Curation: the paper's filters scaled to dataset size, empty/mito/duplicate cells, phenoprint curation.

The paper (DiverseRNA-1.4M) keeps genes detected in >= 1,000 cells and cells
with >= 2,000 detected genes, on single-cell sources of 30k-500k cells. Those
absolute numbers would empty the small public sets this project uses, so the
defaults scale with the dataset and cap at the paper's values:

* gene filter, per dataset: detected in >= min(1000, ceil(1% of its cells)) cells.
  A gene enters the corpus vocabulary when at least one dataset passes it.
* cell filter, per single-cell dataset: >= min(2000, ceil(1% of the genes the
  dataset detects)) detected genes (about 200 at 20k genes: scanpy's usual default).
* bulk datasets (median library >= 1e6 counts, or fewer than 100 samples) get
  no cell filter and a gene threshold of 1 sample, so single-cell thresholds
  never destroy them.

Samples with zero counts are always removed (library-size normalisation is
undefined for them). Everything removed is counted in the report with its reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

PAPER_MIN_CELLS = 1000
PAPER_MIN_GENES = 2000
BULK_MEDIAN_LIBRARY = 1e6
BULK_MAX_SAMPLES = 100


@dataclass(frozen=True)
class CurationConfig:
    """Filter settings; ``None`` thresholds mean "scaled to the dataset" (see module docstring)."""

    min_cells: int | None = None          # keep a gene when some single-cell dataset detects it in >= N cells (default: min(1000, 1% of the dataset's cells); bulk datasets use 1)
    min_genes: int | None = None          # keep a single-cell sample with >= M detected genes (default: min(2000, 1% of the genes the dataset detects); bulk samples are not filtered)
    min_counts: int = 1                   # drop samples with fewer total counts (1: empty samples)
    max_mito_fraction: float | None = None  # drop samples whose MT- genes hold more than this fraction of counts (default: off)
    deduplicate: bool = True              # drop exact duplicate samples within a dataset (keep the first)
    kinds: dict = field(default_factory=dict)  # dataset name -> "bulk" | "single-cell" (overrides detection)

    def __post_init__(self) -> None:
        from common.options import check_range
        check_range("min_cells", self.min_cells, lo=0, integer=True, none_ok=True)
        check_range("min_genes", self.min_genes, lo=0, integer=True, none_ok=True)
        check_range("min_counts", self.min_counts, lo=0, integer=True)
        check_range("max_mito_fraction", self.max_mito_fraction, lo=0, hi=1, none_ok=True)


def dataset_kind(name: str, n_samples: int, median_library: float, config: CurationConfig,
                 hint: str | None = None) -> str:
    """"bulk" or "single-cell": an explicit override, else what the format says (``hint``: TileDB-SOMA
    sources are single-cell, ARCHS4 files bulk), else library size / sample count."""
    if name in config.kinds:
        return config.kinds[name]
    if hint in ("bulk", "single-cell"):
        return hint
    if median_library >= BULK_MEDIAN_LIBRARY or n_samples < BULK_MAX_SAMPLES:
        return "bulk"
    return "single-cell"


def gene_threshold(n_cells: int, kind: str, config: CurationConfig) -> int:
    """Minimum number of cells a gene must be detected in, for a dataset of ``n_cells`` samples."""
    if kind == "bulk":
        return 1
    if config.min_cells is not None:
        return int(config.min_cells)
    return max(1, min(PAPER_MIN_CELLS, math.ceil(0.01 * n_cells)))


def cell_threshold(n_detected_genes: int, kind: str, config: CurationConfig) -> int:
    """Minimum detected genes per cell, for a dataset detecting ``n_detected_genes`` genes in total."""
    if kind == "bulk":
        return 0
    if config.min_genes is not None:
        return int(config.min_genes)
    return max(1, min(PAPER_MIN_GENES, math.ceil(0.01 * n_detected_genes)))


def cell_filter(n_genes: np.ndarray, total: np.ndarray, mito: np.ndarray, duplicate: np.ndarray,
                min_genes: int, config: CurationConfig) -> tuple[np.ndarray, dict[str, int]]:
    """Keep mask over a dataset's samples and the number removed per reason.

    Inputs are per-sample arrays (n,): detected genes, total counts, counts in
    mitochondrial genes, and whether the sample duplicates an earlier one.
    Reasons are applied in order (empty, too few genes, mito, duplicate) and
    each sample is counted under the first reason that removes it.
    """
    keep = np.ones(n_genes.shape[0], dtype=bool)
    removed: dict[str, int] = {}

    def apply(reason: str, bad: np.ndarray) -> None:
        hit = keep & bad
        if hit.any():
            removed[reason] = int(hit.sum())
            keep[hit] = False

    apply(f"fewer than {config.min_counts} counts (empty)", total < config.min_counts)
    if min_genes > 0:
        apply(f"fewer than {min_genes} detected genes", n_genes < min_genes)
    if config.max_mito_fraction is not None:
        frac = np.divide(mito, total, out=np.zeros_like(mito, dtype=float), where=total > 0)
        apply(f"mitochondrial fraction above {config.max_mito_fraction}", frac > config.max_mito_fraction)
    if config.deduplicate:
        apply("exact duplicate of an earlier sample", duplicate)
    return keep, removed


def row_hashes(x: sp.csr_matrix) -> np.ndarray:
    """(n,) uint64 hash of each row's (indices, values); equal rows give equal hashes.

    One pass over byte strings of the whole matrix (slicing ``bytes`` is cheaper than slicing arrays);
    Python's hash of the row's bytes, so values are stable within a process only.
    """
    x = sp.csr_matrix(x)
    ptr = x.indptr.tolist()
    si, sd = x.indices.itemsize, x.data.itemsize
    ib, db = x.indices.tobytes(), x.data.tobytes()
    return np.fromiter((hash((ib[lo * si:hi * si], db[lo * sd:hi * sd])) & 0xFFFFFFFFFFFFFFFF
                        for lo, hi in zip(ptr[:-1], ptr[1:])), dtype=np.uint64, count=x.shape[0])


# ---------------------------------------------------------------------- control-PCA alignment
# The paper's alignment of cell embeddings before perturbation statistics (one implementation, used by
# the phenoprint curation here and by `python -m evaluation perturbation`): PCA fitted on the
# non-targeting control cells, then per-batch standardisation by each batch's CONTROL cells (EFAAR's
# "centerscale on controls"), so that a perturbation's vector is its shift away from the controls
# measured alongside it. A batch with fewer than ``min_controls`` controls is standardised by all of
# its cells instead (recorded in the result).
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


# ---------------------------------------------------------------------- phenoprint curation
def pca_embedding(x: sp.csr_matrix, is_control: np.ndarray, batch: np.ndarray | None = None,
                  n_components: int = 50, seed: int = 0) -> np.ndarray:
    """log1p(CP10k) counts aligned by ``align_embeddings`` (PCA on the controls, per-batch
    standardisation by them). (n, k). Fewer than 3 controls: the PCA and standardisation use all cells."""
    x = sp.csr_matrix(x, dtype=np.float64)
    lib = np.asarray(x.sum(axis=1)).ravel()
    x = sp.diags(1e4 / np.maximum(lib, 1)) @ x
    x.data = np.log1p(x.data)
    dense = x.toarray()
    is_control = np.asarray(is_control, dtype=bool)
    if is_control.sum() < 3:
        is_control = np.ones(len(dense), dtype=bool)
    batch = np.zeros(len(dense), dtype=int) if batch is None else np.asarray(batch)
    return align_embeddings(dense, batch, is_control, n_components, seed=seed).z


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def embedding_consistency(z: np.ndarray, labels: pd.Series | np.ndarray, control: str | None = "non-targeting",
                          ignore: tuple[str, ...] = ("unassigned", "", "nan"), n_null: int = 10000,
                          seed: int = 0) -> pd.DataFrame:
    """Perturbation consistency of cells in an embedding (the paper's statistic; any embedding).

    ``z``: (n, k) cell embeddings, already aligned (e.g. PCA on controls + standardisation);
    ``labels``: perturbation per cell (n,). For each perturbation with >= 2 cells the
    statistic is the mean leave-one-out cosine: the cosine of each of its cells to the mean
    of its OTHER cells, averaged over its cells. The null is the cosine of up to ``n_null``
    random cells from outside the perturbation (its own cells excluded) to its mean embedding;
    the empirical p-value is (1 + #null >= statistic) / (1 + #null).
    Returns DataFrame(perturbation, n_cells, statistic, p_value), one row per perturbation in
    sorted order (controls and ``ignore`` labels excluded; perturbations with one cell get NaN).
    """
    z = np.asarray(z, dtype=np.float64)
    labels = pd.Series(np.asarray(labels, dtype=object)).astype(str).to_numpy()
    if z.ndim != 2 or z.shape[0] != labels.size:
        raise ValueError(f"embedding has shape {z.shape} but there are {labels.size} labels; "
                         "pass one label per embedded cell")
    rng = np.random.default_rng(seed)
    rows = []
    for pert in sorted(set(labels) - set(ignore) - ({control} if control else set())):
        own = np.flatnonzero(labels == pert)
        n = own.size
        if n < 2:
            rows.append((pert, n, np.nan, np.nan))
            continue
        e = z[own]
        total = e.sum(0)
        loo = _unit((total[None, :] - e) / (n - 1))
        stat = float(np.mean(np.sum(_unit(e) * loo, axis=1)))
        others = np.flatnonzero(labels != pert)
        pick = others if others.size <= n_null else rng.choice(others, n_null, replace=False)
        null = _unit(z[pick]) @ _unit(total / n)
        p = (1 + int(np.sum(null >= stat))) / (1 + null.size)
        rows.append((pert, n, stat, p))
    return pd.DataFrame(rows, columns=["perturbation", "n_cells", "statistic", "p_value"])


def pca_consistency(x: sp.csr_matrix, labels: pd.Series | np.ndarray, control: str | None = "non-targeting",
                    ignore: tuple[str, ...] = ("unassigned", "", "nan"), n_components: int = 50,
                    n_null: int = 10000, seed: int = 0, batch: np.ndarray | None = None) -> pd.DataFrame:
    """Perturbation consistency from a PCA embedding (the paper's statistic, with PCA as the model).

    ``x``: counts (n, g); ``labels``: perturbation per cell (n,). Cells are
    embedded with log1p(CP10k) + PCA fit on ``control`` cells, standardised by
    the controls of each ``batch`` (``pca_embedding``), then scored by ``embedding_consistency`` (mean leave-one-out
    cosine vs a null of up to ``n_null`` cells from outside the perturbation).
    Returns DataFrame(perturbation, n_cells, statistic, p_value), one row per perturbation
    (controls and ``ignore`` labels excluded; perturbations with one cell get NaN).
    """
    labels = pd.Series(np.asarray(labels, dtype=object)).astype(str).to_numpy()
    is_control = labels == control if control is not None else np.zeros(len(labels), dtype=bool)
    z = pca_embedding(x, is_control, batch, n_components, seed)
    return embedding_consistency(z, labels, control, ignore, n_null, seed)


def phenoprint_keep(labels: np.ndarray, scores: pd.DataFrame, alpha: float = 0.1,
                    control: str | None = "non-targeting",
                    ignore: tuple[str, ...] = ("unassigned", "", "nan")) -> tuple[np.ndarray, pd.DataFrame]:
    """Keep mask (n,) over cells: drop cells of perturbations whose consistency p-value >= ``alpha``.

    ``scores`` has columns perturbation, p_value (e.g. from ``pca_consistency``
    or a model's table). Controls, ``ignore`` labels and perturbations absent
    from ``scores`` are kept; perturbations with a missing p-value are dropped
    (their consistency cannot be shown). Returns (keep, scores with a ``kept`` column).
    """
    for col in ("perturbation", "p_value"):
        if col not in scores.columns:
            raise ValueError(f"phenoprint scores need columns perturbation and p_value; found {list(scores.columns)}")
    s = scores.copy()
    s["perturbation"] = s["perturbation"].astype(str)
    s["kept"] = s["p_value"].lt(alpha)
    drop = set(s.loc[~s["kept"], "perturbation"]) - set(ignore) - ({control} if control else set())
    labels = pd.Series(np.asarray(labels, dtype=object)).astype(str).to_numpy()
    return ~np.isin(labels, list(drop)), s
