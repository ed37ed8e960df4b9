"""Known-relationship recall (Celik et al. 2024 / EFAAR; ../shared/docs/txfm-method.md).

A known pair (a, b) is recalled when cos(v_a, v_b) is below the `lower` or above the `upper`
quantile of a null of cosine similarities between random genes. With lower=0.05 and
upper=0.95 a random pair is recalled with probability about 0.10 (chance).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .knn import normalise_rows


def null_thresholds(xn: np.ndarray, rng: np.random.Generator, null_size: int = 5000,
                    lower: float = 0.05, upper: float = 0.95) -> tuple[float, float]:
    """Quantiles of a sampled null: cosines between two random gene samples (self-pairs removed).

    Args:
        xn: (G, r) unit-norm rows.
        null_size: genes per sample (capped at G); the null has about null_size^2 values.
    Returns:
        (low, high) thresholds.
    """
    g = xn.shape[0]
    n = min(null_size, g)
    ia = rng.choice(g, n, replace=False)
    ib = rng.choice(g, n, replace=False)
    sims = (torch.from_numpy(xn[ia]) @ torch.from_numpy(xn[ib]).T).numpy()   # (n, n)
    pos_in_b = np.full(g, -1, dtype=np.int64)
    pos_in_b[ib] = np.arange(n)
    rows = np.nonzero(pos_in_b[ia] >= 0)[0]
    keep = np.ones(sims.shape, dtype=bool)
    keep[rows, pos_in_b[ia[rows]]] = False
    vals = sims[keep] if rows.size else sims.ravel()
    lo, hi = np.quantile(vals, [lower, upper])
    return float(lo), float(hi)


def full_null_thresholds(xn: np.ndarray, lower: float = 0.05, upper: float = 0.95,
                         block: int = 1024, bins: int = 1 << 16) -> tuple[float, float]:
    """Exact quantiles of ALL pairs i < j without holding them: histogram pass, then refine.

    Matches np.quantile(all_pair_sims, [lower, upper], method="linear") up to float32 rounding.
    """
    g = xn.shape[0]
    x = torch.from_numpy(xn)
    n_total = g * (g - 1) // 2
    edges = torch.linspace(-1.0001, 1.0001, bins + 1)

    def blocks():
        for s in range(0, g, block):
            e = min(s + block, g)
            sim = x[s:e] @ x[s:].T                                   # (b, G - s)
            r = torch.arange(e - s)
            mask = torch.arange(g - s)[None, :] > r[:, None]          # j > i only
            yield sim[mask]

    counts = torch.zeros(bins, dtype=torch.int64)
    for v in blocks():
        counts += torch.bincount(torch.bucketize(v, edges[1:-1]), minlength=bins)
    cum = torch.cumsum(counts, 0)
    out = []
    wanted = []
    for q in (lower, upper):
        h = q * (n_total - 1)
        k_lo, k_hi = int(np.floor(h)), int(np.ceil(h))
        wanted.append((h, k_lo, k_hi))
    # collect the values of the bins holding the needed order statistics, then select exactly
    need_bins = set()
    for _, k_lo, k_hi in wanted:
        for kk in (k_lo, k_hi):
            need_bins.add(int(torch.searchsorted(cum, torch.tensor(kk + 1))))
    need = sorted(need_bins)
    collected = {b: [] for b in need}
    for v in blocks():
        bidx = torch.bucketize(v, edges[1:-1])
        for b in need:
            collected[b].append(v[bidx == b])
    sorted_vals = {b: torch.sort(torch.cat(collected[b]))[0].numpy() for b in need}

    def order_stat(kk: int) -> float:
        b = int(torch.searchsorted(cum, torch.tensor(kk + 1)))
        before = int(cum[b - 1]) if b > 0 else 0
        return float(sorted_vals[b][kk - before])

    for h, k_lo, k_hi in wanted:
        a, b = order_stat(k_lo), order_stat(k_hi)
        out.append(a + (h - k_lo) * (b - a))
    return out[0], out[1]


def pair_similarities(xn: np.ndarray, pairs: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Cosine of each pair: (P, 2) int indices into unit-norm rows `xn` -> (P,) float32."""
    out = np.empty(len(pairs), dtype=np.float32)
    for s in range(0, len(pairs), chunk):
        p = pairs[s:s + chunk]
        out[s:s + chunk] = np.einsum("ij,ij->i", xn[p[:, 0]], xn[p[:, 1]])
    return out


def random_pairs(g: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) uniformly random pairs of distinct genes."""
    a = rng.integers(0, g, n)
    b = (a + rng.integers(1, g, n)) % g
    return np.stack([a, b], axis=1)


def relationship_recall(x: np.ndarray, pairs: dict[str, np.ndarray], n_nulls: int = 3,
                        null_size: int = 5000, lower: float = 0.05, upper: float = 0.95,
                        full_null: bool = False, n_chance_pairs: int = 100_000,
                        seed: int = 0) -> pd.DataFrame:
    """Recall of known pairs for one set of gene vectors.

    Args:
        x: (G, r) gene vectors (e.g. the first r PCA scores).
        pairs: {source: (P, 2) row-index pairs}, e.g. from references.pairs_to_indices.
        n_nulls: independent sampled nulls; the recall is averaged over them (std reported).
        null_size: genes per null sample (null_size x null_size similarities).
        full_null: use every pair i < j as one exact null instead (n_nulls ignored).
        n_chance_pairs: uniformly random gene pairs scored the same way, giving the
            empirical chance level (about upper - lower complement, i.e. 0.10).
    Returns:
        DataFrame(source, recall_mean, recall_std, n_pairs, chance); recall is NaN for a
        source without pairs in the vocabulary.
    """
    rng = np.random.default_rng(seed)
    xn = normalise_rows(x)
    g = xn.shape[0]
    if full_null:
        thresholds = [full_null_thresholds(xn, lower, upper)]
    else:
        thresholds = [null_thresholds(xn, rng, null_size, lower, upper) for _ in range(n_nulls)]
    chance_sims = pair_similarities(xn, random_pairs(g, n_chance_pairs, rng))
    chance = float(np.mean([np.mean((chance_sims < lo) | (chance_sims > hi)) for lo, hi in thresholds]))
    # score each distinct pair once, then look every source up in the union
    keys = {s: np.minimum(p[:, 0], p[:, 1]).astype(np.int64) * g + np.maximum(p[:, 0], p[:, 1])
            for s, p in pairs.items() if len(p)}
    union = np.unique(np.concatenate(list(keys.values()))) if keys else np.zeros(0, np.int64)
    sims = pair_similarities(xn, np.stack([union // g, union % g], axis=1))
    hits = np.stack([(sims < lo) | (sims > hi) for lo, hi in thresholds])    # (nulls, U)
    rows = []
    for source, p in pairs.items():
        if len(p) == 0:
            rows.append((source, np.nan, np.nan, 0, chance))
            continue
        where = np.searchsorted(union, keys[source])
        r = hits[:, where].mean(axis=1)
        rows.append((source, float(r.mean()), float(r.std(ddof=1)) if r.size > 1 else 0.0,
                     int(len(p)), chance))
    return pd.DataFrame(rows, columns=["source", "recall_mean", "recall_std", "n_pairs", "chance"])
