"""The two real-data benchmarks end to end: read the data, embed it every way asked for, score,
and write a result folder (CSV tables, a markdown table, run.json with parameters and timings)."""
from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import embeddings as emb
from .celltype import CellTypeParams, evaluate_celltypes
from .inputs import LabelledCounts, read_input, references_gene_table
from .perturbation import PerturbationParams, evaluate_embedding, params_dict
from common.atomic import atomic_write_text
from common.outputs import check_output_target, staged_output

from .report import markdown_table, result_folder_test, write_csv, write_json


def check_options(max_cells=None, max_genes=None, batch_size=None, dataset_pca=0) -> None:
    """Ranges of the options shared by the benchmarks (before any file is read)."""
    from common.options import check_range
    check_range("max_cells", max_cells, lo=2, integer=True, none_ok=True, what="cells subsampled")
    check_range("max_genes", max_genes, lo=1, integer=True, none_ok=True, what="genes revealed to TxFM")
    check_range("batch_size", batch_size, lo=1, integer=True, none_ok=True, what="cells per forward pass")
    check_range("dataset_pca", dataset_pca, lo=0, integer=True, what="0 = skip")


def _embed_all(data: LabelledCounts, checkpoint: str | None, pca: str | None, log1p: bool,
               dataset_pca: int, max_genes: int | None, batch_size: int, device: str,
               seed: int) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """{name: (n, D)} embeddings and {name: info incl. seconds} in a fixed order."""
    zs, info = {}, {}

    def add(name, fn):
        t0 = time.perf_counter()
        z, i = fn()
        zs[name], info[name] = z, {**i, "seconds": round(time.perf_counter() - t0, 2)}

    if checkpoint:
        add("txfm", lambda: emb.txfm_embedding(checkpoint, data, max_genes, batch_size, seed, device))
    if pca:
        add("pca_baseline", lambda: emb.pca_baseline_embedding(pca, data))
    if log1p:
        add("log1p_counts", lambda: emb.log1p_embedding(data))
    if dataset_pca:
        add(f"dataset_pca{dataset_pca}", lambda: emb.dataset_pca_embedding(data, dataset_pca, seed=seed))
    if not zs:
        raise ValueError("nothing to evaluate: pass --checkpoint and/or --pca (or keep --log1p)")
    return zs, info


def run_perturbation(input_path: str, out_dir: str | os.PathLike, checkpoint: str | None = None,
                     pca: str | None = None, references: str | None = None, dataset: str | None = None,
                     layer: str | None = None, label_column: str = "perturbation", batch_column: str = "batch",
                     params: PerturbationParams = PerturbationParams(), log1p: bool = True, shuffled: bool = True,
                     max_cells: int | None = None, max_genes: int | None = None, batch_size: int | None = None,
                     device: str = "cpu", overwrite: bool = False) -> pd.DataFrame:
    """Perturbation benchmark on one screen; writes perturbation.{csv,md}, consistency.csv,
    mean_recall.csv and run.json into ``out_dir`` (an existing result folder is replaced only with
    ``overwrite``; any other folder is refused). Returns the metrics table (one row per embedding)."""
    t0 = time.perf_counter()
    check_options(max_cells, max_genes, batch_size)
    is_own = result_folder_test("perturbation.csv")
    inputs = [p for p in (input_path, checkpoint, pca, references) if p]
    check_output_target(out_dir, "perturbation result folder", is_own, overwrite, protect=inputs)
    data = read_input(input_path, dataset, layer, gene_table=references_gene_table(references))
    labels, batch = data.column(label_column), data.column(batch_column)
    if max_cells and data.counts.shape[0] > max_cells:
        rows = np.sort(np.random.default_rng(params.seed).choice(data.counts.shape[0], max_cells, replace=False))
        data, labels, batch = data.subset(rows), labels[rows], batch[rows]
    if not (labels == params.control).any():
        raise ValueError(f"{data.name}: no cell has {label_column} == {params.control!r}; pass --control "
                         f"(labels seen: {sorted(set(labels))[:8]})")
    pairs = None
    if references:
        from data.references.tables import load_pairs
        pairs = load_pairs(Path(references))
    zs, info = _embed_all(data, checkpoint, pca, log1p, 0, max_genes, batch_size, device, params.seed)
    jobs = [(n, z, False) for n, z in zs.items()]
    if shuffled:
        first = next(iter(zs))
        jobs.append((f"{first}_shuffled_labels", zs[first], True))
    rows, cons, recs = [], [], []
    for name, z, shuf in tqdm(jobs, desc="perturbation metrics", unit="embedding"):
        t = time.perf_counter()
        row, table, rec = evaluate_embedding(z, labels, batch, params, pairs, shuffle_labels=shuf)
        rows.append({"embedding": name, **row, "seconds": round(time.perf_counter() - t, 2)})
        cons.append(table.assign(embedding=name))
        if rec is not None:
            recs.append(rec.assign(embedding=name))
    table = pd.DataFrame(rows)
    with staged_output(out_dir, "perturbation result folder", is_own, overwrite, protect=inputs) as out:
        _write_perturbation(out, table, cons, recs, input_path, dataset, labels, data, label_column, batch_column,
                            checkpoint, pca, references, params, info, t0)
    return table


