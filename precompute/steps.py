"""The steps of a bundle build. Each reads what earlier steps wrote in ``ctx.work``, writes its own
files (``bundle_files.STEP_FILES``) and returns a summary for the manifest; ``pipeline`` runs them."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from common.atomic import atomic_path

from .bundle import files as bundle_files
from . import references as refs
from .bundle.files import save_npy, save_parquet, write_json_atomic
from .params import BundleParams

@dataclass
class StepContext:
    """What every step reads: the staging folder, the parameters, the matrices' names, the chosen ranks."""
    work: Path
    params: BundleParams
    names: list[str]
    references_dir: Path | None
    progress: bool
    chosen: dict[str, int] = field(default_factory=dict)

    def load(self, rel: str) -> np.ndarray:
        return np.load(self.work / rel, mmap_mode="r", allow_pickle=False)


def genes_table(genes: pd.DataFrame, ref_dir: Path | None) -> pd.DataFrame:
    """genes.parquet: row index, symbol, Ensembl id, support, and from the reference gene table (by
    Ensembl id, else symbol) the aliases and previous symbols (what the app's search resolves), the
    official name and the Entrez id (the app's gene cards and their NCBI Gene links)."""
    out = pd.DataFrame({"gene": np.arange(len(genes), dtype=np.int32),
                        "symbol": genes["symbol"].astype(str).to_numpy(),
                        "ensembl_id": genes["ensembl_id"].fillna("").astype(str).to_numpy(),
                        "aliases": "", "name": "", "entrez_id": ""})
    if "support" in genes.columns:  # datasets measuring each gene well: defines the recall population
        out["support"] = genes["support"].to_numpy().astype(np.int32)
    info = refs.load_gene_aliases(ref_dir) if ref_dir is not None else None
    if info is None:
        return out
    if "aliases" in info.columns:
        alias = info["aliases"].astype(str)
        if "previous_symbols" in info.columns:
            alias = (alias + "|" + info["previous_symbols"].astype(str)).str.strip("|")
        info = info.assign(_alias=alias)
    for col, src in (("aliases", "_alias"), ("name", "name"), ("entrez_id", "entrez_id")):
        if src not in info.columns:
            continue
        by_sym = dict(zip(info["symbol"], info[src].astype(str)))
        by_ens = dict(zip(info.get("ensembl_id", pd.Series(dtype=str)), info[src].astype(str)))
        out[col] = [by_ens.get(e) or by_sym.get(s, "") if e else by_sym.get(s, "")
                    for s, e in zip(out.symbol, out.ensembl_id)]
        out[col] = out[col].fillna("").astype(str)
    return out


def references_step(ctx: StepContext) -> dict[str, Any]:
    symbols = pd.read_parquet(ctx.work / bundle_files.GENES)["symbol"]
    if ctx.references_dir is None:
        pairs = pd.DataFrame({"source": [], "gene_a": [], "gene_b": []}, dtype=str)
        libs: dict[str, Path] = {}
    else:
        pairs = refs.load_pairs(ctx.references_dir)
        libs = refs.gmt_files(ctx.references_dir)
    keep = pairs["gene_a"].isin(symbols) & pairs["gene_b"].isin(symbols)
    save_parquet(ctx.work / bundle_files.PAIRS, pairs[keep].reset_index(drop=True))
    (ctx.work / bundle_files.GMT_DIR).mkdir(parents=True, exist_ok=True)
    for name, path in libs.items():
        # a fresh file, never written through: the folder may hold hard links into an existing bundle
        with atomic_path(ctx.work / bundle_files.gmt_file(name)) as tmp:
            shutil.copyfile(path, tmp)
    return {"n_pairs": pairs[keep].groupby("source").size().astype(int).to_dict(),
            "libraries": sorted(libs)}


def subspaces_step(ctx: StepContext) -> dict[str, Any]:
    from .bundle.recall import recall_population
    from .subspaces import pca_scores, spectrum_table
    pop, label = recall_population(pd.read_parquet(ctx.work / bundle_files.GENES))
    tables = []
    for name in tqdm(ctx.names, desc="subspaces", disable=not ctx.progress, leave=False):
        scores, ev = pca_scores(ctx.load(bundle_files.matrix_file(name)), standardise=ctx.params.standardises(name),
                                fit_rows=pop)
        save_npy(ctx.work / bundle_files.subspace_file(name), scores)
        tables.append(spectrum_table(name, ev))
    save_parquet(ctx.work / bundle_files.SPECTRUM, pd.concat(tables, ignore_index=True))
    return {"fitted_on": label, "n_fit_genes": int(pop.size)}


def _sweep(ctx: StepContext, width: int) -> list[int]:
    from .subspaces import rank_sweep
    if ctx.params.ranks is None:
        return rank_sweep(width)
    return sorted({min(r, width) for r in ctx.params.ranks})


