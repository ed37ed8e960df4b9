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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import references as refs
from common.atomic import atomic_path
from common.errors import UserError
from common.outputs import check_output_target, is_empty_dir, remove_stale_staging, stage_dir

from . import bundle_io
from .bundle_io import (BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, MANIFEST, finalise, is_bundle, now_iso,
                        partial_dir, save_npy, save_parquet, write_json_atomic)

PAPER_RANKS = {"codebook": 32, "decoder": 256, "pca": 1024, "contextual": 256}
# Column standardisation before the PCA of each matrix. PCA loadings already carry their
# eigenvalue weighting; z-scoring their columns would whiten them (recall on the PBMC
# cross-check drops from 0.24 to 0.17, docs/precompute.md), so they are only centred.
DEFAULT_STANDARDISE = (("pca", False),)
# The best rank: precompute.recall.best_rank (the unweighted mean of the per-source recalls; the
# pooled 'combined' row is also stored). The files each step writes: bundle_io.STEP_FILES.


@dataclass(frozen=True)
class BundleParams:
    """Parameters of every step (recorded in the manifest)."""
    ranks: tuple[int, ...] | None = None   # rank sweep of the recall (default: 8, 16, 32, ... up to the matrix width)
    rank_policy: Literal["paper", "best"] = "paper"  # rank of kNN, UMAP and modules: "paper" (codebook 32, decoder 256, pca 1024, capped at the width) or "best" (best recall of the sweep)
    chosen_ranks: tuple[tuple[str, int], ...] = ()  # explicit (matrix, rank) overrides
    n_nulls: int = 3                       # sampled nulls the recall is averaged over
    null_size: int = 5000                  # genes per null sample (5,000 x 5,000 similarities)
    full_null: bool = False                # exact all-pairs null instead of sampled nulls
    lower: float = 0.05                    # recall: below this null quantile counts
    upper: float = 0.95                    # recall: above this null quantile counts
    k: int = 50                            # neighbours per gene
    umap_epochs: int = 100                 # UMAP optimisation epochs (low: speed; see docs)
    umap_min_dist: float = 0.1             # UMAP min_dist
    resolutions: tuple[float, ...] = (0.5, 1.0, 2.0)   # Leiden resolutions
    min_set_size: int = 5                  # enrichment: smallest tested set (after restriction)
    max_set_size: int = 500                # enrichment: largest tested set
    top_terms: int = 10                    # enrichment rows kept per module and library
    seed: int = 0                          # seed of the nulls, UMAP and Leiden
    standardise: tuple[tuple[str, bool], ...] = DEFAULT_STANDARDISE  # (matrix, z-score columns?); others True

    def __post_init__(self) -> None:
        from common.options import OptionError, check_range
        for r in self.ranks or ():
            check_range("ranks", r, lo=1, integer=True, what="PCA ranks of the sweep")
        if self.rank_policy not in ("paper", "best"):
            raise OptionError(f"--rank-policy {self.rank_policy!r}: choose paper or best")
        for _, r in self.chosen_ranks:
            check_range("rank", r, lo=1, integer=True)
        check_range("n_nulls", self.n_nulls, lo=1, integer=True)
        check_range("null_size", self.null_size, lo=2, integer=True, what="genes per null sample")
        check_range("lower", self.lower, lo=0, hi=1, lo_open=True, hi_open=True)
        check_range("upper", self.upper, lo=self.lower, hi=1, lo_open=True, hi_open=True)
        check_range("k", self.k, lo=1, integer=True, what="neighbours per gene")
        check_range("umap_epochs", self.umap_epochs, lo=0, integer=True)
        check_range("umap_min_dist", self.umap_min_dist, lo=0)
        for r in self.resolutions:
            check_range("resolutions", r, lo=0, lo_open=True)
        check_range("min_set_size", self.min_set_size, lo=1, integer=True)
        check_range("max_set_size", self.max_set_size, lo=self.min_set_size, integer=True, what=">= --min-set-size")
        check_range("top_terms", self.top_terms, lo=1, integer=True)
        check_range("seed", self.seed, lo=0, integer=True)

    def standardises(self, name: str) -> bool:
        """Whether matrix `name` has its columns z-scored before the PCA (default True)."""
        return dict(self.standardise).get(name, True)


@dataclass
class _Ctx:
    work: Path
    params: BundleParams
    names: list[str]
    references_dir: Path | None
    progress: bool
    chosen: dict[str, int] = field(default_factory=dict)

    def load(self, rel: str) -> np.ndarray:
        return np.load(self.work / rel, mmap_mode="r", allow_pickle=False)


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


