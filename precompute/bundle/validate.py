"""Check a bundle folder against the contract in docs/formats.md ("Bundle").

For the app: `validate_bundle(path)` returns a list of problems (empty = valid) and
`check_bundle(path)` raises BundleError listing them. Imports numpy/pandas/pyarrow only.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from .files import MANIFEST, BundleError, read_manifest, sha256_file
from . import files as bundle_files

GENE_COLUMNS = ["gene", "symbol", "ensembl_id", "aliases"]
SOURCE_KINDS = ("txfm", "pca", "imported")   # a checkpoint, the PCA baseline, `precompute import --embeddings`
RECALL_COLUMNS = ["matrix", "rank", "source", "recall_mean", "recall_std", "n_pairs", "chance"]
SPECTRUM_COLUMNS = ["matrix", "component", "explained_variance", "explained_variance_ratio"]
ENRICH_COLUMNS = ["resolution", "module", "library", "term", "overlap", "set_size", "module_size",
                  "background", "p", "q", "genes"]
PAIR_COLUMNS = ["source", "gene_a", "gene_b"]


def _columns(path: Path) -> list[str]:
    return pq.read_schema(path).names


# Files an operating system or file manager drops into any folder it shows (Finder's .DS_Store and
# ._* resource forks, Windows' Thumbs.db/desktop.ini, hidden files in general): nothing reads them,
# so they are ignored rather than refused as "added after the build".
_CLUTTER_NAMES = {"thumbs.db", "desktop.ini", "__macosx"}


def _os_clutter(rel: Path) -> bool:
    return any(part.startswith(".") or part.lower() in _CLUTTER_NAMES for part in rel.parts)


def check_files(root: Path, files: dict[str, Any], verify_hashes: bool, unlisted: bool = True) -> list[str]:
    """Problems of the files `files` ({rel: {bytes, sha256}}, manifest.files) lists under `root`: missing,
    another size (truncated), another sha256 (when verify_hashes), and (with `unlisted`) files not listed."""
    problems = []
    for rel, info in files.items():
        p = root / rel
        if not p.is_file():
            problems.append(f"{p}: listed in manifest.files but missing (bundle truncated); rebuild it")
            continue
        size = p.stat().st_size
        if size != info.get("bytes"):
            problems.append(f"{p}: {size} bytes, manifest says {info.get('bytes')} (truncated or modified)")
        elif verify_hashes and sha256_file(p) != info.get("sha256"):
            problems.append(f"{p}: sha256 differs from the manifest (file modified after the build)")
    for p in sorted(root.rglob("*")) if unlisted else []:
        if p.is_file() and p.name != MANIFEST and p.relative_to(root).as_posix() not in files \
                and not _os_clutter(p.relative_to(root)):
            problems.append(f"{p}: not listed in manifest.files (file added after the build)")
    return problems


def _check_npy(p: Path, shape: tuple, dtype: str, problems: list[str]) -> np.ndarray | None:
    if not p.is_file():
        problems.append(f"{p}: missing")
        return None
    try:
        a = np.load(p, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one problem to report
        problems.append(f"{p}: unreadable .npy ({e})")
        return None
    if a.dtype != np.dtype(dtype):
        problems.append(f"{p}: dtype {a.dtype}, expected {dtype}")
    if len(a.shape) != len(shape) or any(s is not None and s != t for s, t in zip(shape, a.shape)):
        problems.append(f"{p}: shape {a.shape}, expected {tuple('*' if s is None else s for s in shape)}")
        return None
    return a


def _check_parquet(p: Path, columns: list[str], n_rows: int | None, problems: list[str]) -> None:
    if not p.is_file():
        problems.append(f"{p}: missing")
        return
    try:
        cols = _columns(p)
        rows = pq.read_metadata(p).num_rows
    except Exception as e:  # noqa: BLE001
        problems.append(f"{p}: unreadable parquet ({e})")
        return
    missing = [c for c in columns if c not in cols]
    if missing:
        problems.append(f"{p}: missing columns {missing}")
    if n_rows is not None and rows != n_rows:
        problems.append(f"{p}: {rows} rows, expected {n_rows} (one per gene)")


def _check_matrix(root: Path, name: str, info: dict, g: int, problems: list[str]) -> None:
    shape = info.get("shape")
    if not (isinstance(shape, list) and len(shape) == 2 and shape[0] == g):
        problems.append(f"manifest.matrices.{name}.shape {shape} does not match {g} genes")
        return
    d = shape[1]
    _check_npy(root / bundle_files.matrix_file(name), (g, d), "float32", problems)
    sub = _check_npy(root / bundle_files.subspace_file(name), (g, None), "float32", problems)
    rank = info.get("rank")
    if sub is not None and not (isinstance(rank, int) and 1 <= rank <= sub.shape[1]):
        problems.append(f"manifest.matrices.{name}.rank {rank!r} is not within 1..{sub.shape[1]}")
    idx = _check_npy(root / bundle_files.knn_files(name)[0], (g, None), "int32", problems)
    sims = _check_npy(root / bundle_files.knn_files(name)[1], (g, None), "float32", problems)
    if idx is not None and sims is not None:
        if idx.shape != sims.shape:
            problems.append(f"{bundle_files.knn_files(name)[0]} {idx.shape} and {bundle_files.knn_files(name)[1]} {sims.shape} differ in shape")
        else:
            iv = np.asarray(idx)
            if iv.size and (iv.min() < 0 or iv.max() >= g):
                problems.append(f"{bundle_files.knn_files(name)[0]}: neighbour index outside 0..{g - 1}")
            elif (iv == np.arange(g)[:, None]).any():
                problems.append(f"{bundle_files.knn_files(name)[0]}: a gene lists itself as a neighbour")
            if sims.shape[1] > 1 and (np.diff(np.asarray(sims), axis=1) > 1e-6).any():
                problems.append(f"{bundle_files.knn_files(name)[1]}: similarities are not descending per row")
    _check_parquet(root / bundle_files.umap_file(name), ["gene", "x", "y"], g, problems)
    mod = root / bundle_files.modules_file(name)
    before = len(problems)
    _check_parquet(mod, ["gene"], g, problems)
    if mod.is_file() and len(problems) == before and not any(c.startswith("res_") for c in _columns(mod)):
        problems.append(f"{mod}: no res_<value> module columns")
    _check_parquet(root / bundle_files.enrichment_file(name), ENRICH_COLUMNS, None, problems)


def validate_bundle(path: Path | str, verify_hashes: bool = True) -> list[str]:
    """All problems found in a bundle folder (empty list = valid).

    Checks the manifest (format, version, keys), that every listed file exists with the listed
    size (and sha256 when verify_hashes; skip it for a fast check of large bundles), that no
    unlisted file was added, and that every table/array has the contract's columns, dtypes
    and shapes consistent with genes.parquet (G rows).
    """
    root = Path(path)
    try:
        m = read_manifest(root)
    except BundleError as e:
        return [str(e)]
    problems: list[str] = []
    for key, typ in (("created", str), ("source", dict), ("matrices", dict), ("steps", dict), ("files", dict)):
        if not isinstance(m.get(key), typ):
            problems.append(f"{root / MANIFEST}: key {key!r} missing or not a {typ.__name__}")
    if problems:
        return problems
    if m["source"].get("kind") not in SOURCE_KINDS:
        problems.append(f"{root / MANIFEST}: source.kind {m['source'].get('kind')!r} is not one of "
                        f"{', '.join(map(repr, SOURCE_KINDS))}")
    if not m["matrices"]:
        problems.append(f"{root / MANIFEST}: no matrices listed")
    problems += check_files(root, m["files"], verify_hashes)
    gp = root / bundle_files.GENES
    _check_parquet(gp, GENE_COLUMNS, None, problems)
    if not gp.is_file() or any("genes.parquet" in q for q in problems):
        return problems
    try:
        genes = pd.read_parquet(gp, columns=["gene", "symbol"])
    except Exception as e:  # noqa: BLE001 - a readable footer over damaged pages
        return problems + [f"{gp}: unreadable parquet ({e})"]
    g = len(genes)
    if not np.array_equal(genes["gene"].to_numpy(), np.arange(g)):
        problems.append(f"{gp}: column gene must be 0..{g - 1} in order")
    if genes["symbol"].duplicated().any():
        problems.append(f"{gp}: duplicate symbols")
    for name, info in m["matrices"].items():
        _check_matrix(root, name, info if isinstance(info, dict) else {}, g, problems)
    _check_parquet(root / bundle_files.SPECTRUM, SPECTRUM_COLUMNS, None, problems)
    _check_parquet(root / bundle_files.RECALL, RECALL_COLUMNS, None, problems)
    _check_parquet(root / bundle_files.PAIRS, PAIR_COLUMNS, None, problems)
    best = root / bundle_files.BEST
    if not best.is_file():
        problems.append(f"{best}: missing")
    else:
        try:
            b = json.loads(best.read_text())
        except ValueError as e:             # not JSON, not UTF-8
            problems.append(f"{best}: not valid JSON ({e})")
        else:
            lost = sorted(set(m["matrices"]) - set(b)) if isinstance(b, dict) else sorted(m["matrices"])
            if lost:
                problems.append(f"{best}: no entry for matrices {lost}")
    return problems


def check_bundle(path: Path | str, verify_hashes: bool = True) -> dict[str, Any]:
    """Validate and return the manifest; raise BundleError listing every problem otherwise."""
    from .files import is_bundle
    if not is_bundle(Path(path)):
        read_manifest(Path(path))       # raises the one clear message: missing folder, not a bundle, ...
    problems = validate_bundle(path, verify_hashes=verify_hashes)
    if problems:
        raise BundleError(f"bundle {path} is not valid ({len(problems)} problem(s)):\n  - "
                          + "\n  - ".join(problems)
                          + "\nRebuild it with `python -m precompute run ... --overwrite --force`.")
    return read_manifest(Path(path))
