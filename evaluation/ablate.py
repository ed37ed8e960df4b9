"""Ablation runner: train every variant of a grid with the same budget and seeds, score each
(codebook and decoder recall at their best ranks, the perturbation score), and write one table
(mean and spread over seeds) plus a PNG.

    python -m evaluation ablate --corpus corpora/shared --grid loss=poisson,mse activation=rect_tanh,relu

Runs live in OUT/runs/<variant>-s<seed>/; re-running the command reuses finished identical runs,
so an interrupted grid continues where it stopped.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .checkpoint_scores import RecallSettings, gene_subset, perturbation_scores, recall_scores
from .grid import Budget, configs, find_screen, parse_grid, train_variant, variant_name, variants
from .perturbation import PerturbationParams, params_dict
from common.atomic import atomic_write_text
from common.errors import UserError
from common.outputs import check_output_target

from .report import is_ablation_folder, markdown_table, write_csv, write_json

SCORES = ["final_loss", "val_loss", "recall_codebook", "rank_codebook", "recall_decoder", "rank_decoder",
          "pert_consistency", "pert_consistency_p10", "pert_loo_cosine", "pert_knn_top1", "pert_knn_top5",
          "pert_probe_balanced_accuracy", "pert_mean_recall"]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in name.replace(",", "__"))


def run_ablation(corpus: str, grid: dict[str, list], out: str | Path, budget: Budget = Budget(),
                 design: str = "oat", references: str | None = "cache/references",
                 perturbation_dataset: str | None = "auto", perturbation_cells: int = 6000,
                 pert_params: PerturbationParams = PerturbationParams(n_null=5000),
                 recall: RecallSettings = RecallSettings(), progress: bool = True,
                 only_finished: bool = False) -> pd.DataFrame:
    """Train and score every variant x seed (``only_finished``: tabulate finished runs only); write OUT/ablation_runs.csv (one row per run),
    OUT/ablation.csv and .md (mean and std over seeds per variant), OUT/ablation.png and run.json.
    Returns the per-variant summary."""
    from txfm.corpus import Corpus
    from txfm.dataset import detection_counts

    t0 = time.perf_counter()
    out = Path(out)
    # An ablation folder is continued (finished identical runs are reused); any other folder is refused.
    check_output_target(out, "ablation folder", is_ablation_folder, replace=True, protect=[corpus])
    c = Corpus(corpus)
    vs = variants(grid, design)
    ref = vs[0]
    pairs = None
    if references:
        from data.references.tables import load_pairs
        pairs = load_pairs(Path(references))
    kept = gene_subset(detection_counts(c), recall.min_samples) if pairs is not None else None
    screen = None
    if perturbation_dataset and perturbation_dataset != "none":
        from .inputs import read_corpus_dataset
        name = find_screen(c, pert_params.control) if perturbation_dataset == "auto" else perturbation_dataset
        screen = read_corpus_dataset(corpus, name)
        if perturbation_cells and screen.counts.shape[0] > perturbation_cells:
            pick = np.sort(np.random.default_rng(0).choice(screen.counts.shape[0], perturbation_cells, replace=False))
            screen = screen.subset(pick)
    rows = []
    jobs = [(v, s) for v in vs for s in budget.seeds]
    for v, seed in tqdm(jobs, desc="ablation", unit="run", disable=not progress):
        name = variant_name(v, ref)
        tc, mc = configs(corpus, out / "runs" / f"{_slug(name)}-s{seed}", v, seed, budget, c.n_genes)
        res = train_variant(tc, mc, progress=progress, only_finished=only_finished)
        row = {"variant": name, **{a: str(x) for a, x in v.items()}, "seed": seed, **res}
        if res["checkpoint"]:
            key = {"checkpoint_bytes": Path(res["checkpoint"]).stat().st_size,
                   "checkpoint_mtime": Path(res["checkpoint"]).stat().st_mtime, "references": references,
                   "screen": screen.name if screen is not None else None, "cells": perturbation_cells,
                   "recall": asdict(replace(recall, seed=seed)), "pert": params_dict(replace(pert_params, seed=seed))}
            row.update(_scores(Path(tc.out) / "scores.json", key, lambda: _score(
                res["checkpoint"], pairs, kept, screen, replace(recall, seed=seed), replace(pert_params, seed=seed))))
        rows.append(row)
        write_csv(pd.DataFrame(rows), out / "ablation_runs.csv")          # progress survives an interruption
    runs = pd.DataFrame(rows)
    summary = summarise(runs, list(grid), [variant_name(v, ref) for v in vs])
    write_csv(summary, out / "ablation.csv")
    atomic_write_text(out / "ablation.md", markdown_table(display_table(summary)))
    plot(summary, out / "ablation.png")
    write_json({"corpus": corpus, "grid": {a: [str(x) for x in v] for a, v in grid.items()}, "design": design,
                "budget": asdict(budget), "references": references, "perturbation_dataset": perturbation_dataset,
                "perturbation_cells": perturbation_cells, "perturbation_params": params_dict(pert_params),
                "recall": asdict(recall), "recall_genes": int(len(kept)) if kept is not None else 0,
                "seconds": round(time.perf_counter() - t0, 1)}, out / "run.json")
    return summary


def _score(checkpoint, pairs, kept, screen, recall: RecallSettings, pert: PerturbationParams) -> dict:
    t = time.perf_counter()
    out = {}
    if pairs is not None:
        out.update(recall_scores(checkpoint, pairs, kept, recall))
    if screen is not None:
        out.update(perturbation_scores(checkpoint, screen, screen.column("perturbation"), screen.column("batch"),
                                       pert, pairs))
    out["score_seconds"] = round(time.perf_counter() - t, 1)
    return out


def _scores(path: Path, key: dict, compute) -> dict:
    """Scores cached beside the run (scores.json), recomputed when the checkpoint or settings changed."""
    import json

    key = json.loads(json.dumps(key, default=str))
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached["scores"]
    scores = compute()
    write_json({"key": key, "scores": scores}, path)
    return scores


def summarise(runs: pd.DataFrame, axes: list[str], order: list[str]) -> pd.DataFrame:
    """Per variant (in ``order``): axis values, runs ok/total, and mean and std (ddof=1; NaN for
    one seed) of every score over its seeds that trained without diverging."""
    out = []
    for name in order:
        g = runs[runs["variant"] == name]
        ok = g[g["status"] == "ok"]
        row = {"variant": name, **{a: g.iloc[0][a] for a in axes}, "runs_ok": int(len(ok)), "runs": int(len(g))}
        for s in SCORES:
            vals = pd.to_numeric(ok[s], errors="coerce").dropna() if s in ok.columns else pd.Series(dtype=float)
            row[f"{s}_mean"] = float(vals.mean()) if len(vals) else float("nan")
            row[f"{s}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
        row["train_seconds_mean"] = float(pd.to_numeric(g["train_seconds"], errors="coerce").mean())
        out.append(row)
    return pd.DataFrame(out)


def _pm(m: float, s: float, digits: int = 3) -> str:
    if np.isnan(m):
        return "—"
    return f"{m:.{digits}f}" if np.isnan(s) else f"{m:.{digits}f} ± {s:.{digits}f}"


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as strings 'mean ± std' for docs (ranks as mean rank)."""
    show = {"final_loss": "train loss", "recall_codebook": "codebook recall", "rank_codebook": "cb rank",
            "recall_decoder": "decoder recall", "rank_decoder": "dec rank", "pert_consistency": "consistency (p<0.01)",
            "pert_loo_cosine": "LOO cosine", "pert_mean_recall": "pert-mean recall", "pert_knn_top5": "kNN top-5",
            "pert_probe_balanced_accuracy": "probe bal. acc."}
    t = pd.DataFrame({"variant": summary["variant"], "runs ok": [f"{a}/{b}" for a, b in zip(summary.runs_ok, summary.runs)]})
    for k, label in show.items():
        digits = 0 if k.startswith("rank") else (2 if k == "final_loss" else 3)
        t[label] = [_pm(m, s, digits) for m, s in zip(summary[f"{k}_mean"], summary[f"{k}_std"])]
    t["train min"] = [f"{x / 60:.1f}" for x in summary["train_seconds_mean"]]
    return t