def _genes_table(genes: pd.DataFrame, ref_dir: Path | None) -> pd.DataFrame:
    out = pd.DataFrame({"gene": np.arange(len(genes), dtype=np.int32),
                        "symbol": genes["symbol"].astype(str).to_numpy(),
                        "ensembl_id": genes["ensembl_id"].fillna("").astype(str).to_numpy(),
                        "aliases": ""})
    if "support" in genes.columns:  # datasets measuring each gene well: defines the recall population
        out["support"] = genes["support"].to_numpy().astype(np.int32)
    info = refs.load_gene_aliases(ref_dir) if ref_dir is not None else None
    if info is not None and "aliases" in info.columns:
        alias = info["aliases"].astype(str)
        if "previous_symbols" in info.columns:
            alias = (alias + "|" + info["previous_symbols"].astype(str)).str.strip("|")
        by_sym = dict(zip(info["symbol"], alias))
        by_ens = dict(zip(info.get("ensembl_id", pd.Series(dtype=str)), alias))
        out["aliases"] = [by_ens.get(e) or by_sym.get(s, "") if e else by_sym.get(s, "")
                          for s, e in zip(out.symbol, out.ensembl_id)]
        out["aliases"] = out["aliases"].fillna("").astype(str)
    return out


# ---- steps: each returns (params recorded, summary) and writes its files into ctx.work ----

def _step_references(ctx: _Ctx) -> dict[str, Any]:
    symbols = pd.read_parquet(ctx.work / bundle_io.GENES)["symbol"]
    if ctx.references_dir is None:
        pairs = pd.DataFrame({"source": [], "gene_a": [], "gene_b": []}, dtype=str)
        libs: dict[str, Path] = {}
    else:
        pairs = refs.load_pairs(ctx.references_dir)
        libs = refs.gmt_files(ctx.references_dir)
    keep = pairs["gene_a"].isin(symbols) & pairs["gene_b"].isin(symbols)
    save_parquet(ctx.work / bundle_io.PAIRS, pairs[keep].reset_index(drop=True))
    (ctx.work / bundle_io.GMT_DIR).mkdir(parents=True, exist_ok=True)
    for name, path in libs.items():
        # a fresh file, never written through: the folder may hold hard links into an existing bundle
        with atomic_path(ctx.work / bundle_io.gmt_file(name)) as tmp:
            shutil.copyfile(path, tmp)
    return {"n_pairs": pairs[keep].groupby("source").size().astype(int).to_dict(),
            "libraries": sorted(libs)}


def _step_subspaces(ctx: _Ctx) -> dict[str, Any]:
    from .recall import recall_population
    from .subspaces import pca_scores, spectrum_table
    pop, label = recall_population(pd.read_parquet(ctx.work / bundle_io.GENES))
    tables = []
    for name in tqdm(ctx.names, desc="subspaces", disable=not ctx.progress, leave=False):
        scores, ev = pca_scores(ctx.load(bundle_io.matrix_file(name)), standardise=ctx.params.standardises(name),
                                fit_rows=pop)
        save_npy(ctx.work / bundle_io.subspace_file(name), scores)
        tables.append(spectrum_table(name, ev))
    save_parquet(ctx.work / bundle_io.SPECTRUM, pd.concat(tables, ignore_index=True))
    return {"fitted_on": label, "n_fit_genes": int(pop.size)}


def _sweep(ctx: _Ctx, width: int) -> list[int]:
    from .subspaces import rank_sweep
    if ctx.params.ranks is None:
        return rank_sweep(width)
    return sorted({min(r, width) for r in ctx.params.ranks})


