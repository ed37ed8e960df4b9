"""``python -m data bench``: reading / corpus-building throughput and peak memory under a budget.

1. Reading: every chunk of the largest file in the shared data folder is read
   and validated (best of 3 runs), in samples/s.
2. Building: a corpus is built from that file (both passes, report included).
3. Memory: the same file is replicated into an ``.h5ad`` whose counts
   (data + indices) exceed ``--target-gb`` (written chunk by chunk with h5py,
   so this step stays small too), then ``python -m data build-corpus
   --max-memory-gb B`` runs in a child process whose peak RSS
   (``getrusage(RUSAGE_CHILDREN).ru_maxrss``) is compared to the budget.
"""
from __future__ import annotations

import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import anndata.io as adio
import h5py
import numpy as np
import pandas as pd
from tqdm import tqdm

from data.readers import H5adReader, check_counts, find_source_files


def largest_file(shared: Path) -> Path:
    """The biggest h5ad file (bytes) under ``shared``."""
    files = [p for p in find_source_files(shared) if p.suffix == ".h5ad"]
    if not files:
        raise FileNotFoundError(f"{shared}: no .h5ad file to benchmark; pass --shared pointing at the data folder")
    return max(files, key=lambda p: p.stat().st_size)


def read_throughput(path: Path, repeats: int = 3, chunk_size: int = 4096) -> tuple[int, float]:
    """(samples, best seconds) to read and validate every chunk of ``path``."""
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        r = H5adReader(path)
        for c in r.iter_chunks(chunk_size):
            check_counts(c.counts, str(path))
        best = min(best, time.perf_counter() - t)
    return r.n_samples, best


def write_replicated(src: Path, out: Path, target_gb: float) -> tuple[int, int, float]:
    """Write ``src`` repeated until data+indices bytes exceed ``target_gb``; returns (samples, genes, GB)."""
    r = H5adReader(src)
    x = next(r.iter_chunks(r.n_samples)).counts.tocsr()
    per_copy = x.nnz * 8
    copies = max(1, math.ceil(target_gb * 2**30 / per_copy))
    out.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(out, "w") as f:
        f.attrs["encoding-type"], f.attrs["encoding-version"] = "anndata", "0.1.0"
        g = f.create_group("X")
        g.attrs["encoding-type"], g.attrs["encoding-version"] = "csr_matrix", "0.1.0"
        g.attrs["shape"] = (x.shape[0] * copies, x.shape[1])
        data = g.create_dataset("data", shape=(x.nnz * copies,), dtype=np.int32)
        idx = g.create_dataset("indices", shape=(x.nnz * copies,), dtype=np.int32)
        indptr = np.concatenate([[0]] + [x.indptr[1:] + k * x.nnz for k in range(copies)]).astype(np.int64)
        g.create_dataset("indptr", data=indptr)
        for k in tqdm(range(copies), desc="writing replicated input", unit="copy", disable=None):
            data[k * x.nnz:(k + 1) * x.nnz] = x.data.astype(np.int32)
            idx[k * x.nnz:(k + 1) * x.nnz] = x.indices
        ids = [f"copy{k}_{c}" for k in range(copies) for c in r.obs.index]
        adio.write_elem(f, "obs", pd.DataFrame(index=pd.Index(ids, name="cell")))
        adio.write_elem(f, "var", pd.DataFrame(index=pd.Index(list(r.genes), name="gene")))
    return x.shape[0] * copies, x.shape[1], per_copy * copies / 2**30


def _gene_table_arg() -> str:
    return "default" if Path("cache/references/genes/genes.tsv").exists() else "none"


SCRATCH_MARKER = ".data-bench-scratch"


def run_benchmarks(shared: str | Path = "../shared/data", work: str | Path = "bench-out/data",
                   budget_gb: float = 0.75, target_gb: float = 1.5, out: str | Path | None = None) -> str:
    """Run the three measurements, print a Markdown table and return it (also written to ``out``)."""
    from data.corpus.build import BuildConfig, build_corpus

    from common.errors import UserError
    shared, work = Path(shared), Path(work)
    marker = work / SCRATCH_MARKER
    if work.exists() and any(work.iterdir()) and not marker.is_file():
        raise UserError(f"{work}: exists and is not a data-bench scratch folder; it is left untouched -- "
                        "choose another --work (it is deleted after the benchmark)")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    marker.write_text("scratch folder of `python -m data bench`; deleted when the benchmark ends\n")
    rows = []
    try:
        src = largest_file(shared)
        n, sec = read_throughput(src)
        rows.append(("read + validate", src.name, n, sec, "-"))
        table = _gene_table_arg()
        t = time.perf_counter()
        build_corpus([src], work / "one", BuildConfig(), gene_table=table, log=lambda m: None)
        rows.append((f"build corpus (gene table: {table})", src.name, n, time.perf_counter() - t, "-"))
        big = work / "replicated.h5ad"
        n_big, g_big, gb = write_replicated(src, big, target_gb)
        cmd = [sys.executable, "-m", "data", "build-corpus", "--source", str(big), "--out", str(work / "big"),
               "--gene-table", table, "--keep-duplicates", "--max-memory-gb", str(budget_gb)]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        sec = time.perf_counter() - t
        if proc.returncode != 0:
            raise RuntimeError(f"large build failed: {proc.stderr[-2000:]}")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
        rows.append((f"build corpus from {gb:.2f} GiB of counts, budget {budget_gb} GiB", big.name, n_big, sec,
                     f"{peak:.2f} GiB ({'under' if peak <= budget_gb else 'OVER'} budget)"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = ["| measurement | input | samples | seconds | samples/s | peak RSS |", "|---|---|---:|---:|---:|---|"]
    lines += [f"| {m} | {f} | {n:,} | {s:.2f} | {n / s:,.0f} | {p} |" for m, f, n, s, p in rows]
    text = "\n".join(lines)
    print(text)
    if out:
        from common.atomic import atomic_write_text
        atomic_write_text(out, text + "\n")
    return text
