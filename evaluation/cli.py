"""Command line: python -m evaluation {perturbation,celltype,curves,results,crosscheck,time-to-quality,stream-mix,cls-anatomy,reveal-ceiling,ablate} --help"""
from __future__ import annotations

import argparse
import sys

from common.cli_args import add_dataclass_args, collect
from common.errors import EXIT_CODES_HELP, UserError

from .celltype import CellTypeParams
from .perturbation import PerturbationParams


def _perturbation(ns: argparse.Namespace) -> int:
    from .benchmarks import run_perturbation, summary_columns
    from .report import markdown_table

    params = PerturbationParams(**collect(ns, PerturbationParams))
    table = run_perturbation(ns.input, ns.out, ns.checkpoint, ns.pca, None if ns.references == "none" else ns.references,
                             ns.dataset, ns.layer, ns.label_column, ns.batch_column, params, ns.log1p, ns.shuffled,
                             ns.max_cells, ns.max_genes, ns.batch_size, ns.device, overwrite=ns.overwrite)
    print(markdown_table(summary_columns(table)))
    print(f"results -> {ns.out}")
    return 0


def _celltype(ns: argparse.Namespace) -> int:
    from .benchmarks import run_celltype
    from .report import markdown_table

    params = CellTypeParams(**collect(ns, CellTypeParams))
    table = run_celltype(ns.input, ns.out, ns.checkpoint, ns.pca, params, ns.dataset_pca, ns.shuffled,
                         ns.max_genes, ns.batch_size, ns.device, ns.max_cells, overwrite=ns.overwrite)
    print(markdown_table(table))
    print(f"results -> {ns.out}")
    return 0


def _curves(ns: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from common.outputs import check_output_target, staged_output
    from .curves import markdown, run_curves
    from .report import result_folder_test

    is_own = result_folder_test("curves.csv")
    protect = [p for p in (ns.run, ns.pca, ns.corpus, ns.references) if p]
    check_output_target(ns.out, "learning-curve result folder", is_own, ns.overwrite, protect=protect)
    df = run_curves(ns.run, ns.references, ns.pca, ns.corpus, ns.dataset, ns.label_column, ns.every, ns.seed,
                    ns.device)
    text = markdown(df)
    with staged_output(ns.out, "learning-curve result folder", is_own, ns.overwrite, protect=protect) as out:
        df.to_csv(out / "curves.csv", index=False)
        (out / "curves.md").write_text(text + "\n")
        (out / "run.json").write_text(json.dumps({k: str(v) for k, v in vars(ns).items() if k != "func"}, indent=1))
    print(text)
    print(f"results -> {Path(ns.out)}")
    return 0


def _stream_mix(ns: argparse.Namespace) -> int:
    from common.options import check_range
    from .curves import stream_mix
    from .report import markdown_table

    check_range("batches", ns.batches, lo=1, integer=True)
    check_range("batch_size", ns.batch_size, lo=1, integer=True)

    print(markdown_table(stream_mix(ns.corpus, ns.dataset, ns.batches, ns.batch_size, ns.seed)))
    return 0


def _readable_ttq(t):
    """The time-to-quality table as a reader wants it: yes/no, blanks for what does not apply, 3 decimals."""
    import pandas as pd

    def fmt(v, digits=3):
        return "-" if v is None or (isinstance(v, float) and pd.isna(v)) else (
            f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))

    return pd.DataFrame({
        "matrix": t.matrix, "PCA recall": [fmt(v) for v in t.pca_recall],
        "final recall (step)": [f"{fmt(r)} ({s:,})" for r, s in zip(t.final_recall, t.final_step)],
        "final train min": [fmt(v, 1) for v in t.final_minutes],
        "reached PCA": ["yes" if r else "no" for r in t.reached],
        "at step": [fmt(None if pd.isna(v) else int(v)) for v in t.step],
        "samples seen": [fmt(None if pd.isna(v) else int(v)) for v in t.samples_seen],
        "train min to PCA": [fmt(v, 1) for v in t.minutes], "how": t.estimate})


