"""build_bundle: gene matrices -> Bundle folder (docs/formats.md "Bundle"), step by step.

Each step is a pure function of its inputs, recorded in manifest.steps with its parameters,
wall time and finish time. A bundle is built in a hidden sibling folder (`.NAME.staging-PID-XXXX`,
removed on any failure) and renamed onto NAME when complete.

An existing bundle at NAME: when every step's parameters (which include fingerprints of its
inputs) are unchanged it is up to date and nothing is written. Otherwise it is replaced only with
`overwrite=True` (`--overwrite`): the still-valid leading steps are reused (hard links) and the rest
recomputed in the staging folder, which then replaces NAME. `force` recomputes every step.
A folder that is not a bundle is never written into or deleted.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from common.errors import UserError
from common.outputs import check_output_target, discard_staging, is_empty_dir, remove_stale_staging, stage_dir

from .bundle import files as bundle_files
from . import steps
from .bundle.validate import check_files
from .bundle.files import (BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, MANIFEST, finalise, is_bundle, now_iso,
                        partial_dir, save_npy, save_parquet, write_json_atomic)
from .params import BundleParams, choose_ranks

# The best rank: precompute.bundle.recall.best_rank (the unweighted mean of the per-source recalls; the
# pooled 'combined' row is also stored). The files each step writes: bundle_files.STEP_FILES.

def _array_digest(a: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(str(a.shape).encode() + str(a.dtype).encode())
    h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def _references_digest(ref_dir: Path | None) -> str | None:
    if ref_dir is None:
        return None
    h = hashlib.sha256()
    for p in sorted(list(Path(ref_dir).glob("pairs/*.tsv")) + list(Path(ref_dir).glob("gmt/*.gmt"))
                    + list(Path(ref_dir).glob("genes/genes.tsv"))):
        st = p.stat()
        h.update(f"{p.relative_to(ref_dir)}:{st.st_size}:{int(st.st_mtime)}\n".encode())
    return h.hexdigest()


def _check_inputs(matrices: dict[str, np.ndarray], genes: pd.DataFrame) -> None:
    if not matrices:
        raise ValueError("no gene matrices given; pass at least one, e.g. {'pca': loadings}")
    for col in ("symbol", "ensembl_id"):
        if col not in genes.columns:
            raise ValueError(f"genes table lacks column {col!r} (has {list(genes.columns)}); "
                             "pass symbol and ensembl_id ('' where unknown)")
    sym = genes["symbol"].astype(str)
    if (sym == "").any() or sym.duplicated().any():
        dup = sym[sym.duplicated()].head(5).tolist()
        raise ValueError(f"gene symbols must be unique and non-empty (duplicates e.g. {dup}); "
                         "fix the vocabulary before precomputing")
    for name, m in matrices.items():
        if not name.replace("_", "").isalnum():
            raise ValueError(f"matrix name {name!r} must be alphanumeric (it becomes a file name)")
        if m.ndim != 2 or m.shape[0] != len(genes):
            raise ValueError(f"matrix {name!r} has shape {m.shape}, expected ({len(genes)}, D) to "
                             "match the gene table")
        if not np.isfinite(m).all():
            raise ValueError(f"matrix {name!r} contains NaN or infinite values; the checkpoint is "
                             "damaged or training diverged")


def build_bundle(matrices: dict[str, np.ndarray], genes: pd.DataFrame,
                 references_dir: Path | str | None, out_dir: Path | str, source: dict[str, Any],
                 params: BundleParams = BundleParams(), force: bool = False,
                 training_metrics: pd.DataFrame | None = None, progress: bool = True,
                 overwrite: bool = False, status: dict | None = None,
                 protect: tuple = ()) -> Path:
    """Write a complete bundle for some gene matrices.

    Args:
        matrices: {name: (G, D) float gene matrix}, e.g. {"codebook": ..., "decoder": ...}
            or {"pca": ...}; names become file names.
        genes: G rows in matrix row order with columns symbol, ensembl_id ('' if unknown).
        references_dir: reference folder (pairs/*.tsv, gmt/*.gmt, genes/genes.tsv), or None
            (then recall has no pairs and enrichment no libraries).
        out_dir: the bundle folder to create (replaced atomically when finished).
        source: provenance for manifest.source (kind, checkpoint, sha256, model_config, ...).
        force: rebuild every step even when an existing bundle's steps match.
        training_metrics: optional DataFrame (step, samples_seen, loss, ...) to copy in.
        overwrite: allow replacing an existing bundle whose steps differ (or with `force`).
            Without it such a bundle is refused (UserError) before any step is computed.
        status: if given, filled with {"status": "written" | "replaced" | "up to date"}.
        protect: input paths that must not lie inside `out_dir`.
    Returns:
        The bundle path. Step timings are in manifest.json["steps"][step]["seconds"].
    """
    out = Path(out_dir)
    ref_dir = Path(references_dir) if references_dir is not None else None
    matrices = {n: np.asarray(m, dtype=np.float32) for n, m in matrices.items()}
    _check_inputs(matrices, genes)
    protect = tuple(protect) + ((ref_dir,) if ref_dir is not None else ())
    # refuses a foreign folder, a file, an unwritable parent, an input inside out (replace is decided below)
    check_output_target(out, "bundle", is_bundle, replace=True, protect=protect)
    existing = out.is_dir() and not is_empty_dir(out)
    if existing and force and not overwrite:
        raise UserError(f"{out}: a bundle already exists there; --force recomputes every step into a new "
                        "bundle, so also pass --overwrite to replace it (or choose a new --out)")
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)                     # leftovers of killed runs (their PID is gone)
    if partial_dir(out).is_dir() and is_bundle(partial_dir(out)):
        shutil.rmtree(partial_dir(out), ignore_errors=True)   # leftover of an older version's failed build
    work = stage_dir(out)
    try:
        return _build_in(work, out, existing, matrices, genes, ref_dir, source, params, force,
                         training_metrics, progress, overwrite, status)
    except BaseException as e:
        err = discard_staging(work, out, e)       # a full disk etc. named by `out`; the staging folder goes
        if err is e:
            raise
        raise err from e


def _copy_bundle(src: Path, dst: Path) -> None:
    """Copy a bundle folder with hard links (writers replace files, never edit them), else plain copies."""
    try:
        shutil.copytree(src, dst, copy_function=os.link)
    except OSError:
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)


def _build_in(work: Path, out: Path, existing: bool, matrices, genes, ref_dir, source, params, force,
              training_metrics, progress, overwrite, status) -> Path:
    if existing and not force:
        _copy_bundle(out, work)
    work.mkdir(parents=True, exist_ok=True)
    try:
        old = json.loads((work / MANIFEST).read_text()) if (work / MANIFEST).is_file() else {}
    except ValueError:
        old = {}
    old_steps = old.get("steps", {}) if not force else {}
    damaged = check_files(out, old.get("files") or {}, verify_hashes=False, unlisted=False) if old_steps else []
    if damaged:           # a truncated or edited file: nothing of the old bundle is reused
        if not overwrite:
            raise UserError(f"{out}: the bundle there is damaged ({damaged[0]}); pass --overwrite to rebuild it, "
                            "or choose a new --out")
        print(f"warning: {out}: the bundle there is damaged ({damaged[0]}); every step is recomputed",
              file=sys.stderr)
        old_steps = {}
    names = list(matrices)
    ctx = steps.StepContext(work=work, params=params, names=names, references_dir=ref_dir, progress=progress)
    pdict = asdict(params)
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT, "format_version": BUNDLE_FORMAT_VERSION, "created": now_iso(),
        "source": source,
        "matrices": {n: {"shape": list(m.shape), "rank": None} for n, m in matrices.items()},
        "steps": {}}
    fresh = False

    def run(step: str, step_params: dict[str, Any], fn: Callable[[], dict[str, Any]]) -> None:
        nonlocal fresh
        prev = old_steps.get(step)
        if not fresh and prev is not None and prev.get("params") == json.loads(json.dumps(step_params)):
            manifest["steps"][step] = prev
            return
        if existing and not overwrite and not fresh:
            why = "is missing" if prev is None else "has other inputs or parameters"
            raise UserError(f"{out}: a bundle built from other inputs or parameters already exists there "
                            f"(its step {step!r} {why}); pass --overwrite to replace it, or choose a new --out")
        if not fresh:      # drop the copied files of this step and every later one (no stale files)
            for later in bundle_files.STEP_FILES[[n for n, _ in bundle_files.STEP_FILES].index(step):]:
                for rel in later[1]:
                    q = work / rel
                    shutil.rmtree(q, ignore_errors=True) if q.is_dir() else q.unlink(missing_ok=True)
        fresh = True
        t0, c0 = time.perf_counter(), time.process_time()
        summary = fn()
        entry = {"params": step_params, "seconds": round(time.perf_counter() - t0, 3),
                 "cpu_seconds": round(time.process_time() - c0, 3), "finished": now_iso()}
        if summary:
            entry["summary"] = summary
        manifest["steps"][step] = entry
        write_json_atomic(work / MANIFEST, manifest)   # progress record; no "files" until complete

    def write_matrices() -> dict[str, Any]:
        save_parquet(work / bundle_files.GENES, steps.genes_table(genes, ref_dir))
        for n, m in matrices.items():
            save_npy(work / bundle_files.matrix_file(n), m)
        return {}

    digests = {n: _array_digest(m) for n, m in matrices.items()}
    gene_digest = hashlib.sha256("\n".join(genes["symbol"].astype(str) + "\t" +
                                           genes["ensembl_id"].fillna("").astype(str) + "\t" +
                                           genes.get("support", pd.Series("", index=genes.index)).astype(str)
                                           ).encode()).hexdigest()
    ref_digest = _references_digest(ref_dir)
    # genes_table 2: genes.parquet also holds the official name and Entrez id (the app's gene cards)
    run("matrices", {"sha256": digests, "genes_sha256": gene_digest, "references": ref_digest, "genes_table": 2},
        write_matrices)
    run("references", {"references_dir": str(ref_dir) if ref_dir else None, "digest": ref_digest},
        lambda: steps.references_step(ctx))
    run("subspaces", {"method": "centre (and z-score) columns, PCA (eigh of covariance), fitted on the recall "
                                "population, every gene projected",
                      "standardise": {n: params.standardises(n) for n in names}}, lambda: steps.subspaces_step(ctx))
    run("recall", {k: pdict[k] for k in ("ranks", "n_nulls", "null_size", "full_null", "lower", "upper", "seed")}
        | {"similarity": "cosine"}, lambda: steps.recall_step(ctx))
    best = json.loads((work / bundle_files.BEST).read_text())
    widths = {n: int(np.load(work / bundle_files.subspace_file(n), mmap_mode="r").shape[1]) for n in names}
    ctx.chosen = choose_ranks(names, widths, params, best)
    for n in names:
        manifest["matrices"][n]["rank"] = ctx.chosen[n]
    run("knn", {"k": params.k, "ranks": ctx.chosen, "metric": "cosine", "exact": True}, lambda: steps.knn_step(ctx))
    run("umap", {"n_epochs": params.umap_epochs, "min_dist": params.umap_min_dist, "seed": params.seed,
                 "init": "pca", "input": "precomputed exact kNN"}, lambda: steps.umap_step(ctx))
    run("modules", {"method": "leiden-modularity (igraph)", "resolutions": list(params.resolutions),
                    "n_iterations": 2, "seed": params.seed}, lambda: steps.modules_step(ctx))
    run("enrichment", {"test": "hypergeometric one-sided", "correction": "benjamini-hochberg",
                       "background": "model genes in the library", "min_set_size": params.min_set_size,
                       "max_set_size": params.max_set_size, "top_terms": params.top_terms},
        lambda: steps.enrichment_step(ctx))
    if training_metrics is not None:
        run("training", {"rows": int(len(training_metrics)),
                         "sha256": hashlib.sha256(pd.util.hash_pandas_object(training_metrics).values
                                                  .tobytes()).hexdigest()},
            lambda: (save_parquet(work / bundle_files.METRICS, training_metrics), {})[1])
    if not fresh and existing and old.get("files") is not None:
        shutil.rmtree(work)            # nothing changed: keep the finished bundle as it is
        if status is not None:
            status["status"] = "up to date"
        return out
    if status is not None:
        status["status"] = "replaced" if existing else "written"
    return finalise(work, out, manifest)