def recall_step(ctx: StepContext) -> dict[str, Any]:
    from .bundle.recall import BEST_BY, best_rank, pairs_to_indices, recall_population, recall_sweep, restrict_pairs
    p = ctx.params
    genes = pd.read_parquet(ctx.work / bundle_files.GENES)
    symbols = genes["symbol"].to_numpy()
    pop, label = recall_population(genes)
    pairs = restrict_pairs(pairs_to_indices(pd.read_parquet(ctx.work / bundle_files.PAIRS),
                                                 symbols), pop, len(genes))
    frames, best = [], {}
    for name in tqdm(ctx.names, desc="recall", disable=not ctx.progress, leave=False):
        sub = np.asarray(ctx.load(bundle_files.subspace_file(name)))[pop]
        df = recall_sweep(sub, pairs, _sweep(ctx, sub.shape[1]), n_nulls=p.n_nulls, null_size=p.null_size,
                          lower=p.lower, upper=p.upper, full_null=p.full_null, seed=p.seed)
        df.insert(0, "matrix", name)
        frames.append(df)
    table = pd.concat(frames, ignore_index=True)[
        ["matrix", "rank", "source", "recall_mean", "recall_std", "n_pairs", "chance"]]
    table["population"], table["n_genes"] = label, int(pop.size)
    save_parquet(ctx.work / bundle_files.RECALL, table)
    for name in ctx.names:
        row = best_rank(table[table.matrix == name])
        if row is not None:
            best[name] = {"rank": int(row["rank"]), "recall": float(row.recall_mean), "source": BEST_BY,
                          "population": label, "n_genes": int(pop.size)}
        else:
            best[name] = {"rank": None, "recall": None, "source": BEST_BY, "population": label,
                          "n_genes": int(pop.size)}
    write_json_atomic(ctx.work / bundle_files.BEST, best)
    return {"best": best, "population": label, "n_genes": int(pop.size)}


def knn_step(ctx: StepContext) -> dict[str, Any]:
    from .knn import cosine_knn
    for name in ctx.names:
        sub = np.asarray(ctx.load(bundle_files.subspace_file(name))[:, :ctx.chosen[name]])
        idx, sims = cosine_knn(sub, k=min(ctx.params.k, sub.shape[0] - 1), progress=ctx.progress)
        save_npy(ctx.work / bundle_files.knn_files(name)[0], idx)
        save_npy(ctx.work / bundle_files.knn_files(name)[1], sims)
    return {}


def umap_step(ctx: StepContext) -> dict[str, Any]:
    from .maps import umap_from_knn
    for name in tqdm(ctx.names, desc="umap", disable=not ctx.progress, leave=False):
        sub = np.asarray(ctx.load(bundle_files.subspace_file(name))[:, :ctx.chosen[name]])
        xy = umap_from_knn(sub, np.asarray(ctx.load(bundle_files.knn_files(name)[0])),
                           np.asarray(ctx.load(bundle_files.knn_files(name)[1])),
                           n_epochs=ctx.params.umap_epochs, min_dist=ctx.params.umap_min_dist,
                           seed=ctx.params.seed)
        save_parquet(ctx.work / bundle_files.umap_file(name),
                     pd.DataFrame({"gene": np.arange(len(xy), dtype=np.int32),
                                   "x": xy[:, 0], "y": xy[:, 1]}))
    return {}


def _res_col(res: float) -> str:
    return f"res_{res:g}"


def modules_step(ctx: StepContext) -> dict[str, Any]:
    from .modules import knn_graph, leiden_modules, module_sizes
    summary = {}
    for name in tqdm(ctx.names, desc="modules", disable=not ctx.progress, leave=False):
        graph = knn_graph(np.asarray(ctx.load(bundle_files.knn_files(name)[0])),
                          np.asarray(ctx.load(bundle_files.knn_files(name)[1])))
        df = pd.DataFrame({"gene": np.arange(graph.vcount(), dtype=np.int32)})
        summary[name] = {}
        for res in ctx.params.resolutions:
            memb = leiden_modules(graph, res, seed=ctx.params.seed)
            df[_res_col(res)] = memb
            sizes = module_sizes(memb)
            summary[name][_res_col(res)] = {"n_modules": len(sizes), "sizes": sizes}
        save_parquet(ctx.work / bundle_files.modules_file(name), df)
    return {"modules": summary}


def enrichment_step(ctx: StepContext) -> dict[str, Any]:
    from .bundle.enrichment import COLUMNS, enrich_prepared, prepare_library
    p = ctx.params
    symbols = pd.read_parquet(ctx.work / bundle_files.GENES)["symbol"].to_numpy()
    libs = [prepare_library(symbols, refs.load_gmt(q), q.stem, p.min_set_size, p.max_set_size)
            for q in sorted((ctx.work / bundle_files.GMT_DIR).glob("*.gmt"))]
    for name in tqdm(ctx.names, desc="enrichment", disable=not ctx.progress, leave=False):
        mods = pd.read_parquet(ctx.work / bundle_files.modules_file(name))
        frames = [pd.DataFrame({c: [] for c in COLUMNS})]
        for res in p.resolutions:
            for lib in libs:
                frames.append(enrich_prepared(mods[_res_col(res)].to_numpy(), symbols, lib, res, p.top_terms))
        df = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
        df = df.astype({"resolution": "float64", "module": "int32", "library": str, "term": str,
                        "overlap": "int32", "set_size": "int32", "module_size": "int32",
                        "background": "int32", "p": "float64", "q": "float64", "genes": str})
        save_parquet(ctx.work / bundle_files.enrichment_file(name), df)
    return {"libraries": [lib.name for lib in libs]}
