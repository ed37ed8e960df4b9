"""Known-relationship recall (Celik et al. 2024 / EFAAR; ../shared/docs/txfm-method.md).

A known pair (a, b) is recalled when cos(v_a, v_b) is below the `lower` or above the `upper`
quantile of a null of cosine similarities between random genes. With lower=0.05 and
upper=0.95 a random pair is recalled with probability about 0.10 (chance).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

MEAN_OF_SOURCES = "mean_of_sources"   # unweighted mean of the per-source recalls (not the pooled 'combined')
BEST_BY = MEAN_OF_SOURCES             # the one "best rank" rule of every room (bundles, results, curves, ablations)

# The honest recall population: genes measured well (detected in >= max(10, 1%) of a dataset's
# samples, txfm.dataset.gene_support) in at least MIN_SUPPORT datasets. Rarely measured genes keep
# near-initial vectors; left in, they fill the null with noise and make any pair of well-measured
# genes look related (docs/training-recipe.md). Known pairs AND null pairs are drawn from it.
# (A corpus of one dataset: the genes measured well in it.)
MIN_SUPPORT = 2
POPULATION_SUPPORTED = f"genes measured well in >= {MIN_SUPPORT} datasets"
POPULATION_ALL = "whole vocabulary"


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, float32 (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return x / n


def recall_population(genes: pd.DataFrame, min_support: int = MIN_SUPPORT) -> tuple[np.ndarray, str]:
    """(row indices of the recall population, its label) for a genes table.

    Uses the table's ``support`` column (datasets measuring each gene well) when present; a table
    without it (an old checkpoint, an imported embedding) is scored over the whole vocabulary and
    labelled so.
    """
    if "support" in genes.columns:
        support = genes["support"].to_numpy()
        need = max(1, min(min_support, int(support.max(initial=0))))  # a one-dataset corpus: measured well in it
        idx = np.flatnonzero(support >= need)
        if idx.size >= 2:
            return idx, POPULATION_SUPPORTED if need == min_support else "genes measured well in the corpus"
    return np.arange(len(genes)), POPULATION_ALL


def pairs_to_indices(pairs: pd.DataFrame, symbols: list[str] | np.ndarray) -> dict[str, np.ndarray]:
    """Map symbol pairs to row indices of the vocabulary, per source and 'combined'.

    Returns {source: (P, 2) int64} with pairs whose two genes are both in `symbols`,
    self-pairs dropped, each unordered pair once (a < b). 'combined' is the union over sources.
    """
    pos = pd.Series(np.arange(len(symbols)), index=pd.Index(symbols))
    pos = pos[~pos.index.duplicated()]
    ia = pairs["gene_a"].map(pos)
    ib = pairs["gene_b"].map(pos)
    ok = ia.notna() & ib.notna()
    df = pd.DataFrame({"source": pairs["source"][ok].to_numpy(),
                       "a": ia[ok].to_numpy(np.int64), "b": ib[ok].to_numpy(np.int64)})
    df = df[df.a != df.b]
    lo = np.minimum(df.a, df.b)
    hi = np.maximum(df.a, df.b)
    df = pd.DataFrame({"source": df.source.to_numpy(), "a": lo.to_numpy(), "b": hi.to_numpy()})
    out: dict[str, np.ndarray] = {}
    for src, g in df.groupby("source", sort=True):
        out[str(src)] = g[["a", "b"]].drop_duplicates().to_numpy(np.int64)
    out["combined"] = df[["a", "b"]].drop_duplicates().to_numpy(np.int64)
    return out


def restrict_pairs(pairs: dict[str, np.ndarray], keep: np.ndarray, n_genes: int) -> dict[str, np.ndarray]:
    """Pairs re-indexed into the rows ``keep``; pairs with a gene outside it are dropped."""
    pos = np.full(n_genes, -1, dtype=np.int64)
    pos[keep] = np.arange(keep.size)
    out = {}
    for s, p in pairs.items():
        q = pos[np.asarray(p, dtype=np.int64).reshape(-1, 2)] if len(p) else np.zeros((0, 2), np.int64)
        out[s] = q[(q >= 0).all(axis=1)]
    return out


def _quantiles_inplace(vals: np.ndarray, n_valid: int, lower: float, upper: float) -> tuple[float, float]:
    """Linear-interpolated [lower, upper] quantiles of the n_valid non-NaN entries of `vals`.

    Same values as np.quantile(valid, [lower, upper]) but by an in-place partition of the
    scratch 1-D array `vals` (no copy); NaN entries mark excluded values and sort last.
    """
    hs = [q * (n_valid - 1) for q in (lower, upper)]
    kth = sorted({int(np.floor(h)) for h in hs} | {min(int(np.floor(h)) + 1, n_valid - 1) for h in hs})
    vals.partition(kth)
    out = []
    for h in hs:
        k = int(np.floor(h))
        a, b = float(vals[k]), float(vals[min(k + 1, n_valid - 1)])
        out.append(a + (h - k) * (b - a))
    return out[0], out[1]


def _null_samples(g: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two samples of n genes; disjoint when 2n <= G (so the null has no self-pairs)."""
    if 2 * n <= g:
        both = rng.choice(g, 2 * n, replace=False)
        return both[:n], both[n:]
    return rng.choice(g, n, replace=False), rng.choice(g, n, replace=False)


