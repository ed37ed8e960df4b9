"""10x Genomics outputs: a Matrix Market folder and the HDF5 feature-barcode matrix.

Gene ids are the feature ids (Ensembl ids in Cell Ranger output), which map
unambiguously; only "Gene Expression" features are kept (antibody or CRISPR
guide features of multi-modal runs are left out and reported in ``kind``).
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from data.readers.base import Chunk, SourceReader, as_str_index, dataset_name
from data.readers.validate import DataError


def _find(folder: Path, stems: tuple[str, ...]) -> Path | None:
    for stem in stems:
        for suffix in ("", ".gz"):
            p = folder / f"{stem}{suffix}"
            if p.exists():
                return p
    return None


def is_tenx_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a 10x Matrix Market triplet."""
    return folder.is_dir() and _find(folder, ("matrix.mtx",)) is not None


def _read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", header=None, dtype=str, compression="infer")


class TenxMtxReader(SourceReader):
    """A folder with ``matrix.mtx[.gz]`` (genes x cells), ``features.tsv`` or ``genes.tsv``, ``barcodes.tsv``.

    Matrix Market files have no row index, so the matrix is read whole
    (memory ~ 16 bytes per non-zero) and then served in chunks.
    """

    def __init__(self, folder: str | Path, name: str | None = None):
        self.path = Path(folder)
        self.name = name or dataset_name(self.path)
        mtx = _find(self.path, ("matrix.mtx",))
        feats = _find(self.path, ("features.tsv", "genes.tsv"))
        bcs = _find(self.path, ("barcodes.tsv",))
        missing = [n for n, p in (("matrix.mtx", mtx), ("features.tsv or genes.tsv", feats),
                                  ("barcodes.tsv", bcs)) if p is None]
        if missing:
            raise DataError(f"{self.path}: 10x folder lacks {', '.join(missing)}; a 10x folder needs matrix.mtx[.gz], "
                            f"features.tsv[.gz] (or genes.tsv) and barcodes.tsv[.gz]")
        features = _read_tsv(feats)
        barcodes = as_str_index(_read_tsv(bcs)[0])
        try:
            m = scipy.io.mmread(gzip.open(mtx) if mtx.suffix == ".gz" else mtx)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"{mtx}: not a readable Matrix Market file ({e})") from e
        m = sp.csr_matrix(m.T)  # cells x genes
        if m.shape != (len(barcodes), len(features)):
            raise DataError(f"{mtx}: matrix is {m.shape[1]} x {m.shape[0]} (genes x cells) but {feats.name} lists "
                            f"{len(features)} features and {bcs.name} {len(barcodes)} barcodes; the files do not "
                            f"belong together")
        keep = np.ones(len(features), dtype=bool)
        dropped = ""
        if features.shape[1] >= 3:
            keep = (features[2] == "Gene Expression").to_numpy()
            if (~keep).any():
                dropped = f"; left out {int((~keep).sum())} non-gene features ({', '.join(features[2][~keep].unique())})"
        self._x = m[:, np.flatnonzero(keep)]
        self.genes = np.asarray(as_str_index(features[0][keep]))
        self.symbols = np.asarray(as_str_index(features[1][keep])) if features.shape[1] > 1 else self.genes
        self.obs = pd.DataFrame(index=barcodes)
        self.n_samples = len(barcodes)
        self.nnz = int(self._x.nnz)
        self.kind = f"10x mtx ({mtx.name}){dropped}"

    def iter_chunks(self, chunk_size: int) -> Iterator[Chunk]:
        for start in range(0, self.n_samples, chunk_size):
            stop = min(start + chunk_size, self.n_samples)
            yield Chunk(self._x[start:stop], self.obs.iloc[start:stop], start)


class TenxH5Reader(SourceReader):
    """A Cell Ranger ``filtered_feature_bc_matrix.h5`` (v3: ``matrix/``; v2: one group per genome).

    The matrix is stored CSC over (genes, cells), i.e. CSR over cells, so
    cells are streamed straight from disk.
    """

    def __init__(self, path: str | Path, name: str | None = None):
        self.path = Path(path)
        self.name = name or dataset_name(self.path)
        try:
            with h5py.File(self.path, "r") as f:
                if "matrix" in f:
                    self._group = "matrix"
                    g = f["matrix"]
                    ids = as_str_index(g["features/id"][:])
                    types = as_str_index(g["features/feature_type"][:]) if "feature_type" in g["features"] else None
                else:
                    groups = [k for k in f if isinstance(f[k], h5py.Group) and "indptr" in f[k]]
                    if len(groups) != 1:
                        raise DataError(f"{self.path}: not a 10x HDF5 matrix (expected a 'matrix' group or one "
                                        f"genome group, found {list(f)})")
                    self._group = groups[0]
                    g = f[groups[0]]
                    ids = as_str_index(g["genes"][:])
                    types = None
                barcodes = as_str_index(g["barcodes"][:])
                n_genes, n_cells = (int(v) for v in g["shape"][:])
                self.nnz = int(g["data"].shape[0])
        except OSError as e:
            raise DataError(f"{self.path}: cannot open as HDF5 ({e}); is the file complete?") from e
        if (n_genes, n_cells) != (len(ids), len(barcodes)):
            raise DataError(f"{self.path}: shape {n_genes} x {n_cells} disagrees with {len(ids)} features and "
                            f"{len(barcodes)} barcodes; the file is inconsistent")
        self._n_all_genes = n_genes
        self._keep = np.ones(n_genes, dtype=bool) if types is None else (np.asarray(types) == "Gene Expression")
        self.genes = np.asarray(ids)[self._keep]
        self.obs = pd.DataFrame(index=barcodes)
        self.n_samples = n_cells
        n_other = int((~self._keep).sum())
        self.kind = "10x h5" + (f"; left out {n_other} non-gene features" if n_other else "")

    def iter_chunks(self, chunk_size: int) -> Iterator[Chunk]:
        cols = np.flatnonzero(self._keep)
        with h5py.File(self.path, "r") as f:
            g = f[self._group]
            indptr = g["indptr"][:]
            for start in range(0, self.n_samples, chunk_size):
                stop = min(start + chunk_size, self.n_samples)
                lo, hi = int(indptr[start]), int(indptr[stop])
                x = sp.csr_matrix((g["data"][lo:hi], g["indices"][lo:hi], indptr[start:stop + 1] - lo),
                                  shape=(stop - start, self._n_all_genes))
                yield Chunk(x[:, cols], self.obs.iloc[start:stop], start)
