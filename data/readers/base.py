"""What every reader provides: gene ids, sample count and a stream of count chunks."""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass
class Chunk:
    """A block of consecutive samples from one source.

    ``counts``: CSR (n, g) in the source's gene order, values as stored (not yet validated).
    ``obs``: n rows, index = the source's sample ids (strings), original metadata columns.
    ``start``: row index of the first sample within the source.
    """

    counts: sp.csr_matrix
    obs: pd.DataFrame
    start: int


_SUFFIXES = (".gz", ".bz2", ".h5ad", ".h5", ".csv", ".tsv", ".txt", ".mtx", ".count", ".counts")


def dataset_name(path: Path) -> str:
    """Dataset name from a file stem: ``sc_celseq2.count.csv.gz`` -> ``sc_celseq2``."""
    name = path.name
    changed = True
    while changed:
        changed = False
        for s in _SUFFIXES:
            if name.lower().endswith(s) and len(name) > len(s):
                name, changed = name[: -len(s)], True
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", name)


class SourceReader(ABC):
    """One source dataset (a file or a 10x folder) read chunk by chunk.

    Attributes set by subclasses: ``path``, ``name`` (dataset name),
    ``genes`` (array of the source's gene ids, length g), ``n_samples``,
    ``dense`` (whether the stored matrix is dense), ``nnz`` (stored non-zeros
    or None when unknown) and ``kind`` (human-readable description of what
    is read, e.g. "h5ad layers['counts'] (CSR)").
    """

    path: Path
    name: str
    genes: np.ndarray
    n_samples: int
    dense: bool = False
    nnz: int | None = None
    kind: str = ""
    hint: str = ""  # a format-specific way out for validation messages
    kind_hint: str | None = None  # "bulk" or "single-cell" when the format says so (SOMA, ARCHS4); else detected
    default_keep_obs: tuple[str, ...] = ()  # metadata columns kept in the corpus when --keep-obs is not given ("all": every one)
    gene_names: np.ndarray | None = None  # a second id per gene (the symbol beside an Ensembl id), used when the first does not map
    measured: np.ndarray | None = None    # bool (g,): the genes the dataset measured; None: all of ``genes``
    measured_from_detection: bool = False  # no record of measured genes: a gene counts as measured when detected

    def metadata_columns(self) -> list[str]:
        """The names of the per-sample metadata columns each chunk's ``obs`` carries."""
        return [str(c) for c in self.obs.columns]

    def sample_ids_head(self, k: int = 2000) -> pd.Index:
        """The first ``k`` sample ids (for the transposed-matrix check), without reading counts."""
        return pd.Index(self.obs.index[:k])

    @abstractmethod
    def iter_chunks(self, chunk_size: int) -> Iterator[Chunk]:
        """Yield consecutive chunks of at most ``chunk_size`` samples, in order."""

    def bytes_per_row(self) -> float:
        """Rough peak bytes one sample costs while a chunk is processed (for memory budgets)."""
        g = max(len(self.genes), 1)
        if self.dense or self.nnz is None:
            return 8.0 * g
        # data + indices in several copies (read, validate, map, reindex, writer buffer)
        return 16.0 * 6 * max(self.nnz / max(self.n_samples, 1), 1.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.n_samples} x {len(self.genes)}, {self.kind})"


def as_str_index(values) -> pd.Index:
    """Ids as a string Index with surrounding whitespace stripped (bytes decoded as UTF-8)."""
    out = [v.decode() if isinstance(v, bytes) else str(v) for v in values]
    return pd.Index([v.strip() for v in out], dtype=object)