def _step_recall(ctx: _Ctx) -> dict[str, Any]:
    from .recall import BEST_BY, best_rank, recall_population, recall_sweep, restrict_pairs
    p = ctx.params
    genes = pd.read_parquet(ctx.work / bundle_io.GENES)
    symbols = genes["symbol"].to_numpy()
    pop, label = recall_population(genes)
    pairs = restrict_pairs(refs.pairs_to_indices(pd.read_parquet(ctx.work / bundle_io.PAIRS),
                                                 symbols), pop, len(genes))
    frames, best = [], {}
    for name in tqdm(ctx.names, desc="recall", disable=not ctx.progress, leave=False):
        sub = np.asarray(ctx.load(bundle_io.subspace_file(name)))[pop]
        df = recall_sweep(sub, pairs, _sweep(ctx, sub.shape[1]), n_nulls=p.n_nulls, null_size=p.null_size,
                          lower=p.lower, upper=p.upper, full_null=p.full_null, seed=p.seed)
        df.insert(0, "matrix", name)
        frames.append(df)
    table = pd.concat(frames, ignore_index=True)[
        ["matrix", "rank", "source", "recall_mean", "recall_std", "n_pairs", "chance"]]
    table["population"], table["n_genes"] = label, int(pop.size)
    save_parquet(ctx.work / bundle_io.RECALL, table)
    for name in ctx.names:
        row = best_rank(table[table.matrix == name])
        if row is not None:
            best[name] = {"rank": int(row["rank"]), "recall": float(row.recall_mean), "source": BEST_BY,
                          "population": label, "n_genes": int(pop.size)}
        else:
            best[name] = {"rank": None, "recall": None, "source": BEST_BY, "population": label,
                          "n_genes": int(pop.size)}
    write_json_atomic(ctx.work / bundle_io.BEST, best)
    return {"best": best, "population": label, "n_genes": int(pop.size)}


def choose_ranks(names: list[str], widths: dict[str, int], params: BundleParams,
                 best: dict[str, dict]) -> dict[str, int]:
    """The rank per matrix used for kNN/UMAP/modules: explicit override, else policy."""
    explicit = dict(params.chosen_ranks)
    out = {}
    for n in names:
        if n in explicit:
            r = explicit[n]
        elif params.rank_policy == "best" and best.get(n, {}).get("rank"):
            r = best[n]["rank"]
        else:
            r = PAPER_RANKS.get(n, 256)
        out[n] = int(min(r, widths[n]))
    return out


def _step_knn(ctx: _Ctx) -> dict[str, Any]:
    from .knn import cosine_knn
    for name in ctx.names:
        sub = np.asarray(ctx.load(bundle_io.subspace_file(name))[:, :ctx.chosen[name]])
        idx, sims = cosine_knn(sub, k=min(ctx.params.k, sub.shape[0] - 1), progress=ctx.progress)
        save_npy(ctx.work / bundle_io.knn_files(name)[0], idx)
        save_npy(ctx.work / bundle_io.knn_files(name)[1], sims)
    return {}


def _step_umap(ctx: _Ctx) -> dict[str, Any]:
    from .maps import umap_from_knn
    for name in tqdm(ctx.names, desc="umap", disable=not ctx.progress, leave=False):
        sub = np.asarray(ctx.load(bundle_io.subspace_file(name))[:, :ctx.chosen[name]])
        xy = umap_from_knn(sub, np.asarray(ctx.load(bundle_io.knn_files(name)[0])),
                           np.asarray(ctx.load(bundle_io.knn_files(name)[1])),
                           n_epochs=ctx.params.umap_epochs, min_dist=ctx.params.umap_min_dist,
                           seed=ctx.params.seed)
        save_parquet(ctx.work / bundle_io.umap_file(name),
                     pd.DataFrame({"gene": np.arange(len(xy), dtype=np.int32),
                                   "x": xy[:, 0], "y": xy[:, 1]}))
    return {}


def _res_col(res: float) -> str:
    return f"res_{res:g}"


def _step_modules(ctx: _Ctx) -> dict[str, Any]:
    from .modules import knn_graph, leiden_modules, module_sizes
    summary = {}
    for name in tqdm(ctx.names, desc="modules", disable=not ctx.progress, leave=False):
        graph = knn_graph(np.asarray(ctx.load(bundle_io.knn_files(name)[0])),
                          np.asarray(ctx.load(bundle_io.knn_files(name)[1])))
        df = pd.DataFrame({"gene": np.arange(graph.vcount(), dtype=np.int32)})
        summary[name] = {}
        for res in ctx.params.resolutions:
            memb = leiden_modules(graph, res, seed=ctx.params.seed)
            df[_res_col(res)] = memb
            sizes = module_sizes(memb)
            summary[name][_res_col(res)] = {"n_modules": len(sizes), "sizes": sizes}
        save_parquet(ctx.work / bundle_io.modules_file(name), df)
    return {"modules": summary}


