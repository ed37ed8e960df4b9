"""The Corpus: TxFM's on-disk input contract (see docs/formats.md).

A corpus is a directory with a JSON manifest (gene vocabulary, source datasets
with the genes each one measures, shards), CSR count shards over the whole
vocabulary and a per-sample metadata table. Raw integer counts are stored;
normalisation happens at training time.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from common.atomic import sha256_file
from common.errors import reading
from common.outputs import check_output_target, commit_dir, discard_staging, is_empty_dir, stage_dir

FORMAT = "txfm-corpus"
FORMAT_VERSION = 1


def rebuild_hint(corpus: str | os.PathLike) -> str:
    """The fix for a damaged corpus file, naming the corpus folder."""
    return f"rebuild the corpus: `python -m data build-corpus --source ... --out {corpus} --overwrite`"


class CorpusError(ValueError):
    """A corpus directory is missing, malformed or of an unknown version."""


@dataclass(frozen=True)
class DatasetInfo:
    """One source dataset inside a corpus."""

    name: str
    n_samples: int
    measured: np.ndarray  # int64 gene indices into the vocabulary, sorted
    source: str = ""
    notes: str = ""


def _check_counts(x: sp.csr_matrix, where: str) -> sp.csr_matrix:
    """Validate raw counts: finite, non-negative integers. Returns int32 CSR."""
    data = x.data
    if data.size:
        if not np.all(np.isfinite(data)):
            raise CorpusError(f"{where}: counts contain NaN or Inf; pass raw integer counts")
        if data.min() < 0:
            raise CorpusError(f"{where}: counts contain negative values (min {data.min()}); pass raw counts")
        if not np.issubdtype(data.dtype, np.integer) and np.any(data != np.round(data)):
            raise CorpusError(f"{where}: counts are not integers; a corpus stores raw integer counts")
        if data.max() > np.iinfo(np.int32).max:
            raise CorpusError(f"{where}: a count exceeds int32 ({data.max()})")
    out = sp.csr_matrix(x, dtype=np.int32, copy=True)
    out.eliminate_zeros()
    out.sort_indices()
    return out


def is_corpus(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder holding a corpus manifest (the corpus writers' own kind of output)."""
    try:
        return json.loads((Path(path) / "manifest.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


class CorpusWriter:
    """Write a corpus directory atomically (temp folder, renamed on success).

    Use as a context manager; see docs/formats.md for the layout. Samples are
    buffered and flushed into shards of ``shard_size`` rows, so arbitrarily
    large inputs can be added chunk by chunk with bounded memory.
    """

    def __init__(self, out: str | os.PathLike, genes: Sequence[str], gene_ids: Sequence[str] | None = None,
                 shard_size: int = 8192, overwrite: bool = False):
        self.out = Path(out)
        genes = [str(g) for g in genes]
        if len(genes) == 0:
            raise CorpusError(f"{self.out}: the gene vocabulary is empty")
        dup = pd.Index(genes)[pd.Index(genes).duplicated()].unique().tolist()
        if dup:
            raise CorpusError(f"{self.out}: duplicate genes in the vocabulary: {dup[:5]}; harmonise gene ids first")
        if gene_ids is not None and len(gene_ids) != len(genes):
            raise CorpusError(f"{self.out}: {len(gene_ids)} gene ids for {len(genes)} genes")
        check_output_target(self.out, "corpus", is_corpus, overwrite)   # own kind + flag, or refused
        self.genes = genes
        self.gene_ids = [str(g) if g is not None else "" for g in (gene_ids or [""] * len(genes))]
        self.shard_size = int(shard_size)
        self.overwrite = overwrite
        self.datasets: list[dict] = []
        self._tmp: Path | None = None
        self._buf: list[tuple[sp.csr_matrix, np.ndarray]] = []
        self._buf_rows = 0
        self._shards: list[dict] = []
        self._obs: list[pd.DataFrame] = []      # obs of the buffered rows; written beside each shard
        self._obs_parts: list[Path] = []
        self._id_hashes: list[np.ndarray] = []  # 8 bytes per sample, for the duplicate-id check
        self._n = 0

    def __enter__(self) -> "CorpusWriter":
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = stage_dir(self.out)
        self._tmp.mkdir()
        (self._tmp / "shards").mkdir()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            err = discard_staging(self._tmp, self.out, exc)   # a full disk etc. named by the corpus folder
            if err is not exc:
                raise err from exc
            return
        try:
            self._finish()
        except BaseException as e:
            err = discard_staging(self._tmp, self.out, e)
            if err is e:
                raise
            raise err from e

    def add_dataset(self, name: str, measured: Sequence[int] | np.ndarray, source: str = "", notes: str = "") -> int:
        """Register a source dataset; ``measured`` are vocabulary indices it profiles. Returns its index."""
        if any(d["name"] == name for d in self.datasets):
            raise CorpusError(f"{self.out}: dataset {name!r} added twice")
        m = np.unique(np.asarray(measured, dtype=np.int64))
        if m.size == 0:
            raise CorpusError(f"{self.out}: dataset {name!r} measures no gene of the vocabulary")
        if m[0] < 0 or m[-1] >= len(self.genes):
            raise CorpusError(f"{self.out}: dataset {name!r} has measured-gene indices outside the vocabulary")
        self.datasets.append({"name": str(name), "n_samples": 0, "measured": m.tolist(),
                              "source": str(source), "notes": str(notes)})
        return len(self.datasets) - 1

    def add_samples(self, dataset: int, counts: sp.spmatrix | np.ndarray, obs: pd.DataFrame | None = None) -> None:
        """Append samples of ``dataset``: counts (n, G) in vocabulary column order, obs with n rows."""
        if self._tmp is None:
            raise CorpusError("CorpusWriter must be used as a context manager (with CorpusWriter(...) as w)")
        ds = self.datasets[dataset]
        x = sp.csr_matrix(counts)
        if x.shape[1] != len(self.genes):
            raise CorpusError(f"{self.out}: dataset {ds['name']!r}: counts have {x.shape[1]} columns, "
                              f"vocabulary has {len(self.genes)} genes")
        x = _check_counts(x, f"{self.out}: dataset {ds['name']!r}")
        n = x.shape[0]
        if n == 0:
            return
        present = np.bincount(x.indices, minlength=len(self.genes)) > 0
        present[np.asarray(ds["measured"], dtype=np.int64)] = False
        unmeasured = np.flatnonzero(present)
        if unmeasured.size:
            raise CorpusError(f"{self.out}: dataset {ds['name']!r} has counts in {unmeasured.size} genes it "
                              f"does not list as measured (e.g. {self.genes[int(unmeasured[0])]})")
        obs = pd.DataFrame(index=range(n)) if obs is None else obs.reset_index(drop=True).copy()
        if len(obs) != n:
            raise CorpusError(f"{self.out}: dataset {ds['name']!r}: obs has {len(obs)} rows for {n} samples")
        if "sample_id" not in obs:
            obs["sample_id"] = [f"{ds['name']}:{self._n + i}" for i in range(n)]
        obs.insert(0, "dataset", ds["name"])
        if "batch" not in obs:
            obs["batch"] = ds["name"]
        for c in obs.columns:
            obs[c] = obs[c].astype(str)
        self._id_hashes.append(pd.util.hash_array(obs["sample_id"].to_numpy(dtype=object)))
        self._obs.append(obs)
        self._buf.append((x, np.full(n, dataset, dtype=np.int16)))
        self._buf_rows += n
        ds["n_samples"] += n
        self._n += n
        while self._buf_rows >= self.shard_size:
            self._flush(self.shard_size)

    def _flush(self, rows: int) -> None:
        x = sp.vstack([b[0] for b in self._buf], format="csr")
        d = np.concatenate([b[1] for b in self._buf])
        take, rest = x[:rows], x[rows:]
        first = sum(s["n_samples"] for s in self._shards)
        name = f"shards/shard-{len(self._shards):05d}.npz"
        np.savez(self._tmp / name, indptr=take.indptr.astype(np.int64), indices=take.indices.astype(np.int32),
                 data=take.data.astype(np.int32), dataset=d[:rows],
                 sample=np.arange(first, first + take.shape[0], dtype=np.int64))
        self._shards.append({"file": name, "n_samples": int(take.shape[0])})
        self._buf = [(sp.csr_matrix(rest), d[rows:])] if rest.shape[0] else []
        self._buf_rows = rest.shape[0]
        # the obs rows of this shard go to a part file, so memory does not grow with the corpus
        obs = pd.concat(self._obs, ignore_index=True)
        part = self._tmp / f"obs-part-{len(self._obs_parts):05d}.parquet"
        obs.iloc[:rows].to_parquet(part, index=False)
        self._obs_parts.append(part)
        self._obs = [obs.iloc[rows:]] if len(obs) > rows else []

    def _finish(self) -> None:
        if self._buf_rows:
            self._flush(self._buf_rows)
        if self._n == 0:
            raise CorpusError(f"{self.out}: no samples were added; nothing to write")
        columns = self._merge_obs()
        h = hashlib.sha256()
        h.update(json.dumps([self.genes, [d["measured"] for d in self.datasets]]).encode())
        for s in self._shards:
            h.update(sha256_file(self._tmp / s["file"]).encode())
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "genes": self.genes, "gene_ids": self.gene_ids, "datasets": self.datasets,
            "shards": self._shards, "n_samples": self._n, "obs_columns": columns,
            "fingerprint": h.hexdigest(),
        }
        (self._tmp / "manifest.json").write_text(json.dumps(manifest))
        if is_empty_dir(self.out):
            shutil.rmtree(self.out)
        commit_dir(self._tmp, self.out)   # an old corpus is replaced only now (checked in __init__)

    def _merge_obs(self) -> list[str]:
        """Check sample ids are unique and stream the per-shard obs parts into obs.parquet; returns its columns.

        Parts may differ in columns (datasets with other metadata): the file has their union, in order of
        first appearance, all strings, null where a dataset has no such column.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        hashes = np.concatenate(self._id_hashes)
        uniq, counts = np.unique(hashes, return_counts=True)
        if (counts > 1).any():      # equal hashes: confirm on the ids themselves (a 64-bit collision is not a duplicate)
            suspects = set(uniq[counts > 1].tolist())
            seen: set[str] = set()
            for part in self._obs_parts:
                ids = pd.read_parquet(part, columns=["sample_id"])["sample_id"].to_numpy(dtype=object)
                for i in ids[np.isin(pd.util.hash_array(ids), list(suspects))]:
                    if i in seen:
                        raise CorpusError(f"{self.out}: duplicate sample ids, e.g. {i!r}; make them unique per source")
                    seen.add(i)
        columns: list[str] = []
        for part in self._obs_parts:
            columns += [c for c in pq.read_schema(part).names if c not in columns]
        schema = pa.schema([(c, pa.string()) for c in columns])
        with pq.ParquetWriter(self._tmp / "obs.parquet", schema) as out:
            for part in self._obs_parts:
                t = pq.read_table(part)
                out.write_table(pa.table({c: t[c].cast(pa.string()) if c in t.column_names
                                          else pa.nulls(t.num_rows, pa.string()) for c in columns}, schema=schema))
                part.unlink()
        return columns


def _fingerprint_head(genes: list, datasets: list) -> "hashlib._Hash":
    h = hashlib.sha256()
    h.update(json.dumps([list(genes), [list(d["measured"]) for d in datasets]]).encode())
    return h


def check_shard_arrays(z, n_rows: int, n_genes: int, n_datasets: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """CSR invariants of one shard's arrays, each violation a CorpusError naming ``where``.

    indptr starts at 0, is non-decreasing and ends at len(indices) == len(data); indices are in
    [0, n_genes) and strictly increasing within each row (sorted, unique); data are finite
    non-negative integers; dataset indices are in [0, n_datasets). Returns (indptr, dataset).
    """
    fix = f"the corpus is corrupt; {rebuild_hint(Path(where).parent.parent)}"
    try:
        indptr, indices, data, dset = (np.asarray(z[k]) for k in ("indptr", "indices", "data", "dataset"))
    except KeyError as e:
        raise CorpusError(f"{where}: missing array {e}; {fix}") from None
    if indptr.ndim != 1 or indptr.size != n_rows + 1:
        raise CorpusError(f"{where}: indptr has {indptr.size} entries for {n_rows} rows; {fix}")
    if indptr[0] != 0 or indptr[-1] != indices.size or indices.size != data.size:
        raise CorpusError(f"{where}: indptr ends at {indptr[-1]} but there are {indices.size} indices and "
                          f"{data.size} values; {fix}")
    if (np.diff(indptr) < 0).any():
        raise CorpusError(f"{where}: indptr decreases (row {int(np.argmax(np.diff(indptr) < 0))}); {fix}")
    if indices.size:
        if indices.min() < 0 or indices.max() >= n_genes:
            raise CorpusError(f"{where}: gene indices outside [0, {n_genes}) (min {indices.min()}, max "
                              f"{indices.max()}); {fix}")
        bad = np.diff(indices) <= 0          # indices are in [0, n_genes): the int32 difference cannot overflow
        starts = indptr[1:-1][(indptr[1:-1] > 0) & (indptr[1:-1] < indices.size)]
        bad[starts - 1] = False              # a new row may start lower
        if bad.any():
            raise CorpusError(f"{where}: gene indices are not sorted and unique within a row; {fix}")
    if data.size:
        if not np.issubdtype(data.dtype, np.integer):
            if not np.all(np.isfinite(data)):
                raise CorpusError(f"{where}: counts contain NaN or Inf; {fix}")
            if np.any(data != np.round(data)):
                raise CorpusError(f"{where}: counts are not integers; {fix}")
        if data.min() < 0:
            raise CorpusError(f"{where}: {int((data < 0).sum())} negative counts (min {data.min()}); raw counts are "
                              f">= 0; {fix}")
    if dset.shape != (n_rows,) or (n_rows and (dset.min() < 0 or dset.max() >= n_datasets)):
        raise CorpusError(f"{where}: dataset indices missing or outside [0, {n_datasets}); {fix}")
    return indptr, dset


def verify_corpus(corpus: "Corpus") -> dict:
    """Check a corpus against its own manifest before it is used for training or fitting.

    Streams shard by shard (one shard's bytes in memory at a time): recomputes the fingerprint
    (gene names, measured genes, every shard's sha256) and compares it with the one recorded in
    manifest.json (catches edited gene names or replaced shards), and checks each shard's CSR
    invariants (``check_shard_arrays``) and that counts fall in the genes its dataset measures.
    Raises CorpusError naming the file; returns {"shards", "nnz", "bytes", "seconds"}.
    """
    import io
    import time

    t0 = time.perf_counter()
    m, where = corpus.manifest, corpus.path / "manifest.json"
    fix = rebuild_hint(corpus.path)
    genes, ids = m.get("genes", []), m.get("gene_ids", [])
    if len(ids) != len(genes) or len(set(genes)) != len(genes):
        raise CorpusError(f"{where}: {len(genes)} genes, {len(set(genes))} distinct, {len(ids)} gene ids; the "
                          f"manifest was edited or is damaged; {fix}")
    if sum(s["n_samples"] for s in corpus.shards) != corpus.n_samples or \
            sum(d.n_samples for d in corpus.datasets) != corpus.n_samples:
        raise CorpusError(f"{where}: sample counts of shards, datasets and the corpus disagree; {fix}")
    measured = corpus.measured_matrix() if corpus.datasets else np.zeros((0, len(genes)), dtype=bool)
    for d in corpus.datasets:
        if d.measured.size and (d.measured.min() < 0 or d.measured.max() >= len(genes)):
            raise CorpusError(f"{where}: dataset {d.name!r} lists measured genes outside the vocabulary; {fix}")
    h = _fingerprint_head(genes, m["datasets"])
    nnz = total = 0
    for i, s in enumerate(corpus.shards):
        f = corpus.path / s["file"]
        raw = f.read_bytes()
        total += len(raw)
        h.update(hashlib.sha256(raw).hexdigest().encode())
        with reading(f, fix, "corpus shard", CorpusError), np.load(io.BytesIO(raw), allow_pickle=False) as z:
            indptr, dset = check_shard_arrays(z, int(s["n_samples"]), len(genes), len(corpus.datasets), str(f))
            indices = np.asarray(z["indices"])
        partial = [int(k) for k in np.unique(dset) if not measured[k].all()]  # skip datasets measuring every gene
        if indices.size and partial and not measured[np.repeat(dset, np.diff(indptr)), indices].all():
            raise CorpusError(f"{f}: counts in genes their dataset does not list as measured; {fix}")
        nnz += int(indices.size)
        del raw
    if h.hexdigest() != corpus.fingerprint:
        raise CorpusError(f"{where}: the corpus does not match its recorded fingerprint (gene names, measured "
                          f"genes or shards were changed after it was built); {fix}")
    return {"shards": len(corpus.shards), "nnz": nnz, "bytes": total,
            "seconds": round(time.perf_counter() - t0, 3)}


class Corpus:
    """Read-only view of a corpus directory; shards are loaded on demand."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        mpath = self.path / "manifest.json"
        if not mpath.exists():
            raise CorpusError(f"{self.path}: not a corpus (no manifest.json); build one with "
                              f"`python -m data build-corpus --source ... --out {self.path}`")
        try:
            m = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CorpusError(f"{mpath}: manifest is not valid JSON ({e}); {rebuild_hint(self.path)}") from e
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            found = m.get("format") if isinstance(m, dict) else type(m).__name__
            raise CorpusError(f"{mpath}: format is {found!r}, expected {FORMAT!r}")
        if m.get("format_version") != FORMAT_VERSION:
            raise CorpusError(f"{mpath}: corpus format version {m.get('format_version')} is not supported by "
                              f"this txfm (reads version {FORMAT_VERSION}); rebuild the corpus or upgrade txfm")
        self.manifest = m
        # a field missing or of the wrong type: the manifest was edited or damaged
        with reading(mpath, rebuild_hint(self.path), "corpus manifest", CorpusError):
            self.genes: list[str] = list(m["genes"])
            self.gene_ids: list[str] = list(m["gene_ids"])
            self.datasets = [DatasetInfo(d["name"], int(d["n_samples"]), np.asarray(d["measured"], dtype=np.int64),
                                         d.get("source", ""), d.get("notes", "")) for d in m["datasets"]]
            self.shards: list[dict] = list(m["shards"])
            self.n_samples: int = int(m["n_samples"])
            self.fingerprint: str = str(m["fingerprint"])
            self._offsets = np.cumsum([0] + [int(s["n_samples"]) for s in self.shards])
            files = [str(s["file"]) for s in self.shards]
        self._obs: pd.DataFrame | None = None
        for file in files:
            if not (self.path / file).exists():
                raise CorpusError(f"{self.path}: shard {file} is missing; the corpus is incomplete, {rebuild_hint(self.path)}")

    @property
    def n_genes(self) -> int:
        return len(self.genes)

    def verify(self) -> dict:
        """Fingerprint and shard invariants against the manifest; see ``verify_corpus``."""
        return verify_corpus(self)

    @property
    def obs(self) -> pd.DataFrame:
        """Per-sample metadata in global row order (loaded once)."""
        if self._obs is None:
            p = self.path / "obs.parquet"
            with reading(p, rebuild_hint(self.path), "corpus sample table", CorpusError):
                obs = pd.read_parquet(p)
            if len(obs) != self.n_samples or "dataset" not in obs.columns:
                raise CorpusError(f"{p}: {len(obs)} rows{'' if 'dataset' in obs.columns else ' without a dataset column'}"
                                  f" for the manifest's {self.n_samples} samples; {rebuild_hint(self.path)}")
            self._obs = obs
        return self._obs

    def measured_mask(self, dataset: int) -> np.ndarray:
        """Boolean (G,) mask of the genes ``dataset`` measures."""
        mask = np.zeros(self.n_genes, dtype=bool)
        mask[self.datasets[dataset].measured] = True
        return mask

    def measured_matrix(self) -> np.ndarray:
        """Boolean (n_datasets, G) measured-gene masks."""
        return np.stack([self.measured_mask(i) for i in range(len(self.datasets))])

    def shard_offsets(self) -> np.ndarray:
        """(n_shards + 1,) global row index where each shard starts."""
        return self._offsets

    def load_shard(self, i: int) -> tuple[sp.csr_matrix, np.ndarray]:
        """Shard ``i`` as (counts CSR (n, G) int32, dataset index per row (n,))."""
        f = self.path / self.shards[i]["file"]
        with reading(f, rebuild_hint(self.path), "corpus shard", CorpusError), np.load(f, allow_pickle=False) as z:
            x = sp.csr_matrix((z["data"], z["indices"], z["indptr"]),
                              shape=(int(z["indptr"].shape[0] - 1), self.n_genes))
            d = z["dataset"].astype(np.int64)
        if x.shape[0] != self.shards[i]["n_samples"]:
            raise CorpusError(f"{f}: holds {x.shape[0]} rows, manifest says {self.shards[i]['n_samples']}; {rebuild_hint(self.path)}")
        return x, d

    def iter_shards(self) -> Iterator[tuple[int, sp.csr_matrix, np.ndarray]]:
        """Yield (first global row, counts, dataset) for each shard in order."""
        for i in range(len(self.shards)):
            x, d = self.load_shard(i)
            yield int(self._offsets[i]), x, d

    def read_rows(self, rows: Sequence[int] | np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        """Counts and dataset index for the given global rows, in the given order."""
        rows = np.asarray(rows, dtype=np.int64)
        shard_of = np.searchsorted(self._offsets, rows, side="right") - 1
        parts, order = [], []
        dsets = np.empty(rows.size, dtype=np.int64)
        for s in np.unique(shard_of):
            sel = np.flatnonzero(shard_of == s)
            x, d = self.load_shard(int(s))
            local = rows[sel] - self._offsets[s]
            parts.append(x[local])
            dsets[sel] = d[local]
            order.append(sel)
        if not parts:
            return sp.csr_matrix((0, self.n_genes), dtype=np.int32), dsets
        x = sp.vstack(parts, format="csr")
        inv = np.empty(rows.size, dtype=np.int64)
        inv[np.concatenate(order)] = np.arange(rows.size)
        return x[inv], dsets

    def split(self, by: str = "batch", val_fraction: float = 0.05, seed: int = 0) -> np.ndarray:
        """Boolean (N,) validation mask holding out whole groups.

        ``by`` is "stratified" (val_fraction of every dataset's samples, at random), "batch"
        (whole dataset + batch groups) or "dataset" (whole datasets). Groups are shuffled
        with ``seed`` and taken until ``val_fraction`` of the samples is
        reached; at least one group stays in training. When even the
        smallest group is more than twice the target, random samples are
        held out instead (a corpus with a few large batches).
        """
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if val_fraction == 0:
            return np.zeros(self.n_samples, dtype=bool)
        if by == "stratified":  # the same fraction of every dataset: validation sees every kind of sample
            val = np.zeros(self.n_samples, dtype=bool)
            names = self.obs["dataset"].astype(str).to_numpy()
            for j, name in enumerate(sorted(set(names))):
                idx = np.flatnonzero(names == name)
                n_val = int(round(val_fraction * idx.size))
                if 0 < n_val < idx.size:
                    val[np.random.default_rng([seed, 0x57A7, j]).choice(idx, n_val, replace=False)] = True
            if not val.any() or val.all():  # tiny corpus: fall back to a random fraction
                val = np.random.default_rng(seed).random(self.n_samples) < val_fraction
            return val
        if by == "batch":
            key = self.obs["dataset"].astype(str) + "/" + self.obs["batch"].astype(str)
        elif by == "dataset":
            key = self.obs["dataset"].astype(str)
        else:
            raise ValueError(f"split by must be 'stratified', 'batch' or 'dataset', got {by!r}")
        codes, groups = pd.factorize(key, sort=True)
        if len(groups) < 2:
            # one group only: hold out a deterministic random fraction of its samples
            rng = np.random.default_rng(seed)
            return rng.random(self.n_samples) < val_fraction
        sizes = np.bincount(codes, minlength=len(groups))
        order = np.random.default_rng(seed).permutation(len(groups))
        target, taken, chosen = val_fraction * self.n_samples, 0, []
        for g in order:
            if taken + sizes[g] <= target and len(chosen) < len(groups) - 1:
                chosen.append(g)
                taken += sizes[g]
        if not chosen and sizes.min() <= 2 * target:  # every group is a bit larger than the target
            chosen = [int(np.argmin(sizes))]
        if not chosen:  # groups are far larger than the target: hold out random samples instead
            return np.random.default_rng(seed).random(self.n_samples) < val_fraction
        return np.isin(codes, chosen)
