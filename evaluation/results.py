"""`python -m evaluation results`: recall of TxFM checkpoints along a run vs the PCA baseline.

Given a run folder (step checkpoints + last.pt) and a PCA baseline file on the same corpus,
computes relationship recall over the rank sweep for every matrix, restricted to the genes
all of them share (so the pair sets are identical), and writes docs/results.md with a table
(per source, codebook and decoder at their best ranks vs PCA, chance level), a
recall-vs-rank PNG and a learning-curve PNG (recall vs training samples seen).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from common.atomic import atomic_path, atomic_write_text
from common.errors import UserError

SOURCES = ["CORUM", "huMAP", "Reactome", "SIGNOR", "StringDB", "combined", "mean_of_sources"]


def _sweep_recall(mat: np.ndarray, pairs: dict, ranks: list[int] | None, n_nulls: int, null_size: int,
                  seed: int, standardise: bool = True) -> pd.DataFrame:
    from precompute.bundle.recall import recall_sweep
    from precompute.subspaces import pca_scores, rank_sweep
    sub, _ = pca_scores(mat, standardise=standardise)
    rs = rank_sweep(sub.shape[1]) if ranks is None else sorted({min(r, sub.shape[1]) for r in ranks})
    return recall_sweep(sub, pairs, rs, n_nulls=n_nulls, null_size=null_size, seed=seed)


class RunCheckpoints:
    """The gene matrices of a run's checkpoints, loaded one at a time; a checkpoint that cannot be read
    (truncated, damaged) is skipped with one warning on stderr, and the run is refused only when none
    can be read -- `evaluation results` and `evaluation curves` walk a whole run, so "pass another
    checkpoint" is not advice they can follow."""

    def __init__(self, run_dir: Path, checkpoints: list[Path]):
        self.run_dir, self.checkpoints, self.skipped = Path(run_dir), list(checkpoints), {}

    def load(self, path: Path):
        """`txfm.inference.gene_matrices(path)`, or None (warned once) when the file cannot be read."""
        import sys

        from txfm.checkpoint import OTHER_CHECKPOINT, CheckpointError
        from txfm.inference import gene_matrices
        if path in self.skipped:
            return None
        try:
            return gene_matrices(path)
        except CheckpointError as e:
            self.skipped[path] = str(e).removesuffix(OTHER_CHECKPOINT).rstrip("; ")
            print(f"warning: {self.skipped[path]}; skipped, the run is evaluated without it", file=sys.stderr)
            return None

    def last(self):
        """(path, gene_matrices) of the newest readable checkpoint; the checkpoints after it are dropped."""
        for i in range(len(self.checkpoints) - 1, -1, -1):
            got = self.load(self.checkpoints[i])
            if got is not None:
                self.checkpoints = self.checkpoints[:i + 1]
                return self.checkpoints[i], got
        raise UserError(f"{self.run_dir}: none of its {len(self.checkpoints)} checkpoint(s) can be read (e.g. "
                        f"{next(iter(self.skipped.values()))}); train the run again")


def run_checkpoints(run_dir: Path) -> list[Path]:
    """Step checkpoints of a run in training order, then last.pt."""
    from txfm.checkpoint import step_checkpoints
    cks = list(step_checkpoints(run_dir))
    last = Path(run_dir) / "last.pt"
    if last.is_file() and last not in cks:
        cks.append(last)
    if not cks:
        raise FileNotFoundError(f"{run_dir}: no checkpoints; train first with `python -m txfm train --out {run_dir}`")
    return cks


def evaluate(run_dir: Path, pca_path: Path, references_dir: Path, ranks: list[int] | None = None,
             n_nulls: int = 3, null_size: int = 5000, seed: int = 0,
             whole_vocabulary: bool = False, final_only: bool = False) -> tuple[pd.DataFrame, dict]:
    """Recall table with columns checkpoint, samples_seen, matrix, rank, source, recall_mean, ...

    Every matrix is scored on the same genes: the honest population (genes measured well in >= 2
    datasets, ``precompute.bundle.recall.recall_population``, from the run's last checkpoint) that the
    PCA baseline also has, so null pairs and known pairs come from one population.
    ``whole_vocabulary`` scores all genes shared by the run and the baseline instead (inflated by
    rarely measured genes; kept only to show the difference, and labelled so).
    ``final_only`` skips the intermediate checkpoints (no learning curve).
    """
    from txfm.inference import gene_matrices
    from precompute.params import BundleParams
    from precompute.bundle.recall import POPULATION_ALL, recall_population
    from precompute.references import load_pairs
    from precompute.bundle.recall import pairs_to_indices

    run = RunCheckpoints(run_dir, run_checkpoints(run_dir))
    pca_m, pca_genes, pca_meta = gene_matrices(pca_path)
    _, (last_m, last_genes, _) = run.last()
    cks = run.checkpoints
    label = POPULATION_ALL
    if not whole_vocabulary:
        pop, label = recall_population(last_genes)
        last_genes = last_genes.iloc[pop]
    shared = sorted(set(pca_genes.symbol) & set(last_genes.symbol))
    if len(shared) < 100:
        raise ValueError(f"{pca_path} and {cks[-1]} share only {len(shared)} genes; are they from the same corpus?")
    known = load_pairs(references_dir)
    if final_only:
        cks = cks[-1:]
    pairs = pairs_to_indices(known, shared)

    def restrict(mats, genes):
        pos = pd.Series(np.arange(len(genes)), index=genes.symbol.to_numpy())
        rows = pos.loc[shared].to_numpy()
        return {k: np.asarray(v)[rows] for k, v in mats.items()}

    frames = []
    jobs = [("pca", pca_path)] + [("txfm", c) for c in cks]
    for kind, path in tqdm(jobs, desc="checkpoints"):
        got = (pca_m, pca_genes, pca_meta) if kind == "pca" else run.load(path)
        if got is None:
            continue
        mats, genes, meta = got
        for name, m in restrict(mats, genes).items():
            final = kind == "pca" or path == cks[-1]
            df = _sweep_recall(m, pairs, ranks if final else [32 if name == "codebook" else 256],
                               n_nulls, null_size, seed, standardise=BundleParams().standardises(name))
            frames.append(df.assign(checkpoint=str(path), samples_seen=int(meta.get("samples_seen", 0)),
                                    matrix=name, final=final))
    info = {"genes": len(shared), "population": label, "n_pairs": {k: int(len(v)) for k, v in pairs.items()},
            "pca_samples": int(pca_meta.get("samples_seen", 0)),
            "checkpoints": [str(c) for c in cks if c not in run.skipped],
            "skipped": {str(k): v for k, v in run.skipped.items()}}
    return pd.concat(frames, ignore_index=True), info


