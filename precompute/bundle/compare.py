"""Comparison of two bundles: shared genes, per-gene neighbour overlap, aligned layout, recall.

The project's one comparison, used by `python -m precompute compare` and the app's Compare page
(torch-free). Neighbour overlap: each gene's stored top-k neighbours, restricted to the genes both
bundles have, compared by Jaccard |A ∩ B| / |A ∪ B|. Layout alignment: orthogonal Procrustes
(rotation/reflection) on the shared genes, then the moving layout's spread matched to the
reference's (a least-squares scale shrinks an unrelated layout towards a point).

Output folder (docs/formats.md "Bundle comparison"): comparison.json, genes.parquet,
overlap/A__B.parquet, layout/A__B.parquet, recall.parquet.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.linalg import orthogonal_procrustes

from common.outputs import check_output_target, staged_output

from .files import now_iso, save_parquet, write_json_atomic
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


def _compare_into(work: Path, a: Path, b: Path, ma: dict, mb: dict) -> None:
    ga = pd.read_parquet(a / bundle_files.GENES)
    gb = pd.read_parquet(b / bundle_files.GENES)
    sa, sb = ga.symbol.to_numpy(object), gb.symbol.to_numpy(object)
    shared = set(sa) & set(sb)
    common = sorted(set(ma["matrices"]) & set(mb["matrices"]))
    pairs = [(m, m) for m in common] or [(x, y) for x in ma["matrices"] for y in mb["matrices"]]
    allg = sorted(set(sa) | set(sb))
    save_parquet(work / "genes.parquet", pd.DataFrame({"symbol": allg, "in_a": [g in set(sa) for g in allg],
                                                       "in_b": [g in set(sb) for g in allg]}))
    summary = {}
    order = sorted(shared)
    b_to_a = row_map(sb, sa)
    for x, y in pairs:
        key = f"{x}__{y}"
        ka = np.load(a / bundle_files.knn_files(x)[0], mmap_mode="r")
        kb = np.load(b / bundle_files.knn_files(y)[0], mmap_mode="r")
        change = neighbourhood_change(sa, ka, sb, kb, min(ka.shape[1], kb.shape[1]))
        jac = change.drop_duplicates("gene").set_index("gene").loc[order, "jaccard"].to_numpy()
        save_parquet(work / "overlap" / f"{key}.parquet", pd.DataFrame({"symbol": order, "jaccard": jac}))
        xa = pd.read_parquet(a / bundle_files.umap_file(x))[["x", "y"]].to_numpy(float)
        xb = align_layout(xa, pd.read_parquet(b / bundle_files.umap_file(y))[["x", "y"]].to_numpy(float), b_to_a)
        ra_, rb_ = row_map(np.asarray(order, dtype=object), sa), row_map(np.asarray(order, dtype=object), sb)
        save_parquet(work / "layout" / f"{key}.parquet",
                     pd.DataFrame({"symbol": order, "x_a": xa[ra_, 0].astype(np.float32),
                                   "y_a": xa[ra_, 1].astype(np.float32),
                                   "x_b": xb[rb_, 0].astype(np.float32), "y_b": xb[rb_, 1].astype(np.float32)}))
        summary[key] = {"median_jaccard": float(np.nanmedian(jac)) if len(jac) else None,
                        "mean_jaccard": float(np.nanmean(jac)) if len(jac) else None}
    ra = pd.read_parquet(a / bundle_files.RECALL).assign(bundle="a")
    rb = pd.read_parquet(b / bundle_files.RECALL).assign(bundle="b")
    save_parquet(work / "recall.parquet", pd.concat([ra, rb], ignore_index=True))
    write_json_atomic(work / "comparison.json", {
        "format": COMPARISON_FORMAT, "format_version": 1, "created": now_iso(),
        "a": {"path": str(a), "created": ma["created"], "source": ma["source"].get("checkpoint")},
        "b": {"path": str(b), "created": mb["created"], "source": mb["source"].get("checkpoint")},
        "genes": {"a": len(sa), "b": len(sb), "shared": len(shared)},
        "pairs": [list(p) for p in pairs], "summary": summary,
        "best": {"a": json.loads((a / bundle_files.BEST).read_text()),
                 "b": json.loads((b / bundle_files.BEST).read_text())}})
