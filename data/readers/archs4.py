"""ARCHS4 gene-count files (uniformly processed bulk RNA-seq from GEO), read with h5py in chunks of samples.

Layout (ARCHS4 v2; v1 field names accepted too):

    data/expression       (genes, samples) integer counts
    meta/genes/           ensembl_gene (v1: ensembl_gene_id), symbol (v1: gene_symbol), ...
    meta/samples/         geo_accession (GSM ids), series_id (GSE ids), title, characteristics_ch1, ...

Gene ids are the Ensembl ids, with the symbols tried for ids the gene table does not know; a sample's
id is its GSM accession. A sample list (``--archs4-samples FILE``: GSM and/or GSE ids) keeps those
samples, or every sample of a series; it is matched by scanning the id columns in blocks, so only the
chosen positions stay in memory (8 bytes a sample).

Why not ``archs4py``: it reads one sample per task in a pool of 16 processes, turns a failed read into a
column of zeros (silently), holds every GSM id in memory, and installs s3fs, aiobotocore, biomart and
xalign, none of which reading a local file needs. The file is plain HDF5, so h5py reads it directly.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from data.readers.base import Chunk, SourceReader, as_str_index, dataset_name
from data.readers.validate import DataError

GENE_ID_FIELDS = ("ensembl_gene", "ensembl_gene_id", "ensembl_id")
GENE_NAME_FIELDS = ("symbol", "gene_symbol", "genes")
SAMPLE_ID_FIELD = "geo_accession"
SERIES_FIELD = "series_id"
# metadata kept in the corpus by default (--keep-obs to choose others); all exist in ARCHS4 v2
DEFAULT_OBS = (SERIES_FIELD, "title", "source_name_ch1", "characteristics_ch1", "singlecellprobability")
_BLOCK_BYTES = 64 * 2**20       # dense (genes x samples) bytes read from the file at once
_SCAN = 200_000                  # ids decoded at once while matching a sample list
_GSM = re.compile(r"^GSM\d+$", re.IGNORECASE)
_GSE = re.compile(r"^GSE\d+$", re.IGNORECASE)


def is_archs4(f: h5py.File) -> bool:
    """Whether an open HDF5 file has the ARCHS4 layout (data/expression, meta/genes, meta/samples)."""
    return "data" in f and "expression" in f["data"] and "meta" in f and "samples" in f["meta"] \
        and "genes" in f["meta"]


def _decode(values) -> np.ndarray:
    return np.asarray(as_str_index(values), dtype=object)


def read_id_list(path: str | Path) -> tuple[set[str], set[str]]:
    """(GSM ids, GSE ids) from a text file: one or more ids a line, separated by commas, tabs or spaces;
    ``#`` starts a comment. Anything else is refused, naming the line."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such sample list; --archs4-samples takes a text file of GSM and/or GSE ids")
    gsm, gse = set(), set()
    for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        for token in re.split(r"[\s,;]+", line.split("#", 1)[0].strip()):
            if not token:
                continue
            if _GSM.match(token):
                gsm.add(token.upper())
            elif _GSE.match(token):
                gse.add(token.upper())
            else:
                raise DataError(f"{p}: line {n}: {token!r} is neither a GSM sample id nor a GSE series id; the list "
                                f"holds GEO accessions, one or more a line")
    if not gsm and not gse:
        raise DataError(f"{p}: the sample list is empty; write GSM and/or GSE ids, one a line")
    return gsm, gse


