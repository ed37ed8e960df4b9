"""Comparison of two bundles: shared genes, per-gene neighbour overlap, aligned layout, recall.

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

from .bundle_io import now_iso, save_parquet, write_json_atomic
from .validate import check_bundle

COMPARISON_FORMAT = "txfm-bundle-comparison"


def is_comparison(path: Path) -> bool:
    """Whether `path` is a folder written by `compare_bundles` (its own kind of output)."""
    try:
        return json.loads((Path(path) / "comparison.json").read_text()).get("format") == COMPARISON_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def neighbour_jaccard(nb_a: list[set], nb_b: list[set]) -> np.ndarray:
    """Per-gene Jaccard |A ∩ B| / |A ∪ B| of two lists of neighbour sets (NaN when both empty)."""
    out = np.full(len(nb_a), np.nan)
    for i, (a, b) in enumerate(zip(nb_a, nb_b)):
        u = len(a | b)
        if u:
            out[i] = len(a & b) / u
    return out


def procrustes_align(ref: np.ndarray, mov: np.ndarray) -> np.ndarray:
    """Rotate/reflect, scale and shift `mov` (n, 2) onto `ref` (n, 2) (least squares)."""
    mr, mm = ref.mean(0), mov.mean(0)
    r0, m0 = ref - mr, mov - mm
    rot, s = orthogonal_procrustes(m0, r0)
    scale = s / max((m0 ** 2).sum(), 1e-12)
    return m0 @ rot * scale + mr


def _neighbour_sets(bundle: Path, name: str, symbols: np.ndarray, shared: set) -> dict[str, set]:
    idx = np.load(bundle / "knn" / f"{name}.indices.npy", mmap_mode="r")
    return {symbols[i]: {symbols[j] for j in row if symbols[j] in shared}
            for i, row in enumerate(np.asarray(idx)) if symbols[i] in shared}


def compare_bundles(a: Path | str, b: Path | str, out: Path | str, verify_hashes: bool = False,
                    overwrite: bool = False) -> Path:
    """Write a comparison of bundles `a` and `b` to `out` (atomically) and return it.

    An existing comparison at `out` is replaced only with `overwrite`; any other existing folder,
    or an `out` that contains `a` or `b`, is refused (UserError) before anything is read.

    Matrices with the same name are compared with each other; if the bundles share no matrix
    name (e.g. TxFM vs PCA) every matrix of A is compared with every matrix of B.
    Neighbour sets are restricted to the shared genes before the Jaccard index.
    """
    a, b, out = Path(a), Path(b), Path(out)
    check_output_target(out, "bundle comparison", is_comparison, overwrite, protect=(a, b))
    ma, mb = check_bundle(a, verify_hashes), check_bundle(b, verify_hashes)
    with staged_output(out, "bundle comparison", is_comparison, overwrite, protect=(a, b)) as work:
        _compare_into(work, a, b, ma, mb)
    return out


def _compare_into(work: Path, a: Path, b: Path, ma: dict, mb: dict) -> None:
    ga = pd.read_parquet(a / "genes.parquet")
    gb = pd.read_parquet(b / "genes.parquet")
    sa, sb = ga.symbol.to_numpy(object), gb.symbol.to_numpy(object)
    shared = set(sa) & set(sb)
    common = sorted(set(ma["matrices"]) & set(mb["matrices"]))
    pairs = [(m, m) for m in common] or [(x, y) for x in ma["matrices"] for y in mb["matrices"]]
    allg = sorted(set(sa) | set(sb))
    save_parquet(work / "genes.parquet", pd.DataFrame({"symbol": allg, "in_a": [g in set(sa) for g in allg],
                                                       "in_b": [g in set(sb) for g in allg]}))
    summary = {}
    order = sorted(shared)
    for x, y in pairs:
        key = f"{x}__{y}"
        na, nb = _neighbour_sets(a, x, sa, shared), _neighbour_sets(b, y, sb, shared)
        jac = neighbour_jaccard([na[g] for g in order], [nb[g] for g in order])
        save_parquet(work / "overlap" / f"{key}.parquet", pd.DataFrame({"symbol": order, "jaccard": jac}))
        ua = pd.read_parquet(a / "umap" / f"{x}.parquet").assign(symbol=sa).set_index("symbol").loc[order]
        ub = pd.read_parquet(b / "umap" / f"{y}.parquet").assign(symbol=sb).set_index("symbol").loc[order]
        aligned = procrustes_align(ua[["x", "y"]].to_numpy(float), ub[["x", "y"]].to_numpy(float))
        save_parquet(work / "layout" / f"{key}.parquet",
                     pd.DataFrame({"symbol": order, "x_a": ua.x.to_numpy(), "y_a": ua.y.to_numpy(),
                                   "x_b": aligned[:, 0].astype(np.float32),
                                   "y_b": aligned[:, 1].astype(np.float32)}))
        summary[key] = {"median_jaccard": float(np.nanmedian(jac)) if len(jac) else None,
                        "mean_jaccard": float(np.nanmean(jac)) if len(jac) else None}
    ra = pd.read_parquet(a / "recall" / "recall.parquet").assign(bundle="a")
    rb = pd.read_parquet(b / "recall" / "recall.parquet").assign(bundle="b")
    save_parquet(work / "recall.parquet", pd.concat([ra, rb], ignore_index=True))
    write_json_atomic(work / "comparison.json", {
        "format": COMPARISON_FORMAT, "format_version": 1, "created": now_iso(),
        "a": {"path": str(a), "created": ma["created"], "source": ma["source"].get("checkpoint")},
        "b": {"path": str(b), "created": mb["created"], "source": mb["source"].get("checkpoint")},
        "genes": {"a": len(sa), "b": len(sb), "shared": len(shared)},
        "pairs": [list(p) for p in pairs], "summary": summary,
        "best": {"a": json.loads((a / "recall" / "best.json").read_text()),
                 "b": json.loads((b / "recall" / "best.json").read_text())}})