def _time_to_quality(ns: argparse.Namespace) -> int:
    import pandas as pd

    from common.atomic import atomic_write_text
    from .curves import time_to_quality
    from .report import markdown_table

    try:
        df = pd.read_csv(ns.curves)
    except FileNotFoundError:
        raise UserError(f"{ns.curves}: no learning curves there; make them with `make results` "
                        "or `python -m evaluation curves --run RUN --pca PCA --out DIR`") from None
    need = {"kind", "matrix", "step", "samples_seen", "train_minutes", "recall"}
    if not need <= set(df.columns):
        raise UserError(f"{ns.curves}: not a learning-curve table (missing {sorted(need - set(df.columns))}); "
                        "pass the curves.csv written by `python -m evaluation curves`")
    t = time_to_quality(df)
    text = "\n".join([
        "## Time to quality", "",
        f"Training minutes (wall time of `txfm train` on this machine, from the run's metrics) until each TxFM "
        f"matrix's honest recall reaches the PCA baseline's, read from `{ns.curves}` (`make results`). "
        "Where no checkpoint reaches it, the minutes are the slope of the last half of the run extrapolated.", "",
        markdown_table(_readable_ttq(t)), ""])
    if ns.doc:
        atomic_write_text(ns.doc, text)
    print(text)
    return 0


def _crosscheck(a: argparse.Namespace) -> int:
    from common.spreadsheet import safe_frame
    from .crosscheck import crosscheck
    if a.project_baseline:
        from .crosscheck import project_baseline_recall
        table, info = project_baseline_recall(a.data, a.references, a.project_baseline,
                                              n_components=a.components, seed=a.seed)
        info["library_over"] = "corpus vocabulary (txfm preprocessing)"
    else:
        table, info = crosscheck(a.data, a.references, n_components=a.components, library_over=a.library_over,
                                 seed=a.seed)
    print(f"{info['cells']:,} cells x {info['genes']:,} genes, {info['components']} components, "
          f"library size over {info['library_over']} genes")
    piv = table.pivot(index="source", columns="variant", values="recall_mean")
    piv["n_pairs"] = table.groupby("source").n_pairs.first()
    piv.loc["chance"] = [table[table.variant == v].chance.iloc[0] for v in piv.columns[:-1]] + [0]
    print(piv.round(3).to_string())
    if a.out:
        from common.atomic import atomic_write_text
        atomic_write_text(a.out, safe_frame(table.assign(**{k: v for k, v in info.items()})).to_csv(index=False))
    return 0


def _results(a: argparse.Namespace) -> int:
    from pathlib import Path

    from common.spreadsheet import safe_frame
    from .results import evaluate, write_results_doc
    table, info = evaluate(Path(a.run), Path(a.pca), Path(a.references), n_nulls=a.n_nulls,
                           null_size=a.null_size, seed=a.seed)
    pair_table, pair_info = evaluate(Path(a.run), Path(a.pca), Path(a.references), n_nulls=a.n_nulls,
                                     null_size=a.null_size, seed=a.seed, whole_vocabulary=True, final_only=True)
    cmd = (f"python -m evaluation results --run {a.run} --pca {a.pca} --references {a.references} "
           f"--doc {a.doc}")
    write_results_doc(Path(a.doc), table, info, cmd, pair_table, pair_info)
    if a.table:
        from common.atomic import atomic_write_text
        atomic_write_text(a.table, safe_frame(table).to_csv(index=False))
    print(f"written {a.doc}")
    return 0


def _cls_anatomy(ns: argparse.Namespace) -> int:
    from txfm.inference import gene_matrices
    from .curves import cls_anatomy
    from .report import markdown_table

    corpus = ns.corpus or gene_matrices(ns.checkpoint)[2]["corpus"].get("path")
    print(markdown_table(cls_anatomy(ns.checkpoint, corpus, ns.dataset, ns.label_column, seed=ns.seed).round(3)))
    return 0