class Archs4Reader(SourceReader):
    """An ARCHS4 ``.h5`` file, all samples or those of a sample list, as (samples x genes) chunks."""

    kind_hint = "bulk"
    default_keep_obs = DEFAULT_OBS

    def __init__(self, path: str | Path, samples_file: str | Path | None = None, name: str | None = None):
        self.path = Path(path)
        self.name = name or dataset_name(self.path)
        try:
            with h5py.File(self.path, "r") as f:
                self._describe(f)
                self._index = self._select(f, samples_file) if samples_file else None
                self._probe(f)
        except OSError as e:
            raise DataError(f"{self.path}: cannot open as HDF5 ({e}); is the file complete?") from e
        self.n_samples = int(self._n_file if self._index is None else self._index.size)
        chosen = f", {self.n_samples:,} of {self._n_file:,} samples from {Path(samples_file).name}" if samples_file else ""
        self.kind = f"ARCHS4 h5 data/expression ({self._dtype}){chosen}"

    def _describe(self, f: h5py.File) -> None:
        p = self.path
        x = f["data/expression"]
        if not isinstance(x, h5py.Dataset) or x.ndim != 2:
            raise DataError(f"{p}: data/expression is not a 2-D matrix; not an ARCHS4 gene-count file")
        n_genes, n_samples = x.shape
        genes, samples = f["meta/genes"], f["meta/samples"]
        id_field = next((k for k in GENE_ID_FIELDS if k in genes), None)
        name_field = next((k for k in GENE_NAME_FIELDS if k in genes), None)
        if id_field is None and name_field is None:
            raise DataError(f"{p}: meta/genes has no gene ids (looked for {', '.join(GENE_ID_FIELDS + GENE_NAME_FIELDS)}; "
                            f"it has {', '.join(genes)}); not an ARCHS4 gene-count file (transcript files are not "
                            f"supported: use the gene file)")
        if SAMPLE_ID_FIELD not in samples:
            raise DataError(f"{p}: meta/samples has no {SAMPLE_ID_FIELD} (GSM ids); it has {', '.join(samples)}")
        for group, field, n in ((genes, id_field or name_field, n_genes), (samples, SAMPLE_ID_FIELD, n_samples)):
            if group[field].shape[0] != n:
                raise DataError(f"{p}: {group.name.lstrip('/')}/{field} has {group[field].shape[0]} entries but "
                                f"data/expression is {n_genes} genes x {n_samples} samples; the file is inconsistent "
                                f"(ARCHS4 stores genes x samples)")
        self.genes = _decode(genes[id_field or name_field][:])
        self.gene_names = _decode(genes[name_field][:]) if id_field and name_field else None
        self._n_file, self._dtype = n_samples, x.dtype
        self._fields = [k for k in samples if isinstance(samples[k], h5py.Dataset) and samples[k].ndim == 1
                        and samples[k].shape[0] == n_samples and k != SAMPLE_ID_FIELD]

    def _select(self, f: h5py.File, samples_file) -> np.ndarray:
        gsm, gse = read_id_list(samples_file)
        ids, series = f["meta/samples"][SAMPLE_ID_FIELD], f["meta/samples"].get(SERIES_FIELD)
        if gse and series is None:
            raise DataError(f"{self.path}: meta/samples has no {SERIES_FIELD}, so the GSE ids of {samples_file} cannot "
                            f"be matched; list GSM ids instead")
        keep, seen_gsm, seen_gse = [], set(), set()
        for lo in range(0, self._n_file, _SCAN):
            hi = min(lo + _SCAN, self._n_file)
            hit = np.zeros(hi - lo, dtype=bool)
            if gsm:
                block = pd.Series(_decode(ids[lo:hi])).str.upper()
                m = block.isin(gsm).to_numpy()
                seen_gsm.update(block[m])
                hit |= m
            if gse:
                # a sample may belong to several series: "GSE1,GSE2"
                tokens = pd.Series(_decode(series[lo:hi])).str.upper().str.split(r"[,;\s]+", regex=True).explode()
                m = tokens.isin(gse)
                seen_gse.update(tokens[m])
                hit[np.unique(tokens.index[m.to_numpy()].to_numpy())] = True
            keep.append(lo + np.flatnonzero(hit))
        unknown = sorted(gsm - seen_gsm) + sorted(gse - seen_gse)
        if unknown:
            raise DataError(f"{samples_file}: {len(unknown)} of the {len(gsm) + len(gse)} listed ids are not in "
                            f"{self.path} (e.g. {', '.join(unknown[:5])}); remove them from the list, or check that it "
                            f"was made for this ARCHS4 file (GSM = samples, GSE = series)")
        return np.concatenate(keep).astype(np.int64)

    def _probe(self, f: h5py.File) -> None:
        """Estimate stored non-zeros from the first samples (for memory budgets)."""
        cols = self._positions(0, min(32, self._n_file if self._index is None else self._index.size))
        if cols.size:
            n = self._n_file if self._index is None else self._index.size
            self.nnz = int(self._read_counts(f["data/expression"], cols).nnz / cols.size * n)

    def _positions(self, start: int, stop: int) -> np.ndarray:
        if self._index is None:
            return np.arange(start, min(stop, self._n_file), dtype=np.int64)
        return self._index[start:stop]

    def metadata_columns(self) -> list[str]:
        return list(self._fields)

    def sample_ids_head(self, k: int = 2000) -> pd.Index:
        with h5py.File(self.path, "r") as f:
            return pd.Index(self._read_field(f[f"meta/samples/{SAMPLE_ID_FIELD}"], self._positions(0, k)))

    @staticmethod
    def _read_field(ds: h5py.Dataset, pos: np.ndarray) -> np.ndarray:
        if pos.size == 0:
            return np.zeros(0, dtype=object)
        span = int(pos[-1]) + 1 - int(pos[0])
        out = ds[int(pos[0]):int(pos[-1]) + 1][pos - pos[0]] if span <= 4 * pos.size + 1024 else ds[pos]
        return _decode(out) if out.dtype.kind in "SOU" else out

    def _read_counts(self, x: h5py.Dataset, pos: np.ndarray) -> sp.csr_matrix:
        """(len(pos), genes) CSR from the genes x samples matrix, read in blocks of at most _BLOCK_BYTES."""
        per = max(1, _BLOCK_BYTES // max(1, x.shape[0] * x.dtype.itemsize))
        parts = []
        i = 0
        while i < pos.size:
            lo = int(pos[i])
            # a block: the next samples whose span of columns fits the read budget
            j = i + int(np.searchsorted(pos[i:], lo + per, side="left"))
            j = max(j, i + 1)
            hi = int(pos[j - 1]) + 1
            block = x[:, lo:hi]
            parts.append(sp.csr_matrix(block[:, pos[i:j] - lo].T))
            i = j
        return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, x.shape[0]), dtype=x.dtype)

    def iter_chunks(self, chunk_size: int) -> Iterator[Chunk]:
        with h5py.File(self.path, "r") as f:
            x, meta = f["data/expression"], f["meta/samples"]
            for start in range(0, self.n_samples, chunk_size):
                pos = self._positions(start, start + chunk_size)
                obs = pd.DataFrame({k: self._read_field(meta[k], pos) for k in self._fields},
                                   index=pd.Index(self._read_field(meta[SAMPLE_ID_FIELD], pos)))
                yield Chunk(self._read_counts(x, pos), obs, start)
