"""``python -m data bench``: reading / corpus-building throughput and peak memory under a budget.

1. Reading: every chunk of the largest file in the shared data folder is read
   and validated (best of 3 runs), in samples/s.
2. Building: a corpus is built from that file (both passes, report included).
3. Memory: the same file is replicated into an ``.h5ad`` whose counts
   (data + indices) exceed ``--target-gb`` (written chunk by chunk with h5py,
   so this step stays small too), then ``python -m data build-corpus
   --max-memory-gb B`` runs in a child process whose peak RSS
   (``getrusage(RUSAGE_CHILDREN).ru_maxrss``) is compared to the budget.

``--public``: corpora from a synthetic TileDB-SOMA experiment (Census layout) at two sizes and from
a synthetic ARCHS4 file, each built in a child process (``run_public_benchmarks``).
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


def _scratch(work: str | Path, command: str) -> Path:
    """A fresh scratch folder for a benchmark; a non-empty folder it did not make is refused, untouched."""
    from common.errors import UserError
    work = Path(work)
    if work.exists() and any(work.iterdir()) and not (work / SCRATCH_MARKER).is_file():
        raise UserError(f"{work}: exists and is not a data-bench scratch folder; it is left untouched -- "
                        "choose another --work (it is deleted after the benchmark)")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / SCRATCH_MARKER).write_text(f"scratch folder of `{command}`; deleted when the benchmark ends\n")
    return work


def run_benchmarks(shared: str | Path = "../shared/data", work: str | Path = "bench-out/data",
                   budget_gb: float = 0.75, target_gb: float = 1.5, out: str | Path | None = None) -> str:
    """Run the three measurements, print a Markdown table and return it (also written to ``out``)."""
    from data.corpus.build import BuildConfig, build_corpus

    shared, work = Path(shared), _scratch(work, "python -m data bench")
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


# ---------------------------------------------------------------------- public corpora (SOMA, ARCHS4)
# `python -m data bench --public`: corpora built from a synthetic TileDB-SOMA experiment (the layout of a
# CELLxGENE Census experiment: obs with dataset_id and Census-like columns, var with Ensembl feature ids
# and names, X/raw float32) at two sizes, and from a synthetic ARCHS4 file, each build in a child process
# whose own peak RSS comes from os.wait4 (not the running maximum over all children).
SOMA_OBS = {"cell_type": ["T cell", "B cell", "monocyte", "NK cell", "platelet", "erythrocyte"],
            "tissue_general": ["blood", "blood", "blood", "lung"],
            "assay": ["10x 3' v3", "10x 3' v2", "Smart-seq2"],
            "disease": ["normal", "normal", "COVID-19"]}


def _bench_genes(n_genes: int) -> tuple[list[str], list[str], str]:
    """(Ensembl ids, symbols, --gene-table value): real genes of the gene table when it is cached, else
    made-up ids kept as given."""
    table = Path("cache/references/genes/genes.tsv")
    if table.exists():
        t = pd.read_csv(table, sep="\t", usecols=["symbol", "ensembl_id"], dtype=str).dropna()
        t = t[t["ensembl_id"].str.startswith("ENSG")].drop_duplicates("ensembl_id").head(n_genes)
        if len(t) == n_genes:
            return t["ensembl_id"].tolist(), t["symbol"].tolist(), "default"
    ids = [f"ENSG9{i:010d}" for i in range(n_genes)]
    return ids, [f"GENE{i}" for i in range(n_genes)], "none"


def _random_rows(rng, n: int, n_genes: int, per_row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """COO (row, column, value) of n rows with about ``per_row`` distinct random columns each (sorted)."""
    cols = np.sort(rng.integers(0, n_genes, size=(n, per_row)), axis=1)
    first = np.ones_like(cols, dtype=bool)
    first[:, 1:] = cols[:, 1:] != cols[:, :-1]
    rows = np.broadcast_to(np.arange(n)[:, None], cols.shape)[first]
    cols = cols[first]
    return rows, cols, rng.geometric(0.4, size=cols.size)


def write_synthetic_soma(uri: Path, n_cells: int, n_genes: int = 20_000, per_cell: int = 1000,
                         n_datasets: int = 4, seed: int = 0, step: int = 10_000) -> tuple[int, str]:
    """A TileDB-SOMA experiment at ``uri`` shaped like a Census one; returns (stored non-zeros, gene table).

    Datasets are contiguous blocks of cells (as in Census); X is written row-major in blocks of ``step``
    cells (tiles of whole rows, so the writes are in TileDB's global order and need no sort).
    """
    import pyarrow as pa
    import tiledbsoma

    ids, symbols, table = _bench_genes(n_genes)
    rng = np.random.default_rng(seed)
    obs_schema = pa.schema([("soma_joinid", pa.int64()), ("obs_id", pa.large_string()),
                            ("dataset_id", pa.large_string()), ("donor_id", pa.large_string()),
                            ("is_primary_data", pa.bool_())] + [(k, pa.large_string()) for k in SOMA_OBS])
    nnz = 0
    with tiledbsoma.Experiment.create(str(uri)) as exp:
        obs = exp.add_new_dataframe("obs", schema=obs_schema, index_column_names=["soma_joinid"],
                                    domain=[(0, n_cells - 1)])
        rna = exp.add_new_collection("ms").add_new_collection("RNA", tiledbsoma.Measurement)
        var = pa.table({"soma_joinid": np.arange(n_genes, dtype=np.int64), "feature_id": ids, "feature_name": symbols})
        rna.add_new_dataframe("var", schema=var.schema, index_column_names=["soma_joinid"],
                              domain=[(0, n_genes - 1)]).write(var)
        x = rna.add_new_collection("X").add_new_sparse_ndarray(
            "raw", type=pa.float32(), shape=(n_cells, n_genes),
            platform_config={"tiledb": {"create": {"dims": {"soma_dim_1": {"tile": n_genes}}}}})
        no_sort = tiledbsoma.TileDBWriteOptions(sort_coords=False)
        for lo in tqdm(range(0, n_cells, step), desc=f"writing a {n_cells:,}-cell SOMA experiment", unit="block",
                       disable=None):
            n = min(step, n_cells - lo)
            joinid = np.arange(lo, lo + n, dtype=np.int64)
            cols = {"soma_joinid": joinid, "obs_id": [f"cell{i}" for i in joinid],
                    "dataset_id": [f"dataset-{i * n_datasets // n_cells}" for i in joinid],
                    "donor_id": [f"donor-{i}" for i in rng.integers(0, 40, n)],
                    "is_primary_data": rng.random(n) < 0.9}
            cols |= {k: np.asarray(v)[rng.integers(0, len(v), n)].tolist() for k, v in SOMA_OBS.items()}
            obs.write(pa.table(cols, schema=obs_schema))
            r, c, v = _random_rows(rng, n, n_genes, per_cell)
            x.write(pa.table({"soma_dim_0": (r + lo).astype(np.int64), "soma_dim_1": c.astype(np.int64),
                              "soma_data": v.astype(np.float32)}), platform_config=no_sort)
            nnz += int(c.size)
    return nnz, table


def write_synthetic_archs4(path: Path, n_samples: int, n_genes: int = 20_000, detected: float = 0.5,
                           seed: int = 0, step: int = 500) -> tuple[int, str]:
    """An ARCHS4-layout file (genes x samples uint32, gzip, chunked by sample columns); returns (non-zeros,
    gene table). Each sample detects about ``detected`` of the genes, with bulk-sized counts."""
    ids, symbols, table = _bench_genes(n_genes)
    rng = np.random.default_rng(seed)
    nnz = 0
    with h5py.File(path, "w") as f:
        x = f.create_dataset("data/expression", shape=(n_genes, n_samples), dtype=np.uint32,
                             chunks=(n_genes, min(50, n_samples)), compression="gzip", compression_opts=1)
        f.create_dataset("meta/genes/ensembl_gene", data=np.array(ids, dtype="S"))
        f.create_dataset("meta/genes/symbol", data=np.array(symbols, dtype="S"))
        s = f.create_group("meta/samples")
        s.create_dataset("geo_accession", data=np.array([f"GSM{10_000_000 + i}" for i in range(n_samples)], dtype="S"))
        s.create_dataset("series_id", data=np.array([f"GSE{100_000 + i // 50}" for i in range(n_samples)], dtype="S"))
        s.create_dataset("title", data=np.array([f"sample {i}" for i in range(n_samples)], dtype="S"))
        s.create_dataset("singlecellprobability", data=rng.random(n_samples) * 0.2)
        for lo in tqdm(range(0, n_samples, step), desc=f"writing a {n_samples:,}-sample ARCHS4 file", unit="block",
                       disable=None):
            n = min(step, n_samples - lo)
            block = np.zeros((n, n_genes), dtype=np.uint32)
            r, c, _ = _random_rows(rng, n, n_genes, int(detected * n_genes * 1.45))
            block[r, c] = np.minimum(rng.lognormal(5, 2, size=c.size), 2e6).astype(np.uint32) + 1
            x[:, lo:lo + n] = block.T
            nnz += int(c.size)
    return nnz, table


def build_in_child(source: Path, out: Path, table: str, extra: tuple[str, ...] = ()) -> tuple[float, float, float, dict]:
    """Run ``python -m data build-corpus`` in a child process; (wall seconds, its CPU seconds, its peak RSS in
    GiB, report)."""
    import json
    cmd = [sys.executable, "-m", "data", "build-corpus", "--source", str(source), "--out", str(out),
           "--gene-table", table, *extra]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TQDM_DISABLE": "1"})
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    sec = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"build of {source} failed: {err[-2000:]}")
    return sec, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 2**20, json.loads((out / "report.json").read_text())


def run_public_benchmarks(work: str | Path = "bench-out/data-public", soma_cells: tuple[int, ...] = (50_000, 200_000),
                          archs4_samples: int = 20_000, n_genes: int = 20_000, per_cell: int = 1000,
                          out: str | Path | None = None) -> str:
    """Build corpora from synthetic SOMA experiments and an ARCHS4 file; print and return the Markdown table."""
    work = _scratch(work, "python -m data bench --public")
    rows, loads = [], [os.getloadavg()[0]]
    try:
        inputs = []
        for n in soma_cells:
            nnz, table = write_synthetic_soma(work / f"soma-{n}", n, n_genes, per_cell)
            inputs.append(("TileDB-SOMA (Census layout), 4 datasets", work / f"soma-{n}", n, nnz, table))
        nnz, table = write_synthetic_archs4(work / "archs4.h5", archs4_samples, n_genes)
        inputs.append(("ARCHS4 .h5 (genes x samples, gzip)", work / "archs4.h5", archs4_samples, nnz, table))
        for what, src, n, nnz, table in inputs:
            loads.append(os.getloadavg()[0])
            sec, cpu, peak, rep = build_in_child(src, work / f"corpus-{src.name}", table)
            rows.append((what, n, n_genes, nnz / n, rep["n_samples"], sec, cpu, peak))
            shutil.rmtree(work / f"corpus-{src.name}", ignore_errors=True)
            shutil.rmtree(src, ignore_errors=True) if src.is_dir() else src.unlink()
        loads.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = ["| source | samples | genes | non-zeros per sample | samples kept | wall s | samples/s | CPU s | "
             "samples per CPU s | peak RSS |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {w} | {n:,} | {g:,} | {z:,.0f} | {k:,} | {s:.1f} | {n / s:,.0f} | {c:.1f} | {n / c:,.0f} | "
              f"{p:.2f} GiB |" for w, n, g, z, k, s, c, p in rows]
    soma = [r for r in rows if r[0].startswith("TileDB-SOMA")]
    if len(soma) >= 2:
        lines.append(f"\nPeak RSS at {soma[-1][1]:,} cells / at {soma[0][1]:,} cells: {soma[-1][7] / soma[0][7]:.2f}x.")
    lines.append(f"Load average (1 min) before each build and at the end: {', '.join(f'{x:.1f}' for x in loads)} "
                 f"on {os.cpu_count()} CPUs. Wall and CPU seconds (user + system, all threads) are the child "
                 f"process's, start-up and gene table included; peak RSS is its own (os.wait4).")
    text = "\n".join(lines)
    print(text)
    if out:
        from common.atomic import atomic_write_text
        atomic_write_text(out, text + "\n")
    return text
