"""AnnData ``.h5ad`` reader: counts from ``X``, a layer or ``raw.X``, streamed from disk.

The file is opened with h5py and rows are sliced on demand (anndata's
``sparse_dataset`` for CSR/CSC, h5py slicing for dense), so files larger
than memory are read chunk by chunk. ``obs`` and the gene ids are read once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import anndata.io as adio
import h5py
import numpy as np
import scipy.sparse as sp

from data.readers.base import Chunk, SourceReader, as_str_index, dataset_name
from data.readers.validate import DataError

_PROBE_ROWS = 500


def _element_paths(f: h5py.File) -> dict[str, tuple[str, str]]:
    """Available count matrices: choice name -> (matrix path, var group path)."""
    out = {}
    if "X" in f:
        out["X"] = ("X", "var")
    for name in f.get("layers", {}):
        out[name] = (f"layers/{name}", "var")
    if "raw" in f and "X" in f["raw"]:
        out["raw"] = ("raw/X", "raw/var")
    return out


def _encoding(node) -> str:
    enc = node.attrs.get("encoding-type", "array" if isinstance(node, h5py.Dataset) else "")
    return enc.decode() if isinstance(enc, bytes) else str(enc)


def _read_rows(node, start: int, stop: int) -> sp.csr_matrix:
    """Rows [start, stop) of a stored matrix (dense dataset or CSR/CSC group) as CSR."""
    if isinstance(node, h5py.Dataset):
        return sp.csr_matrix(node[start:stop])
    return sp.csr_matrix(adio.sparse_dataset(node)[start:stop])


def _shape(node) -> tuple[int, int]:
    return tuple(node.shape) if isinstance(node, h5py.Dataset) else tuple(int(v) for v in node.attrs["shape"])


def _looks_integer(node) -> bool:
    """Whether the first rows of a stored matrix hold non-negative integers."""
    x = _read_rows(node, 0, min(_shape(node)[0], _PROBE_ROWS))
    d = x.data
    if d.size == 0:
        return True
    if np.issubdtype(d.dtype, np.integer):
        return True
    return bool(np.all(np.isfinite(d)) and d.min() >= 0 and np.all(np.abs(d - np.rint(d)) < 1e-6))


class H5adReader(SourceReader):
    """Read an ``.h5ad`` file. ``layer``: "auto", "X", "raw" or a layer name.

    "auto" takes ``layers['counts']`` when present, else ``X`` if its first
    rows hold non-negative integers, else ``raw.X`` if that does, else ``X``
    (which validation then refuses with the list of alternatives).
    """

    def __init__(self, path: str | Path, layer: str = "auto", name: str | None = None):
        self.path = Path(path)
        self.name = name or dataset_name(self.path)
        try:
            with h5py.File(self.path, "r") as f:
                elems = _element_paths(f)
                if not elems:
                    raise DataError(f"{self.path}: no count matrix (no X, layers or raw.X); is this an AnnData file?")
                self.layer = self._choose(f, elems, layer)
                mpath, vpath = elems[self.layer]
                node = f[mpath]
                self.genes = np.asarray(as_str_index(adio.read_elem(f[vpath]).index))
                self.obs = adio.read_elem(f["obs"])
                shape = _shape(node)
                self.dense = isinstance(node, h5py.Dataset)
                self.nnz = None if self.dense else int(node["data"].shape[0])
                enc = _encoding(node)
        except OSError as e:
            raise DataError(f"{self.path}: cannot open as HDF5/AnnData ({e}); is the file complete?") from e
        self.n_samples = int(shape[0])
        if shape[1] != len(self.genes):
            raise DataError(f"{self.path}: {self.layer} has {shape[1]} columns but var has {len(self.genes)} "
                            f"names; the file is inconsistent, re-export it with anndata")
        self.obs.index = as_str_index(self.obs.index)
        self._mpath = mpath
        where = {"raw": "raw.X", "X": "X"}.get(self.layer, f"layers[{self.layer!r}]")
        self.kind = f"h5ad {where} ({enc})"
        others = [k for k in elems if k != self.layer]
        self.hint = (f"choose another matrix with --layer (this file has: {', '.join(others)})" if others
                     else "this file has no other matrix (no layers, no raw.X)")

    def _choose(self, f: h5py.File, elems: dict, layer: str) -> str:
        if layer != "auto":
            if layer not in elems:
                raise DataError(f"{self.path}: --layer {layer!r} not found; available: {', '.join(elems)}")
            return layer
        if "counts" in elems:
            return "counts"
        if "X" in elems and _looks_integer(f["X"]):
            return "X"
        if "raw" in elems and _looks_integer(f["raw/X"]):
            return "raw"
        return "X" if "X" in elems else next(iter(elems))

    def iter_chunks(self, chunk_size: int) -> Iterator[Chunk]:
        with h5py.File(self.path, "r") as f:
            node = f[self._mpath]
            for start in range(0, self.n_samples, chunk_size):
                stop = min(start + chunk_size, self.n_samples)
                yield Chunk(_read_rows(node, start, stop), self.obs.iloc[start:stop], start)