def null_thresholds_sweep(x: np.ndarray, ranks: list[int], rng: np.random.Generator,
                          null_size: int = 5000, lower: float = 0.05,
                          upper: float = 0.95) -> list[tuple[float, float]]:
    """Null quantiles at every rank from ONE sample of gene pairs (two samples of null_size genes).

    Cosines at rank r use the first r columns of `x` (G, W); dot products and norms are
    accumulated column block by column block, so the whole sweep costs one (n, W) x (W, n)
    product. Self-pairs (only possible when 2 * null_size > G) are excluded.
    Returns [(low, high) per rank].
    """
    g = x.shape[0]
    n = min(null_size, g)
    ia, ib = _null_samples(g, n, rng)
    xa = np.ascontiguousarray(x[ia], dtype=np.float32)
    xb = np.ascontiguousarray(x[ib], dtype=np.float32)
    dot = np.zeros((n, n), dtype=np.float32)
    cos = np.empty((n, n), dtype=np.float32)                              # reused: no page faults per rank
    na2, nb2 = np.zeros(n, np.float32), np.zeros(n, np.float32)
    pos_in_b = np.full(g, -1, dtype=np.int64)
    pos_in_b[ib] = np.arange(n)
    self_rows = np.nonzero(pos_in_b[ia] >= 0)[0]
    self_cols = pos_in_b[ia[self_rows]]
    out, prev = [], 0
    for r in ranks:
        np.matmul(np.ascontiguousarray(xa[:, prev:r]), np.ascontiguousarray(xb[:, prev:r]).T, out=cos)
        dot += cos                                                        # (n, n) += (n, dr) (dr, n)
        na2 += (xa[:, prev:r] ** 2).sum(1)
        nb2 += (xb[:, prev:r] ** 2).sum(1)
        prev = r
        np.multiply(dot, (1.0 / np.maximum(np.sqrt(na2), 1e-30))[:, None], out=cos)
        cos *= (1.0 / np.maximum(np.sqrt(nb2), 1e-30))[None, :]
        vals = cos.reshape(-1)
        if self_rows.size:
            vals[self_rows * n + self_cols] = np.nan
        out.append(_quantiles_inplace(vals, n * n - self_rows.size, lower, upper))
    return out


def null_thresholds(xn: np.ndarray, rng: np.random.Generator, null_size: int = 5000,
                    lower: float = 0.05, upper: float = 0.95) -> tuple[float, float]:
    """Quantiles of a sampled null: cosines between two random gene samples (self-pairs removed).

    Args:
        xn: (G, r) gene vectors.
        null_size: genes per sample (capped at G); the null has about null_size^2 values.
    Returns:
        (low, high) thresholds.
    """
    return null_thresholds_sweep(xn, [xn.shape[1]], rng, null_size, lower, upper)[0]


