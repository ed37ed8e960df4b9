"""Labelled count data for the benchmarks: an .h5ad file or one dataset of a corpus.

Both give raw counts (n, g) CSR over the genes the source measures, the gene names and
the per-cell obs table. For a corpus the columns are the dataset's measured genes, so a
screen that profiles only a few hundred genes is read as such (not as 48,000 zeros).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass
class LabelledCounts:
    counts: sp.csr_matrix  # (n, g) raw counts
    genes: list[str]  # (g,) symbols or Ensembl ids, in column order
    obs: pd.DataFrame  # (n rows) per-cell metadata, index reset
    name: str  # where the data came from (file or corpus:dataset)

    def column(self, name: str) -> np.ndarray:
        """(n,) str values of an obs column; a clear error naming the source when absent."""
        if name not in self.obs.columns:
            raise ValueError(f"{self.name}: no obs column {name!r} (has {list(self.obs.columns)}); "
                             f"pass the right column name")
        return self.obs[name].astype(str).to_numpy()

    def subset(self, rows: np.ndarray) -> "LabelledCounts":
        return LabelledCounts(self.counts[rows], self.genes, self.obs.iloc[rows].reset_index(drop=True), self.name)


def read_h5ad(path: str | Path, layer: str | None = None) -> LabelledCounts:
    """Raw counts from ``X`` (or ``layers[layer]``) of an .h5ad file."""
    import anndata

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such .h5ad file; check the --input path")
    a = anndata.read_h5ad(path)
    if layer is not None and layer not in a.layers:
        raise ValueError(f"{path}: no layer {layer!r} (has {list(a.layers)}); drop --layer to use X")
    x = sp.csr_matrix(a.layers[layer] if layer else a.X)
    _check_counts(x, str(path))
    return LabelledCounts(x, [str(g) for g in a.var_names], a.obs.reset_index(drop=True), str(path))


def read_corpus_dataset(corpus_dir: str | Path, dataset: str) -> LabelledCounts:
    """Rows of one dataset of a corpus, restricted to the genes that dataset measures."""
    from txfm.corpus import Corpus

    c = Corpus(corpus_dir)
    names = [d.name for d in c.datasets]
    if dataset not in names:
        raise ValueError(f"{corpus_dir}: no dataset {dataset!r} (has {names}); pass one of them")
    i = names.index(dataset)
    rows = np.flatnonzero(c.obs["dataset"].astype(str).to_numpy() == dataset)
    x, _ = c.read_rows(rows)
    measured = np.flatnonzero(c.measured_mask(i))
    return LabelledCounts(sp.csr_matrix(x[:, measured]), [c.genes[j] for j in measured],
                          c.obs.iloc[rows].reset_index(drop=True), f"{corpus_dir}:{dataset}")


def read_input(path: str | Path, dataset: str | None = None, layer: str | None = None) -> LabelledCounts:
    """An .h5ad file, or (with ``dataset``) a corpus directory."""
    p = Path(path)
    if p.suffix == ".h5ad":
        return read_h5ad(p, layer)
    if p.is_dir() and (p / "manifest.json").is_file():
        if dataset is None:
            raise ValueError(f"{p}: is a corpus; pass --dataset NAME to choose one of its datasets")
        return read_corpus_dataset(p, dataset)
    raise FileNotFoundError(f"{p}: neither an .h5ad file nor a corpus directory (with manifest.json)")


def _check_counts(x: sp.csr_matrix, name: str) -> None:
    if x.nnz and (x.data.min() < 0 or not np.all(np.isfinite(x.data))):
        raise ValueError(f"{name}: counts must be finite and non-negative; pass raw counts (--layer)")
