"""Comparison of two bundles: shared genes, per-gene neighbour overlap, aligned layout, recall.

The project's one comparison, used by `python -m precompute compare` and the app's Compare page
(torch-free). Neighbour overlap: each gene's stored top-k neighbours, restricted to the genes both
bundles have, compared by Jaccard |A ∩ B| / |A ∪ B|. Layout alignment: orthogonal Procrustes
(rotation/reflection) on the shared genes, then the moving layout's spread matched to the
reference's (a least-squares scale shrinks an unrelated layout towards a point).

Output folder (docs/formats.md "Bundle comparison"): comparison.json, genes.parquet,
overlap/A__B.parquet, layout/A__B.parquet, modules/A__B.RES.parquet, recall.parquet (both matrices
scored on the gene population they share).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.linalg import orthogonal_procrustes

from common.outputs import check_output_target, staged_output

from .files import now_iso, read_array, read_json, read_table, save_parquet, write_json_atomic
from .validate import check_bundle
from . import files as bundle_files

COMPARISON_FORMAT = "txfm-bundle-comparison"


def is_comparison(path: Path) -> bool:
    """Whether `path` is a folder written by `compare_bundles` (its own kind of output)."""
    try:
        return json.loads((Path(path) / "comparison.json").read_text()).get("format") == COMPARISON_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def row_map(symbols_from: np.ndarray, symbols_to: np.ndarray) -> np.ndarray:
    """(G_from,) int64: row in ``symbols_to`` of each gene of ``symbols_from``, -1 where absent."""
    if len(symbols_from) == len(symbols_to) and np.array_equal(symbols_from, symbols_to):
        return np.arange(len(symbols_from), dtype=np.int64)   # same vocabulary: the common case
    pos = pd.Series(np.arange(len(symbols_to)), index=pd.Index(np.asarray(symbols_to, dtype=str)))
    pos = pos[~pos.index.duplicated()]
    return pd.Series(np.asarray(symbols_from, dtype=str)).map(pos).fillna(-1).to_numpy(np.int64)


def align_layout(xy_ref: np.ndarray, xy_mov: np.ndarray, mov_to_ref: np.ndarray) -> np.ndarray:
    """Rotate/reflect, scale and shift a 2-D layout onto a reference using the genes both share.

    Rotation: orthogonal Procrustes on the centred shared genes; scale: ratio of their spreads.

    Args:
        xy_ref: (G_ref, 2) reference coordinates.
        xy_mov: (G_mov, 2) coordinates to move.
        mov_to_ref: (G_mov,) row in the reference of each moving gene (-1 = not shared).
    Returns:
        (G_mov, 2) float64 moved coordinates (all genes, shared or not); the moving layout is
        unchanged if fewer than 3 genes are shared.
    """
    shared = mov_to_ref >= 0
    mov = np.asarray(xy_mov, dtype=np.float64)
    if shared.sum() < 3:
        return mov.copy()
    a = np.asarray(xy_ref, dtype=np.float64)[mov_to_ref[shared]]
    m = mov[shared]
    mu_a, mu_m = a.mean(0), m.mean(0)
    a0, m0 = a - mu_a, m - mu_m
    r, _ = orthogonal_procrustes(m0, a0)        # rotation/reflection: m0 @ r ~ a0
    # Match the spread of the shared genes rather than least-squares scale, which shrinks an
    # unrelated layout towards a point.
    scale = np.sqrt((a0 ** 2).sum() / max((m0 ** 2).sum(), 1e-12))
    return (mov - mu_m) @ r * scale + mu_a


def neighbourhood_change(symbols_a: np.ndarray, knn_a: np.ndarray, symbols_b: np.ndarray, knn_b: np.ndarray,
                         k: int) -> pd.DataFrame:
    """Per shared gene, how much its top-k neighbour set differs between bundles A and B.

    Neighbour sets are restricted to the genes both bundles have.

    Args:
        symbols_a, symbols_b: gene symbols of each bundle (row order).
        knn_a, knn_b: (G, >=k) stored neighbour rows of each bundle.
        k: neighbours compared (<= both widths).
    Returns:
        DataFrame(gene, jaccard, shared_neighbours, k), one row per gene present in both bundles,
        sorted by jaccard ascending (most changed first; NaN last), then gene.
    """
    a_to_b = row_map(symbols_a, symbols_b)
    b_to_a = row_map(symbols_b, symbols_a)
    both = np.flatnonzero(a_to_b >= 0)
    jac, shared = neighbour_overlap(np.asarray(knn_a)[both], np.asarray(knn_b)[a_to_b[both]], b_to_a, k,
                                    a_shared=a_to_b >= 0)
    df = pd.DataFrame({"gene": np.asarray(symbols_a, dtype=str)[both], "jaccard": jac,
                       "shared_neighbours": shared, "k": k})
    return df.sort_values(["jaccard", "gene"], kind="stable", na_position="last").reset_index(drop=True)


def neighbour_overlap(knn_a: np.ndarray, knn_b: np.ndarray, b_to_a: np.ndarray, k: int,
                      a_shared: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene Jaccard overlap of two top-k neighbour lists, restricted to genes both bundles have.

    Each neighbour set keeps only genes present in both bundles, then Jaccard = |A ∩ B| / |A ∪ B| (NaN when both restricted sets are empty).

    Args:
        knn_a: (n, >=k) neighbour rows in bundle A, one row per compared gene.
        knn_b: (n, >=k) neighbour rows in bundle B for the SAME genes (row i of knn_b is the
            gene of row i of knn_a), in B's row space.
        b_to_a: (G_b,) map from B's rows to A's rows, -1 for genes A lacks.
        k: list length compared.
        a_shared: (G_a,) bool, A's genes that B has (default: all of them).
    Returns:
        (jaccard float64 (n,), intersection size int64 (n,)).
    """
    a = np.asarray(knn_a[:, :k], dtype=np.int64)
    b = b_to_a[np.asarray(knn_b[:, :k], dtype=np.int64)]
    valid_a = np.ones_like(a, dtype=bool) if a_shared is None else np.asarray(a_shared)[a]
    valid_b = b >= 0
    # Dropped neighbours get unique negative ids so they never match anything.
    a = np.where(valid_a, a, -1 - np.arange(a.size).reshape(a.shape))
    b = np.where(valid_b, b, -1 - a.size - np.arange(b.size).reshape(b.shape))
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    inter = (both[:, 1:] == both[:, :-1]).sum(axis=1)
    union = valid_a.sum(axis=1) + valid_b.sum(axis=1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        jac = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return jac, inter.astype(np.int64)


def compare_bundles(a: Path | str, b: Path | str, out: Path | str, verify_hashes: bool = False,
                    overwrite: bool = False) -> Path:
    """Write a comparison of bundles `a` and `b` to `out` (atomically) and return it.

    An existing comparison at `out` is replaced only with `overwrite`; any other existing folder,
    or an `out` that contains `a` or `b`, is refused (UserError) before anything is read.

    Matrices with the same name are compared with each other; if the bundles share no matrix
    name (e.g. TxFM vs PCA) every matrix of A is compared with every matrix of B.
    Neighbour sets are restricted to the shared genes before the Jaccard index (see the module).
    """
    a, b, out = Path(a), Path(b), Path(out)
    check_output_target(out, "bundle comparison", is_comparison, overwrite, protect=(a, b))
    ma, mb = check_bundle(a, verify_hashes), check_bundle(b, verify_hashes)
    with staged_output(out, "bundle comparison", is_comparison, overwrite, protect=(a, b)) as work:
        _compare_into(work, a, b, ma, mb)
    return out


def _chosen_rank(manifest: dict, matrix: str, path: Path) -> int:
    """A matrix's chosen rank (the one its kNN was built at), else its subspace's width."""
    info = manifest["matrices"].get(matrix, {})
    if isinstance(info, dict) and info.get("rank"):
        return int(info["rank"])
    return int(read_array(path / bundle_files.subspace_file(matrix)).shape[1])


def _compare_into(work: Path, a: Path, b: Path, ma: dict, mb: dict) -> None:
    ga = read_table(a / bundle_files.GENES)
    gb = read_table(b / bundle_files.GENES)
    sa, sb = ga.symbol.to_numpy(object), gb.symbol.to_numpy(object)
    shared = set(sa) & set(sb)
    common = sorted(set(ma["matrices"]) & set(mb["matrices"]))
    pairs = [(m, m) for m in common] or [(x, y) for x in ma["matrices"] for y in mb["matrices"]]
    allg = sorted(set(sa) | set(sb))
    save_parquet(work / "genes.parquet", pd.DataFrame({"symbol": allg, "in_a": [g in set(sa) for g in allg],
                                                       "in_b": [g in set(sb) for g in allg]}))
    summary, recalls = {}, []
    pairs_a = read_table(a / bundle_files.PAIRS) if (a / bundle_files.PAIRS).exists() else \
        pd.DataFrame(columns=["source", "gene_a", "gene_b"])
    order = sorted(shared)
    b_to_a = row_map(sb, sa)
    for x, y in pairs:
        key = f"{x}__{y}"
        ka = read_array(a / bundle_files.knn_files(x)[0])
        kb = read_array(b / bundle_files.knn_files(y)[0])
        change = neighbourhood_change(sa, ka, sb, kb, min(ka.shape[1], kb.shape[1]))
        jac = change.drop_duplicates("gene").set_index("gene").loc[order, "jaccard"].to_numpy()
        save_parquet(work / "overlap" / f"{key}.parquet", pd.DataFrame({"symbol": order, "jaccard": jac}))
        xa = read_table(a / bundle_files.umap_file(x))[["x", "y"]].to_numpy(float)
        xb = align_layout(xa, read_table(b / bundle_files.umap_file(y))[["x", "y"]].to_numpy(float), b_to_a)
        ra_, rb_ = row_map(np.asarray(order, dtype=object), sa), row_map(np.asarray(order, dtype=object), sb)
        save_parquet(work / "layout" / f"{key}.parquet",
                     pd.DataFrame({"symbol": order, "x_a": xa[ra_, 0].astype(np.float32),
                                   "y_a": xa[ra_, 1].astype(np.float32),
                                   "x_b": xb[rb_, 0].astype(np.float32), "y_b": xb[rb_, 1].astype(np.float32)}))
        summary[key] = {"median_jaccard": float(np.nanmedian(jac)) if len(jac) else None,
                        "mean_jaccard": float(np.nanmean(jac)) if len(jac) else None}
        rank_x, rank_y = _chosen_rank(ma, x, a), _chosen_rank(mb, y, b)
        rec, n_pop, label = recall_side_by_side(
            read_array(a / bundle_files.subspace_file(x))[:, :rank_x],
            read_array(b / bundle_files.subspace_file(y))[:, :rank_y], ga, gb, pairs_a)
        recalls.append(rec.assign(pair=key, rank=np.where(rec.side == "A", rank_x, rank_y)))
        summary[key].update({"recall_population": label, "recall_n_genes": n_pop,
                             "rank_a": rank_x, "rank_b": rank_y})
        mod_a, mod_b = a / bundle_files.modules_file(x), b / bundle_files.modules_file(y)
        if mod_a.exists() and mod_b.exists():
            ta = read_table(mod_a).sort_values("gene")
            tb = read_table(mod_b).sort_values("gene")
            res = [c for c in ta.columns if c.startswith("res_") and c in tb.columns]
            rows = np.flatnonzero(row_map(sa, sb) >= 0)
            for r in res:
                table, ms = module_change(ta[r].to_numpy()[rows], tb[r].to_numpy()[row_map(sa, sb)[rows]])
                save_parquet(work / "modules" / f"{key}.{r}.parquet", table)
                summary[key].setdefault("modules", {})[r] = ms
    save_parquet(work / "recall.parquet", pd.concat(recalls, ignore_index=True)[
        ["pair", "side", "rank", "source", "recall_mean", "recall_std", "n_pairs", "chance"]])
    write_json_atomic(work / "comparison.json", {
        "format": COMPARISON_FORMAT, "format_version": 1, "created": now_iso(),
        "a": {"path": str(a), "created": ma["created"], "source": ma["source"].get("checkpoint")},
        "b": {"path": str(b), "created": mb["created"], "source": mb["source"].get("checkpoint")},
        "genes": {"a": len(sa), "b": len(sb), "shared": len(shared)},
        "pairs": [list(p) for p in pairs], "summary": summary,
        "best": {"a": read_json(a / bundle_files.BEST), "b": read_json(b / bundle_files.BEST)}})


# ---- any two gene matrices (the app's Compare page and `precompute compare`) ------------------
def shared_population(genes_a: pd.DataFrame, genes_b: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, str]:
    """The honest recall population two matrices share: genes in both bundles and in both populations.

    Each bundle's population is ``recall.recall_population`` of its genes table (genes measured
    well in >= 2 datasets; the whole vocabulary for a table without support, e.g. an imported
    embedding). Returns (rows in A, the same genes' rows in B, label).
    """
    from .recall import recall_population
    sa, sb = genes_a["symbol"].to_numpy(object), genes_b["symbol"].to_numpy(object)
    a_to_b = row_map(sa, sb)
    pop_a, label_a = recall_population(genes_a)
    pop_b, label_b = recall_population(genes_b)
    in_a = np.zeros(len(sa), bool)
    in_a[pop_a] = True
    in_b = np.zeros(len(sb), bool)
    in_b[pop_b] = True
    rows_a = np.flatnonzero((a_to_b >= 0) & in_a & in_b[np.maximum(a_to_b, 0)])
    label = label_a if label_a == label_b else f"{label_a} (A) and {label_b} (B)"
    return rows_a, a_to_b[rows_a], f"shared genes, {label}"


def recall_side_by_side(xa: np.ndarray, xb: np.ndarray, genes_a: pd.DataFrame, genes_b: pd.DataFrame,
                        pairs: pd.DataFrame, n_nulls: int = 3, null_size: int = 5000,
                        seed: int = 0) -> tuple[pd.DataFrame, int, str]:
    """Recall of the same known pairs by two gene matrices on the gene population both share.

    Args:
        xa, xb: (G_a, r_a), (G_b, r_b) vectors of each bundle's genes (e.g. a subspace at its rank).
        genes_a, genes_b: the bundles' genes tables (symbol, support).
        pairs: known pairs (source, gene_a, gene_b) by symbol.
    Returns:
        (DataFrame(side "A"/"B", source, recall_mean, recall_std, n_pairs, chance), genes in the
        population, its label). Both sides use the same pairs, the same null gene samples and the
        same seed, so the two figures differ only by the matrices.
    """
    from .recall import pairs_to_indices, recall_sweep
    rows_a, rows_b, label = shared_population(genes_a, genes_b)
    sym = genes_a["symbol"].to_numpy(object)[rows_a]
    idx = {s: p for s, p in pairs_to_indices(pairs, sym).items() if s != "combined"}
    frames = []
    if rows_a.size < 3:
        return pd.DataFrame(columns=["side", "source", "recall_mean", "recall_std", "n_pairs", "chance"]), \
            int(rows_a.size), label
    for side, x, rows in (("A", xa, rows_a), ("B", xb, rows_b)):
        x = np.asarray(x, dtype=np.float32)[rows]
        df = recall_sweep(x, idx, [x.shape[1]], n_nulls=n_nulls, null_size=null_size, seed=seed)
        frames.append(df.drop(columns="rank").assign(side=side))
    out = pd.concat(frames, ignore_index=True)
    return out[["side", "source", "recall_mean", "recall_std", "n_pairs", "chance"]], int(rows_a.size), label


def neighbour_diff(gene_a: int, knn_a: np.ndarray, knn_b: np.ndarray, symbols_a: np.ndarray,
                   symbols_b: np.ndarray, k: int) -> pd.DataFrame:
    """One gene's top-k neighbours in A and in B, restricted to genes both have: kept, lost, gained.

    Args:
        gene_a: the gene's row in A (it must be in B too).
        knn_a, knn_b: stored neighbour rows of A and B (B in its own row space).
        k: neighbours compared per side.
    Returns:
        DataFrame(gene, status "in both" / "only in A (lost)" / "only in B (gained)", rank_a,
        rank_b), ordered by status then best rank; a rank is the position in that bundle's stored
        list (1-based), NaN where absent.
    """
    a_to_b, b_to_a = row_map(symbols_a, symbols_b), row_map(symbols_b, symbols_a)
    gb = int(a_to_b[gene_a])
    if gb < 0:
        raise ValueError(f"{symbols_a[gene_a]} is not in bundle B")
    # ranks are positions in each stored list (1-based), before neighbours the other bundle lacks are dropped
    ra = {int(j): i + 1 for i, j in enumerate(np.asarray(knn_a[gene_a])[:k]) if a_to_b[int(j)] >= 0}
    rb = {int(b_to_a[int(j)]): i + 1 for i, j in enumerate(np.asarray(knn_b[gb])[:k]) if b_to_a[int(j)] >= 0}
    rows = []
    for j in dict.fromkeys(list(ra) + list(rb)):
        status = "in both" if j in ra and j in rb else ("only in A (lost)" if j in ra else "only in B (gained)")
        rows.append((str(symbols_a[j]), status, ra.get(j, np.nan), rb.get(j, np.nan)))
    df = pd.DataFrame(rows, columns=["gene", "status", "rank_a", "rank_b"])
    order = {"in both": 0, "only in A (lost)": 1, "only in B (gained)": 2}
    df["_o"], df["_r"] = df.status.map(order), df[["rank_a", "rank_b"]].min(axis=1)
    return df.sort_values(["_o", "_r"], kind="stable").drop(columns=["_o", "_r"]).reset_index(drop=True)


def module_change(modules_a: np.ndarray, modules_b: np.ndarray, cover: float = 0.8) -> tuple[pd.DataFrame, dict]:
    """How each module of A is spread over the modules of B, on genes both have.

    Args:
        modules_a, modules_b: (n,) module labels of the SAME n shared genes in A and in B.
        cover: the fraction of a module's genes the ``modules_to_cover`` column counts up to.
    Returns:
        (DataFrame(module_a, genes, best_module_b, kept (fraction in best_module_b),
        modules_to_cover, b_module_genes (size of best_module_b among shared genes)) sorted by
        size, {"adjusted_rand", "normalised_mutual_info", "genes"}).
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    a, b = np.asarray(modules_a), np.asarray(modules_b)
    if len(a) != len(b):
        raise ValueError(f"module labels of different lengths: {len(a)} and {len(b)}")
    tab = pd.crosstab(pd.Series(a, name="a"), pd.Series(b, name="b"))
    sizes_b = tab.sum(axis=0)
    rows = []
    for ma, row in tab.iterrows():
        n = int(row.sum())
        srt = np.sort(row.to_numpy())[::-1]
        need = int(np.searchsorted(np.cumsum(srt), cover * n - 1e-9) + 1)
        best = row.idxmax()
        rows.append((ma, n, best, float(row[best]) / n, need, int(sizes_b[best])))
    df = pd.DataFrame(rows, columns=["module_a", "genes", "best_module_b", "kept", "modules_to_cover",
                                     "b_module_genes"])
    df = df.sort_values(["genes", "module_a"], ascending=[False, True], kind="stable").reset_index(drop=True)
    summary = {"adjusted_rand": float(adjusted_rand_score(a, b)) if len(a) else float("nan"),
               "normalised_mutual_info": float(normalized_mutual_info_score(a, b)) if len(a) else float("nan"),
               "genes": int(len(a))}
    return df, summary