def full_null_thresholds(xn: np.ndarray, lower: float = 0.05, upper: float = 0.95,
                         block: int = 1024, bins: int = 1 << 16) -> tuple[float, float]:
    """Exact quantiles of ALL pairs i < j without holding them: histogram pass, then refine.

    Matches np.quantile(all_pair_sims, [lower, upper], method="linear") up to float32 rounding.
    """
    g = xn.shape[0]
    x = np.asarray(xn, dtype=np.float32)
    n_total = g * (g - 1) // 2
    edges = np.linspace(-1.0001, 1.0001, bins + 1).astype(np.float32)

    def blocks():
        for s in range(0, g, block):
            e = min(s + block, g)
            sim = x[s:e] @ x[s:].T                                   # (b, G - s)
            mask = np.arange(g - s)[None, :] > np.arange(e - s)[:, None]   # j > i only
            yield sim[mask]

    def bucket(v):
        return np.searchsorted(edges[1:-1], v, side="left")          # bin i holds edges[i] < v <= edges[i+1]

    counts = np.zeros(bins, dtype=np.int64)
    for v in blocks():
        counts += np.bincount(bucket(v), minlength=bins)
    cum = np.cumsum(counts)
    wanted = []
    for q in (lower, upper):
        h = q * (n_total - 1)
        wanted.append((h, int(np.floor(h)), int(np.ceil(h))))
    # collect the values of the bins holding the needed order statistics, then select exactly
    need = sorted({int(np.searchsorted(cum, kk + 1)) for _, k_lo, k_hi in wanted for kk in (k_lo, k_hi)})
    collected = {b: [] for b in need}
    for v in blocks():
        bidx = bucket(v)
        for b in need:
            collected[b].append(v[bidx == b])
    sorted_vals = {b: np.sort(np.concatenate(collected[b])) for b in need}

    def order_stat(kk: int) -> float:
        b = int(np.searchsorted(cum, kk + 1))
        before = int(cum[b - 1]) if b > 0 else 0
        return float(sorted_vals[b][kk - before])

    out = []
    for h, k_lo, k_hi in wanted:
        a, b = order_stat(k_lo), order_stat(k_hi)
        out.append(a + (h - k_lo) * (b - a))
    return out[0], out[1]


def pair_similarities_sweep(x: np.ndarray, pairs: np.ndarray, ranks: list[int],
                            chunk: int = 16_384) -> np.ndarray:
    """Cosine of each pair at every rank: (G, W) vectors, (P, 2) pairs -> (P, len(ranks)) float32."""
    out = np.empty((len(pairs), len(ranks)), dtype=np.float32)
    w = max(ranks)
    # partial sums up to each rank as one GEMM with a 0/1 (W, R) matrix (faster than cumsum)
    upto = (np.arange(w)[:, None] < np.asarray(ranks)[None, :]).astype(np.float32)
    xw = np.ascontiguousarray(x[:, :w], dtype=np.float32)                                  # (G, w)
    norms = np.maximum(np.sqrt((xw * xw) @ upto), 1e-30)                                    # (G, R)
    pt = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    for s in range(0, len(pt), chunk):
        ia, ib = pt[s:s + chunk, 0], pt[s:s + chunk, 1]
        dot = (xw[ia] * xw[ib]) @ upto                                                      # (c, R)
        out[s:s + chunk] = dot / (norms[ia] * norms[ib])
    return out