def _step_enrichment(ctx: _Ctx) -> dict[str, Any]:
    from .enrichment import COLUMNS, enrich_prepared, prepare_library
    p = ctx.params
    symbols = pd.read_parquet(ctx.work / bundle_io.GENES)["symbol"].to_numpy()
    libs = [prepare_library(symbols, refs.load_gmt(q), q.stem, p.min_set_size, p.max_set_size)
            for q in sorted((ctx.work / bundle_io.GMT_DIR).glob("*.gmt"))]
    for name in tqdm(ctx.names, desc="enrichment", disable=not ctx.progress, leave=False):
        mods = pd.read_parquet(ctx.work / bundle_io.modules_file(name))
        frames = [pd.DataFrame({c: [] for c in COLUMNS})]
        for res in p.resolutions:
            for lib in libs:
                frames.append(enrich_prepared(mods[_res_col(res)].to_numpy(), symbols, lib, res, p.top_terms))
        df = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
        df = df.astype({"resolution": "float64", "module": "int32", "library": str, "term": str,
                        "overlap": "int32", "set_size": "int32", "module_size": "int32",
                        "background": "int32", "p": "float64", "q": "float64", "genes": str})
        save_parquet(ctx.work / bundle_io.enrichment_file(name), df)
    return {"libraries": [lib.name for lib in libs]}


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
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


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
    names = list(matrices)
    ctx = _Ctx(work=work, params=params, names=names, references_dir=ref_dir, progress=progress)
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
            for later in bundle_io.STEP_FILES[[n for n, _ in bundle_io.STEP_FILES].index(step):]:
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
        save_parquet(work / bundle_io.GENES, _genes_table(genes, ref_dir))
        for n, m in matrices.items():
            save_npy(work / bundle_io.matrix_file(n), m)
        return {}

    digests = {n: _array_digest(m) for n, m in matrices.items()}
    gene_digest = hashlib.sha256("\n".join(genes["symbol"].astype(str) + "\t" +
                                           genes["ensembl_id"].fillna("").astype(str) + "\t" +
                                           genes.get("support", pd.Series("", index=genes.index)).astype(str)
                                           ).encode()).hexdigest()
    ref_digest = _references_digest(ref_dir)
    run("matrices", {"sha256": digests, "genes_sha256": gene_digest, "references": ref_digest}, write_matrices)
    run("references", {"references_dir": str(ref_dir) if ref_dir else None, "digest": ref_digest},
        lambda: _step_references(ctx))
    run("subspaces", {"method": "centre (and z-score) columns, PCA (eigh of covariance), fitted on the recall "
                                "population, every gene projected",
                      "standardise": {n: params.standardises(n) for n in names}}, lambda: _step_subspaces(ctx))
    run("recall", {k: pdict[k] for k in ("ranks", "n_nulls", "null_size", "full_null", "lower", "upper", "seed")}
        | {"similarity": "cosine"}, lambda: _step_recall(ctx))
    best = json.loads((work / bundle_io.BEST).read_text())
    widths = {n: int(np.load(work / bundle_io.subspace_file(n), mmap_mode="r").shape[1]) for n in names}
    ctx.chosen = choose_ranks(names, widths, params, best)
    for n in names:
        manifest["matrices"][n]["rank"] = ctx.chosen[n]
    run("knn", {"k": params.k, "ranks": ctx.chosen, "metric": "cosine", "exact": True}, lambda: _step_knn(ctx))
    run("umap", {"n_epochs": params.umap_epochs, "min_dist": params.umap_min_dist, "seed": params.seed,
                 "init": "pca", "input": "precomputed exact kNN"}, lambda: _step_umap(ctx))
    run("modules", {"method": "leiden-modularity (igraph)", "resolutions": list(params.resolutions),
                    "n_iterations": 2, "seed": params.seed}, lambda: _step_modules(ctx))
    run("enrichment", {"test": "hypergeometric one-sided", "correction": "benjamini-hochberg",
                       "background": "model genes in the library", "min_set_size": params.min_set_size,
                       "max_set_size": params.max_set_size, "top_terms": params.top_terms},
        lambda: _step_enrichment(ctx))
    if training_metrics is not None:
        run("training", {"rows": int(len(training_metrics)),
                         "sha256": hashlib.sha256(pd.util.hash_pandas_object(training_metrics).values
                                                  .tobytes()).hexdigest()},
            lambda: (save_parquet(work / bundle_io.METRICS, training_metrics), {})[1])
    if not fresh and existing and old.get("files") is not None:
        shutil.rmtree(work)            # nothing changed: keep the finished bundle as it is
        if status is not None:
            status["status"] = "up to date"
        return out
    if status is not None:
        status["status"] = "replaced" if existing else "written"
    return finalise(work, out, manifest)