def best_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per matrix (final checkpoint/PCA), recall per source at its best rank (``precompute.bundle.recall.best_rank``)."""
    from precompute.bundle.recall import best_rank
    fin = table[table.final]
    rows = []
    for name, g in fin.groupby("matrix"):
        best = best_rank(g)
        if best is None:
            continue
        r = int(best["rank"])
        at = g[g["rank"] == r].set_index("source")
        rows.append({"matrix": name, "rank": r, **{s: at.recall_mean.get(s, np.nan) for s in SOURCES},
                     "chance": float(at.chance.iloc[0])})
    return pd.DataFrame(rows)


def plot_curves(table: pd.DataFrame, rank_png: Path, learn_png: Path) -> None:
    """Recall-vs-rank (final matrices) and recall-vs-samples-seen (codebook@32, decoder@256) PNGs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comb = table[table.source == "combined"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, g in comb[comb.final].groupby("matrix"):
        g = g.sort_values("rank")
        ax.errorbar(g["rank"], g.recall_mean, yerr=g.recall_std, marker="o", label=name, capsize=2)
    ax.axhline(float(comb.chance.mean()), color="grey", ls="--", label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("rank (PCA components of the standardised gene matrix)")
    ax.set_ylabel("combined recall")
    ax.legend()
    fig.tight_layout()
    with atomic_path(rank_png, suffix=".png") as tmp:     # the doc's folder is created; no half-written PNG
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    tx = comb[comb.matrix != "pca"]
    for name, g in tx.groupby("matrix"):
        want = 32 if name == "codebook" else 256
        g = g[g["rank"] == g["rank"].clip(upper=want).max()] if not g.final.all() else g
        g = g.groupby("samples_seen").recall_mean.max().reset_index()
        ax.plot(g.samples_seen, g.recall_mean, marker="o", label=name)
    p = comb[(comb.matrix == "pca")]
    if len(p):
        ax.axhline(float(p.recall_mean.max()), color="black", ls=":", label="PCA (best rank)")
    ax.axhline(float(comb.chance.mean()), color="grey", ls="--", label="chance")
    ax.set_xlabel("training samples seen")
    ax.set_ylabel("combined recall")
    ax.legend()
    fig.tight_layout()
    with atomic_path(learn_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def markdown_best(table: pd.DataFrame) -> list[str]:
    """The best-rank table as markdown lines."""
    fmt = best_table(table)
    for c in SOURCES + ["chance"]:
        fmt[c] = fmt[c].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    md = ["| matrix | rank | " + " | ".join(SOURCES) + " | chance |",
          "|---|---:|" + "---:|" * (len(SOURCES) + 1)]
    for _, r in fmt.iterrows():
        md.append(f"| {r.matrix} | {r['rank']} | " + " | ".join(r[s] for s in SOURCES) + f" | {r.chance} |")
    return md


def write_results_doc(doc: Path, table: pd.DataFrame, info: dict, command: str,
                      pair_table: pd.DataFrame | None = None, pair_info: dict | None = None) -> None:
    """docs/results.md: the best-rank table(s), the PNGs and how they were made (atomic write).

    ``pair_table``: the same evaluation over the whole shared vocabulary (see ``evaluate``)."""
    doc = Path(doc)
    rank_png = doc.with_name("results-recall-vs-rank.png")
    learn_png = doc.with_name("results-learning-curve.png")
    plot_curves(table, rank_png, learn_png)
    md = markdown_best(table)
    if pair_table is not None:
        md += ["", f"For comparison only, over the {pair_info['genes']:,} genes of the whole shared vocabulary "
               "(inflated: rarely measured genes keep noise vectors that fill the null; final checkpoint only):",
               "", *markdown_best(pair_table)]
    text = "\n".join([
        "# Results: TxFM vs PCA on the real data", "",
        f"Made by `{command}`. Recall of known gene pairs (mean of 3 nulls of 5,000 x 5,000 random",
        f"gene pairs; 5th/95th percentile), on {info['genes']:,} genes: {info['population']}, shared by TxFM",
        "and the PCA baseline (known and null pairs both drawn from them). Best rank = rank of the sweep with the highest mean of the per-source recalls",
        "(mean_of_sources); combined pools all pairs.", "",
        "Pairs per source: " + ", ".join(f"{k} {v:,}" for k, v in info["n_pairs"].items()) + ".", "",
        *md, "", f"![recall vs rank]({rank_png.name})", "", f"![learning curve]({learn_png.name})", "",
        "Checkpoints: " + ", ".join(Path(c).name for c in info["checkpoints"]) + "."
        + ("" if not info.get("skipped") else
           " Skipped as unreadable: " + ", ".join(Path(c).name for c in info["skipped"]) + ".")])
    atomic_write_text(doc, text + "\n")
