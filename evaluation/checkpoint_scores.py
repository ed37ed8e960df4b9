"""Scores of one trained checkpoint, as the ablation table reports them:

* relationship recall of the codebook and of the decoder gene weights, each at its best rank of
  the sweep 8, 16, 32, ... (precompute's ``pca_scores`` + ``recall_sweep``, "combined" source),
  over the genes detected in at least ``min_samples`` corpus samples;
* the perturbation score: metrics of ``evaluation.perturbation`` on the screen's cells embedded
  by the checkpoint (consistency, cross-batch kNN, linear probe, recall of perturbation means).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .inputs import LabelledCounts
from .perturbation import PerturbationParams, evaluate_embedding


@dataclass(frozen=True)
class RecallSettings:
    min_samples: int = 10  # genes detected in fewer corpus samples are left out of recall
    n_nulls: int = 3  # sampled nulls recall is averaged over
    null_size: int = 5000  # genes per null sample
    seed: int = 0


def gene_subset(detected: np.ndarray, min_samples: int) -> np.ndarray:
    """Vocabulary indices of genes detected in >= min_samples samples."""
    return np.flatnonzero(np.asarray(detected) >= min_samples)


def best_rank_recall(matrix: np.ndarray, pairs: dict[str, np.ndarray], settings: RecallSettings) -> dict:
    """Recall sweep of a (G, D) gene matrix at its best rank (``precompute.bundle.recall.best_rank``: the
    mean of the per-source recalls, as bundles and docs/results.md choose it).

    Returns {"recall": mean-of-sources recall at that rank, "rank": the rank, "chance": chance at that
    rank, "n_pairs": known pairs scored (all sources)}.
    """
    from precompute.bundle.recall import best_rank, recall_sweep
    from precompute.subspaces import pca_scores, rank_sweep

    sub, _ = pca_scores(matrix)
    sources = {k: v for k, v in pairs.items() if k != "combined"}
    table = recall_sweep(sub, sources, rank_sweep(sub.shape[1]), n_nulls=settings.n_nulls,
                         null_size=settings.null_size, seed=settings.seed)
    best = best_rank(table)
    if best is None:
        return {"recall": float("nan"), "rank": 0, "chance": float("nan"), "n_pairs": 0}
    return {"recall": float(best["recall_mean"]), "rank": int(best["rank"]), "chance": float(best["chance"]),
            "n_pairs": int(best["n_pairs"])}


def recall_scores(checkpoint: str | os.PathLike, pairs: pd.DataFrame, genes_kept: np.ndarray,
                  settings: RecallSettings) -> dict[str, float]:
    """{"recall_codebook", "rank_codebook", "recall_decoder", "rank_decoder", "recall_chance", "recall_pairs"}."""
    from precompute.bundle.recall import pairs_to_indices
    from txfm.inference import gene_matrices

    mats, genes, _ = gene_matrices(checkpoint)
    symbols = genes["symbol"].to_numpy()[genes_kept]
    idx = pairs_to_indices(pairs, list(symbols))
    if len(idx.get("combined", [])) == 0:
        raise ValueError(f"{checkpoint}: no reference pair has both genes among the {len(symbols)} genes scored; "
                         "check --references and --recall-min-samples")
    out: dict[str, float] = {}
    for name in ("codebook", "decoder"):
        r = best_rank_recall(np.asarray(mats[name])[genes_kept], idx, settings)
        out[f"recall_{name}"], out[f"rank_{name}"] = r["recall"], r["rank"]
        out["recall_chance"], out["recall_pairs"] = r["chance"], r["n_pairs"]
    return out


def perturbation_scores(checkpoint: str | os.PathLike, screen: LabelledCounts, labels: np.ndarray,
                        batch: np.ndarray, params: PerturbationParams, pairs: pd.DataFrame | None = None,
                        batch_size: int | None = None) -> dict[str, float]:
    """Perturbation metrics of the checkpoint's CLS embeddings of the screen's cells
    (with ``pairs``, also the recall of perturbation mean embeddings)."""
    from .embeddings import txfm_embedding

    z, _ = txfm_embedding(checkpoint, screen, batch_size=batch_size, seed=params.seed, progress=False)
    row, _, _ = evaluate_embedding(z, labels, batch, params, pairs)
    keep = ("consistency", "consistency_p10", "loo_cosine", "knn_top1", "knn_top5", "probe_balanced_accuracy",
            "mean_recall")
    return {f"pert_{k}": row[k] for k in keep if k in row}