def _write_perturbation(out, table, cons, recs, input_path, dataset, labels, data, label_column, batch_column,
                        checkpoint, pca, references, params, info, t0) -> None:
    write_csv(table, out / "perturbation.csv")
    write_csv(pd.concat(cons, ignore_index=True), out / "consistency.csv")
    if recs:
        write_csv(pd.concat(recs, ignore_index=True), out / "mean_recall.csv")
    atomic_write_text(out / "perturbation.md", markdown_table(summary_columns(table)))
    write_json({"input": input_path, "dataset": dataset, "n_cells": int(len(labels)),
                "n_genes": len(data.genes), "label_column": label_column, "batch_column": batch_column,
                "label_counts": pd.Series(labels).value_counts().to_dict(), "checkpoint": checkpoint,
                "pca": pca, "references": references, "params": params_dict(params), "embeddings": info,
                "seconds": round(time.perf_counter() - t0, 1)}, out / "run.json")


def summary_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The headline columns of the perturbation table, in reading order."""
    cols = ["embedding", "dims_in", "consistency", "n_consistent", "n_perturbations", "consistency_p10", "loo_cosine",
            "knn_top1", "knn_top5",
            "probe_balanced_accuracy", "probe_macro_f1", "mean_recall", "mean_recall_pairs", "mean_recall_chance"]
    return table[[c for c in cols if c in table.columns]]


def parse_labelled_input(spec: str) -> tuple[str, str]:
    """'path.h5ad:column' -> (path, column)."""
    path, sep, col = spec.rpartition(":")
    if not sep or not path or not col:
        raise ValueError(f"--input {spec!r}: write it as PATH:LABEL_COLUMN, e.g. pbmc.h5ad:cell_type")
    return path, col


def run_celltype(inputs: list[str], out_dir: str | os.PathLike, checkpoint: str | None = None,
                 pca: str | None = None, params: CellTypeParams = CellTypeParams(), dataset_pca: int = 50,
                 shuffled: bool = True, max_genes: int | None = None, batch_size: int | None = None,
                 device: str = "cpu", max_cells: int | None = None, overwrite: bool = False) -> pd.DataFrame:
    """Cell-type benchmark on labelled datasets ('PATH:COLUMN'); writes celltype.{csv,md} and run.json
    (an existing result folder is replaced only with ``overwrite``; any other folder is refused).
    max_cells: random subsample of each dataset (default: all cells)."""
    t0 = time.perf_counter()
    check_options(max_cells, max_genes, batch_size, dataset_pca)
    is_own = result_folder_test("celltype.csv")
    protect = [p for p in [checkpoint, pca] + [s.rpartition(":")[0] for s in inputs] if p]
    check_output_target(out_dir, "cell-type result folder", is_own, overwrite, protect=protect)
    rows, infos = [], {}
    for spec in inputs:
        path, col = parse_labelled_input(spec)
        data = read_input(path)
        if max_cells and data.counts.shape[0] > max_cells:
            data = data.subset(np.sort(np.random.default_rng(params.seed).choice(data.counts.shape[0], max_cells,
                                                                                 replace=False)))
        labels = data.column(col)
        zs, info = _embed_all(data, checkpoint, pca, False, dataset_pca, max_genes, batch_size, device,
                              params.seed)
        infos[spec] = info
        jobs = [(n, z, labels) for n, z in zs.items()]
        if shuffled:
            first = next(iter(zs))
            jobs.append((f"{first}_shuffled_labels", zs[first],
                         np.random.default_rng(params.seed).permutation(labels)))
        for name, z, lab in tqdm(jobs, desc=f"cell types {Path(path).stem}", unit="embedding"):
            rows.append({"dataset": Path(path).stem, "label_column": col, "embedding": name, "dims": int(z.shape[1]),
                         **evaluate_celltypes(z, lab, params)})
    table = pd.DataFrame(rows)
    with staged_output(out_dir, "cell-type result folder", is_own, overwrite, protect=protect) as out:
        write_csv(table, out / "celltype.csv")
        head = ["dataset", "embedding", "n_cells", "n_labels", "knn_accuracy", "knn_balanced_accuracy"]
        res = [c for r in params.resolutions for c in (f"ari@{r:g}", f"nmi@{r:g}", f"n_clusters@{r:g}")]
        atomic_write_text(out / "celltype.md", markdown_table(table[head + res]))
        write_json({"inputs": inputs, "checkpoint": checkpoint, "pca": pca, "params": asdict(params),
                    "max_genes": max_genes, "max_cells": max_cells, "dataset_pca": dataset_pca,
                    "embeddings": infos, "seconds": round(time.perf_counter() - t0, 1)}, out / "run.json")
    return table
