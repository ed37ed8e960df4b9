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


def read_counts_file(path: str | Path, layer: str | None = None, gene_table="none") -> LabelledCounts:
    """Raw counts of a count file (.h5ad, 10x, CSV/TSV), read, validated and harmonised by ``data``.

    Goes through ``data.embed.read_user_counts``: the readers and count checks of
    ``python -m data build-corpus`` (NaN, negative, non-integer, empty and all-zero matrices
    refused) and its gene mapping with ``gene_table`` ("none": ids kept as given; a genes.tsv
    path, a references folder or a GeneTable: symbols, aliases, Ensembl ids mapped).
    ``layer`` None means the readers' "auto" choice (layers['counts'], else X when integer, else raw.X).
    """
    from data.embed import read_user_counts

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file; check the --input path")
    d = read_user_counts(path, gene_table=gene_table, layer=layer or "auto")
    return LabelledCounts(d.counts, list(d.genes), d.obs.reset_index(drop=True), str(path))


def read_h5ad(path: str | Path, layer: str | None = None, gene_table="none") -> LabelledCounts:
    """Raw counts of an .h5ad file (see ``read_counts_file``)."""
    return read_counts_file(path, layer, gene_table)


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


def read_input(path: str | Path, dataset: str | None = None, layer: str | None = None,
               gene_table="none") -> LabelledCounts:
    """A count file (any format ``data`` reads), or (with ``dataset``) a corpus directory."""
    p = Path(path)
    if p.is_dir() and (p / "manifest.json").is_file():
        if dataset is None:
            raise ValueError(f"{p}: is a corpus; pass --dataset NAME to choose one of its datasets")
        return read_corpus_dataset(p, dataset)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or corpus directory; check the --input path")
    return read_counts_file(p, layer, gene_table)


def references_gene_table(references: str | Path | None):
    """The genes.tsv of a references folder when it has one (else "none": ids kept as given)."""
    if references and (Path(references) / "genes" / "genes.tsv").is_file():
        return str(Path(references) / "genes" / "genes.tsv")
    return "none"