def _reveal_ceiling(ns: argparse.Namespace) -> int:
    from .curves import reveal_ceiling
    from .report import markdown_table

    table = reveal_ceiling(ns.corpus, ns.dataset, ns.label_column, tuple(ns.reveal), tuple(ns.detected_share),
                           seed=ns.seed)
    print(markdown_table(table.round(3)))
    return 0


def _gpu_check(ns: argparse.Namespace) -> int:
    from .gpu_check import run_gpu_check

    runs = dict(r.split("=", 1) for r in ns.quality_run) if ns.quality_run else None
    if runs and any(not k or not v for k, v in runs.items()):
        raise UserError("--quality-run: expected NAME='txfm train options', e.g. "
                        "--quality-run S='--preset S --reveal 1024 --batch-size 256'")
    label = tuple(ns.label.split(":", 1)) if ns.label else None
    if label is not None and len(label) != 2:
        raise UserError(f"--label {ns.label!r}: expected DATASET:COLUMN, e.g. pbmc_sorted_reference_mudan:cell_type")
    if ns.pack is None and ns.corpus is None:
        raise UserError("gpu-check: pass --pack DIR (made by make gpu-pack) or --corpus DIR")
    run_gpu_check(ns.corpus, ns.references if ns.pack is None else None, ns.out, ns.doc, ns.pca, ns.device,
                  ns.workers, ns.toy, ns.budget_s, ns.train_s, ns.skip_tests, runs, label, ns.work, ns.pack,
                  ns.overwrite)
    return 0


def _gpu_pack(ns: argparse.Namespace) -> int:
    from .gpu_check import pack

    pack(ns.corpus, ns.references, ns.out, ns.overwrite, wheels=not ns.no_wheels)
    return 0


def _ablate(ns: argparse.Namespace) -> int:
    from .ablate import main as ablate_main

    return ablate_main(ns.forwarded)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", default=None, help="TxFM checkpoint (.pt) whose CLS embeddings are scored")
    p.add_argument("--pca", default=None, help="PCA baseline file (python -m txfm baseline-pca) on the same corpus")
    p.add_argument("--out", required=True, help="result folder (CSV, markdown table, run.json); an existing one "
                   "is replaced only with --overwrite, any other existing folder is refused")
    p.add_argument("--overwrite", action="store_true", help="replace an existing result folder of this benchmark")
    p.add_argument("--max-genes", type=int, default=None, help="genes revealed to TxFM per cell (default: training K)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="cells per TxFM forward pass (default: 16 on CPU, 256 on GPU)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--no-shuffled", dest="shuffled", action="store_false",
                   help="skip the label-shuffled control (labels permuted, first embedding)")