def random_pairs(g: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) uniformly random pairs of distinct genes."""
    a = rng.integers(0, g, n)
    b = (a + rng.integers(1, g, n)) % g
    return np.stack([a, b], axis=1)


def recall_sweep(x: np.ndarray, pairs: dict[str, np.ndarray], ranks: list[int], n_nulls: int = 3,
                 null_size: int = 5000, lower: float = 0.05, upper: float = 0.95,
                 full_null: bool = False, n_chance_pairs: int = 100_000, seed: int = 0) -> pd.DataFrame:
    """Recall of known pairs at every rank r (first r columns of x).

    Args:
        x: (G, W) gene vectors, e.g. PCA scores with columns by decreasing variance.
        pairs: {source: (P, 2) row-index pairs}, e.g. from pairs_to_indices.
        ranks: ranks to evaluate (each <= W).
        n_nulls: independent sampled nulls; the recall is averaged over them (std reported).
            Every null is one sample of null_size x null_size gene pairs shared by all ranks.
        full_null: use every pair i < j as one exact null instead (n_nulls ignored; slow).
        n_chance_pairs: uniformly random gene pairs scored the same way: the empirical chance
            level (about lower + 1 - upper = 0.10).
    Returns:
        DataFrame(rank, source, recall_mean, recall_std, n_pairs, chance); recall is NaN for a
        source without pairs in the vocabulary. Besides the given sources, a row
        "mean_of_sources" averages the per-source recalls (every source weighs the same;
        'combined', if given, pools the pairs instead, so large sources dominate it).
    """
    ranks = [int(r) for r in ranks]
    if not ranks or min(ranks) < 1 or max(ranks) > x.shape[1]:
        raise ValueError(f"ranks {ranks} must lie in 1..{x.shape[1]}")
    rng = np.random.default_rng(seed)
    g = x.shape[0]
    if full_null:
        thr = np.array([[full_null_thresholds(normalise_rows(x[:, :r]), lower, upper) for r in ranks]])
    else:
        thr = np.array([null_thresholds_sweep(x, ranks, rng, null_size, lower, upper)
                        for _ in range(n_nulls)])                                     # (nulls, R, 2)
    lo, hi = thr[:, None, :, 0], thr[:, None, :, 1]                                    # (nulls, 1, R)
    chance_cos = pair_similarities_sweep(x, random_pairs(g, n_chance_pairs, rng), ranks)
    chance = ((chance_cos[None] < lo) | (chance_cos[None] > hi)).mean(axis=(0, 1))     # (R,)
    # score each distinct pair once, then look every source up in the union
    keys = {s: np.minimum(p[:, 0], p[:, 1]).astype(np.int64) * g + np.maximum(p[:, 0], p[:, 1])
            for s, p in pairs.items() if len(p)}
    union = np.unique(np.concatenate(list(keys.values()))) if keys else np.zeros(0, np.int64)
    cos = pair_similarities_sweep(x, np.stack([union // g, union % g], axis=1), ranks)   # (U, R)
    hits = (cos[None] < lo) | (cos[None] > hi)                                         # (nulls, U, R)
    rows, per_null = [], {}
    for source, p in pairs.items():
        for j, r in enumerate(ranks):
            if len(p) == 0:
                rows.append((r, source, np.nan, np.nan, 0, float(chance[j])))
                continue
            rec = hits[:, np.searchsorted(union, keys[source]), j].mean(axis=1)          # (nulls,)
            if source != "combined":
                per_null.setdefault(r, []).append(rec)
            rows.append((r, source, float(rec.mean()), float(rec.std(ddof=1)) if rec.size > 1 else 0.0,
                         int(len(p)), float(chance[j])))
    for j, r in enumerate(ranks):           # unweighted mean over the sources (each source counts once)
        if r in per_null:
            m = np.mean(per_null[r], axis=0)
            rows.append((r, MEAN_OF_SOURCES, float(m.mean()), float(m.std(ddof=1)) if m.size > 1 else 0.0,
                         int(sum(len(p) for s_, p in pairs.items() if s_ != "combined")), float(chance[j])))
    return pd.DataFrame(rows, columns=["rank", "source", "recall_mean", "recall_std", "n_pairs", "chance"])


def relationship_recall(x: np.ndarray, pairs: dict[str, np.ndarray], n_nulls: int = 3,
                        null_size: int = 5000, lower: float = 0.05, upper: float = 0.95,
                        full_null: bool = False, n_chance_pairs: int = 100_000,
                        seed: int = 0) -> pd.DataFrame:
    """Recall of known pairs for one set of gene vectors x (G, r), all r columns.

    Returns DataFrame(source, recall_mean, recall_std, n_pairs, chance); see recall_sweep.
    """
    df = recall_sweep(x, pairs, [x.shape[1]], n_nulls, null_size, lower, upper, full_null,
                      n_chance_pairs, seed)
    return df.drop(columns="rank")


def best_rank(table: pd.DataFrame) -> pd.Series | None:
    """The row of a ``recall_sweep`` table (one matrix) at the best rank, or None when no rank has a recall.

    The project's one rule: the rank with the highest ``mean_of_sources`` recall (every source weighs
    the same; the pooled 'combined' would let the largest sources choose). Ties go to the lowest rank.
    """
    rows = table[table.source == BEST_BY].dropna(subset=["recall_mean"]).sort_values("rank", kind="stable")
    return None if rows.empty else rows.loc[rows.recall_mean.idxmax()]