def plot(summary: pd.DataFrame, path: Path) -> Path:
    """Bar panels (codebook recall, decoder recall, perturbation consistency, probe) per variant,
    error bars = std over seeds; diverged variants are marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("recall_codebook", "codebook recall (best rank)"), ("recall_decoder", "decoder recall (best rank)"),
              ("pert_loo_cosine", "perturbation LOO cosine"), ("pert_mean_recall", "recall of perturbation means"),
              ("pert_probe_balanced_accuracy", "linear probe bal. acc.")]
    names = summary["variant"].tolist()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 0.4 * len(names) + 2), sharey=True)
    y = np.arange(len(names))
    for ax, (k, title) in zip(axes, panels):
        m = summary[f"{k}_mean"].to_numpy(float)
        s = np.nan_to_num(summary[f"{k}_std"].to_numpy(float))
        colors = ["tab:blue" if n == "reference" else "tab:gray" for n in names]
        ax.barh(y, np.nan_to_num(m), xerr=s, color=colors)
        for i in np.flatnonzero(np.isnan(m)):
            ax.text(0, i, " diverged / not scored", va="center", fontsize=8, color="tab:red")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def build_parser(prog: str = "python -m evaluation ablate") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--corpus", required=True, help="training corpus directory")
    p.add_argument("--grid", nargs="+", required=True, metavar="AXIS=V1,V2",
                   help="axes to vary (TrainConfig/ModelConfig fields), first value = reference, e.g. "
                        "loss=poisson,mse,smoothl1,negbin activation=rect_tanh,relu,clamped_relu "
                        "preprocessing=libnorm_log1p,log1p reveal=256,64")
    p.add_argument("--design", choices=["oat", "full"], default="oat",
                   help="oat: one axis at a time from the reference; full: Cartesian product")
    p.add_argument("--out", default="runs/ablation", help="folder for runs and the table")
    b = Budget()
    p.add_argument("--preset", default=b.preset, help="model size preset")
    p.add_argument("--dim", type=int, default=None, help="override the preset's width")
    p.add_argument("--depth", type=int, default=None, help="override the preset's depth")
    p.add_argument("--heads", type=int, default=None, help="override the preset's heads")
    p.add_argument("--max-steps", type=int, default=b.max_steps, help="optimiser steps per run (the budget)")
    p.add_argument("--batch-size", type=int, default=b.batch_size, help="samples per step")
    p.add_argument("--reveal", type=int, default=b.reveal, help="K for variants whose grid does not set reveal")
    p.add_argument("--lr", type=float, default=b.lr, help="peak learning rate")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; one run per seed and variant")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers per run")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--references", default="cache/references",
                   help="reference folder (python -m data fetch-references); 'none' skips recall")
    p.add_argument("--recall-min-samples", type=int, default=10,
                   help="recall over genes detected in at least this many corpus samples")
    p.add_argument("--null-size", type=int, default=5000, help="genes per sampled recall null")
    p.add_argument("--n-nulls", type=int, default=3, help="sampled recall nulls averaged")
    p.add_argument("--perturbation-dataset", default="auto",
                   help="corpus dataset of the CRISPR screen ('auto': the one holding --control; 'none' skips)")
    p.add_argument("--perturbation-cells", type=int, default=6000, help="random cells of the screen scored (0 = all)")
    p.add_argument("--control", default="non-targeting", help="label of the control cells")
    p.add_argument("--n-null", type=int, default=5000, help="random cells in each consistency null")
    p.add_argument("--only-finished", action="store_true",
                   help="train nothing: tabulate the runs already finished in --out (others show as 'not run')")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None, prog: str = "python -m evaluation ablate") -> int:
    ns = build_parser(prog).parse_args(argv)
    try:
        seeds = tuple(int(s) for s in ns.seeds.split(",") if s.strip())
    except ValueError:
        raise UserError(f"--seeds {ns.seeds!r}: write integers separated by commas, e.g. 0,1,2") from None
    summary = run_ablation(
        ns.corpus, parse_grid(ns.grid), ns.out,
        Budget(ns.preset, ns.dim, ns.depth, ns.heads, ns.max_steps, ns.batch_size, ns.reveal, ns.lr, seeds,
               ns.workers, ns.device),
        ns.design, None if ns.references == "none" else ns.references, ns.perturbation_dataset,
        ns.perturbation_cells, PerturbationParams(control=ns.control, n_null=ns.n_null),
        RecallSettings(ns.recall_min_samples, ns.n_nulls, ns.null_size), progress=not ns.quiet,
        only_finished=ns.only_finished)
    print(markdown_table(display_table(summary)))
    print(f"table -> {Path(ns.out) / 'ablation.md'}, plot -> {Path(ns.out) / 'ablation.png'}")
    return 0