class _Forward(argparse.ArgumentParser):
    """A subcommand whose arguments are parsed by another module (``forward=True``)."""

    def __init__(self, *args, forward: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.forward = forward

    def parse_known_args(self, args=None, namespace=None):
        if self.forward:
            ns = namespace or argparse.Namespace()
            ns.forwarded = list(args or [])
            ns.func = self._defaults["func"]
            return ns, []
        return super().parse_known_args(args, namespace)


def _add_labelled_dataset(p: argparse.ArgumentParser, corpus_required: bool) -> None:
    """--corpus, --dataset, --label-column: the labelled cells the CLS kNN accuracy is scored on."""
    from .curves import CELLTYPE_COLUMN, CELLTYPE_DATASET

    if corpus_required:
        p.add_argument("--corpus", required=True, default=argparse.SUPPRESS, help="corpus holding the labelled dataset")
    else:
        p.add_argument("--corpus", default=None, help="corpus holding the labelled dataset (%(default)s: the run's corpus)")
    p.add_argument("--dataset", default=CELLTYPE_DATASET, help="labelled dataset of the corpus (CLS kNN reference)")
    p.add_argument("--label-column", default=CELLTYPE_COLUMN, help="obs column with the labels")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evaluation",
                                description="Cell-embedding benchmarks and the ablation runner (docs/evaluation.md)", epilog=EXIT_CODES_HELP)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Forward)
    q = sub.add_parser("perturbation", help="perturbation benchmark on a CRISPR screen",
                       description="Consistency, recall of perturbation means, cross-batch kNN retrieval and a "
                                   "leave-one-batch-out linear probe, for TxFM, the PCA baseline, log1p counts "
                                   "and a label-shuffled control.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    q.add_argument("--input", required=True, help=".h5ad file of raw counts, or a corpus directory (with --dataset)")
    q.add_argument("--dataset", default=None, help="dataset name when --input is a corpus")
    q.add_argument("--layer", default=None, help="h5ad layer holding raw counts (default: X)")
    q.add_argument("--label-column", default="perturbation", help="obs column with the perturbation target")
    q.add_argument("--batch-column", default="batch", help="obs column with the batch / replicate")
    q.add_argument("--references", default="cache/references",
                   help="reference folder for recall of perturbation means ('none' skips)")
    q.add_argument("--max-cells", type=int, default=None, help="random subsample of cells (default: all)")
    q.add_argument("--no-log1p", dest="log1p", action="store_false", help="skip the log1p-counts embedding")
    _common(q)
    add_dataclass_args(q, PerturbationParams, title="benchmark parameters")
    q.set_defaults(func=_perturbation)

    t = sub.add_parser("celltype", help="cell-type structure: kNN accuracy, ARI/NMI of Leiden clusters",
                       description="kNN label accuracy and ARI/NMI of Leiden clusters against known cell types.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    t.add_argument("--input", required=True, action="append",
                   help="PATH.h5ad:LABEL_COLUMN (repeat for several datasets)")
    t.add_argument("--dataset-pca", type=int, default=50,
                   help="also score a PCA of log1p counts fitted on each dataset itself, with this many components "
                        "(0 = skip)")
    t.add_argument("--max-cells", type=int, default=None, help="random subsample of each dataset (default: all)")
    _common(t)
    add_dataclass_args(t, CellTypeParams, title="benchmark parameters")
    t.set_defaults(func=_celltype)

    v = sub.add_parser("curves", help="learning curves of a run: honest recall, hubness, CLS kNN per checkpoint",
                       description="For every saved checkpoint of a run (and the PCA baseline): recall of known "
                                   "pairs at the best rank on the honest gene population, neighbourhood hubness, "
                                   "and CLS kNN accuracy on a labelled dataset of the corpus.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    v.add_argument("--run", required=True, help="run folder (python -m txfm train --out)")
    v.add_argument("--references", default="cache/references", help="reference folder (python -m data fetch-references)")
    v.add_argument("--pca", default=None, help="PCA baseline file on the same corpus (scored beside the run)")
    _add_labelled_dataset(v, corpus_required=False)
    v.add_argument("--every", type=int, default=1, help="score every n-th checkpoint (the last always)")
    v.add_argument("--seed", type=int, default=0, help="seed of nulls and gene selection")
    v.add_argument("--device", default="auto", help="where CLS embeddings are computed: auto (a GPU when there is "
                                                    "one), cpu, cuda, cuda:N")
    v.add_argument("--out", required=True, help="result folder (curves.csv, curves.md, run.json)")
    v.add_argument("--overwrite", action="store_true", help="replace an existing learning-curve result folder")
    v.set_defaults(func=_curves)

    m = sub.add_parser("stream-mix", help="which datasets the training stream puts in each batch",
                       description="Replays the first training batches of the stream (rows only) one shard at a "
                                   "time and pooled, with and without dataset weights, and prints the share of one "
                                   "dataset, the batches dominated by it and the datasets per batch.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    m.add_argument("--corpus", required=True, help="corpus directory")
    m.add_argument("--dataset", default="papalexi2021_thp1_crispr", help="dataset whose share is reported")
    m.add_argument("--batches", type=int, default=1000, help="batches replayed")
    m.add_argument("--batch-size", type=int, default=32, help="samples per batch")
    m.add_argument("--seed", type=int, default=0, help="stream seed")
    m.set_defaults(func=_stream_mix)

    q = sub.add_parser("time-to-quality", help="training minutes until each matrix reaches PCA's honest recall",
                       description="Reads a learning-curve table (curves.csv of `evaluation curves`) and reports, "
                                   "for each TxFM matrix, when its honest recall first reaches the PCA baseline's, "
                                   "or the extrapolated minutes when it does not.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    q.add_argument("--curves", default="results/curves/curves.csv", help="curves.csv of `evaluation curves`")
    q.add_argument("--doc", default=None, help="markdown file to write the table to (replaced)")
    q.set_defaults(func=_time_to_quality)

    c = sub.add_parser("cls-anatomy", help="what a checkpoint's CLS encodes: cell labels, depth, or the reveal draw",
                       description="Principal components of the CLS embeddings of a labelled dataset of the "
                                   "run's corpus: variance share, correlation with library size and detected "
                                   "genes, share of variance between labels, and how stable a cell's CLS is "
                                   "under another draw of revealed genes.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("--checkpoint", required=True, help="TxFM checkpoint (.pt)")
    _add_labelled_dataset(c, corpus_required=False)
    c.add_argument("--seed", type=int, default=0, help="reveal seed (the stability uses seed and seed + 1)")
    c.set_defaults(func=_cls_anatomy)

    r = sub.add_parser("reveal-ceiling", help="how much cell type the revealed genes alone carry (no model)",
                       description="For each K and share of K drawn from a cell's non-zero genes, a PCA of the "
                                   "cells' values at their revealed genes only, scored by the same 15-NN "
                                   "accuracy as the CLS: a linear bound on what a CLS trained on that reveal "
                                   "shows. The first row keeps every gene.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_labelled_dataset(r, corpus_required=True)
    r.add_argument("--reveal", type=int, nargs="+", default=[256, 512, 1024], help="genes revealed per cell (K)")
    r.add_argument("--detected-share", type=float, nargs="+", default=[0.0, 0.5, 1.0],
                   help="share of K drawn first from the cell's non-zero genes (0 = the paper's uniform draw)")
    r.add_argument("--seed", type=int, default=0, help="reveal seed")
    r.set_defaults(func=_reveal_ceiling)

    x = sub.add_parser("crosscheck", help="independent PCA recall on the five PBMC sets of ../shared/data")
    x.add_argument("--data", default="../shared/data", help="real data folder (default ../shared/data)")
    x.add_argument("--references", default="cache/references", help="reference folder (default cache/references)")
    x.add_argument("--components", type=int, default=256, help="PCA components (default 256)")
    x.add_argument("--library-over", choices=["all", "common"], default="all",
                   help="library size over all genes of a cell, or only the kept common genes")
    x.add_argument("--seed", type=int, default=0, help="seed of the nulls (default 0)")
    x.add_argument("--out", default=None, help="also write the full table as CSV here")
    x.add_argument("--project-baseline", default=None, metavar="WORK_DIR",
                   help="instead, run the project's path on the same input (data build-corpus -> txfm "
                        "baseline-pca -> recall) with its files in WORK_DIR")
    x.set_defaults(func=_crosscheck)

    r = sub.add_parser("results", help="recall of a run's checkpoints vs the PCA baseline -> docs/results.md")
    r.add_argument("--run", required=True, help="run folder with step checkpoints and last.pt")
    r.add_argument("--pca", required=True, help="PCA baseline file fit on the same corpus")
    r.add_argument("--references", default="cache/references", help="reference folder (default cache/references)")
    r.add_argument("--doc", default="docs/results.md", help="markdown file to write (PNGs go beside it)")
    r.add_argument("--table", default=None, help="also write the full recall table as CSV here")
    r.add_argument("--n-nulls", type=int, default=3, help="nulls per recall (default 3)")
    r.add_argument("--null-size", type=int, default=5000, help="genes per null sample (default 5000)")
    r.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    r.set_defaults(func=_results)

    g = sub.add_parser("gpu-check", help="on a lent GPU: GPU tests, throughput/MFU table, quality step -> docs/bench-gpu.md",
                       description="One prepared run for a GPU (make gpu-check): the GPU tests, a throughput table "
                                   "of the tiny/S/B presets at K = 256/1,024/2,048 through the real data path "
                                   "(samples/s, MFU against a matmul peak measured in the same run, peak memory, "
                                   "the loader alone), and short training runs of the GPU recipe scored by "
                                   "evaluation curves, within a time budget.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g.add_argument("--pack", default=None, help="a folder made by make gpu-pack (corpus, references, wheels): "
                                               "unpacked first; replaces --corpus and --references")
    g.add_argument("--corpus", default=None, help="corpus to train and measure on (e.g. corpora/shared)")
    g.add_argument("--references", default="cache/references", help="reference folder for the recall scores")
    g.add_argument("--pca", default=None, help="PCA baseline file of the corpus (fitted on the CPU during the run if absent)")
    g.add_argument("--out", required=True, help="folder for bench-gpu.md, gpu-check.json, curves.csv and log.txt")
    g.add_argument("--doc", default="docs/bench-gpu.md", help="markdown report to write (also copied into --out)")
    g.add_argument("--device", default="auto", help="auto (a GPU when there is one), cuda, cuda:N or cpu")
    g.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: cores - 4, 2 to 10)")
    g.add_argument("--budget-s", type=float, default=480, help="wall-clock budget of the whole check, seconds")
    g.add_argument("--train-s", type=float, default=150, help="seconds of training in the quality step, shared by its runs")
    g.add_argument("--quality-run", action="append", metavar="NAME=OPTIONS",
                   help="a quality run: a name and txfm train options (repeatable; default: the GPU recipe)")
    g.add_argument("--label", default=None, metavar="DATASET:COLUMN",
                   help="corpus dataset and obs column for the CLS kNN accuracy (default: the sorted PBMC reference)")
    g.add_argument("--work", default=None, help="folder for the quality runs (default: a temporary one, removed)")
    g.add_argument("--skip-tests", action="store_true", help="do not run pytest -m gpu")
    g.add_argument("--toy", action="store_true", help="toy sizes (the CPU test of this command)")
    g.add_argument("--overwrite", action="store_true", help="replace an earlier gpu-check result in --out")
    g.set_defaults(func=_gpu_check)

    gp = sub.add_parser("gpu-pack", help="pack the corpus, references and wheels that gpu-check needs on a GPU machine",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    gp.add_argument("--corpus", default="corpora/shared", help="corpus folder to pack")
    gp.add_argument("--references", default="cache/references", help="reference folder (manifest, pairs, genes)")
    gp.add_argument("--out", default=".gpu", help="pack folder to write (git-ignored; carry it to the GPU machine)")
    gp.add_argument("--no-wheels", action="store_true", help="do not download the wheels (igraph, leidenalg)")
    gp.add_argument("--overwrite", action="store_true", help="replace an existing pack")
    gp.set_defaults(func=_gpu_pack)

    a = sub.add_parser("ablate", forward=True, add_help=False,
                       help="ablation grid: train variants, score recall and perturbations (ablate --help)")
    a.set_defaults(func=_ablate)
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the subcommand; errors propagate to `common.errors.run_main`."""
    ns = build_parser().parse_args(argv)
    return ns.func(ns)


if __name__ == "__main__":
    from common.errors import run_main
    sys.exit(run_main(main))
