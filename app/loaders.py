"""Cached loaders and queries every page uses (one copy per server process, keyed by bundle path
and modification time): bundles, gene search indexes, kNN and unit-row matrices, known pairs,
gene-set libraries, bundle tables, neighbour queries and map hover text."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from precompute.bundle.reader import Bundle, BundleError, discover_bundles, open_bundle, validate
from app.evidence import SetIndex
from app.neighbours import PairIndex, top_k, top_k_precomputed, unit_rows
from app.search import GeneIndex
from app.text import plain


# ---- cached resources (one copy per server process) ------------------------------------------
@st.cache_resource(show_spinner=False)
def load_bundle(path: str, mtime: float) -> Bundle:
    """Open and validate a bundle once per server (``mtime`` of its manifest invalidates the cache)."""
    validate(Path(path))
    return open_bundle(Path(path))


@st.cache_resource(show_spinner=False, max_entries=4)
def _folder(root: str, stamp: tuple) -> list[Bundle]:
    out = []
    for p in discover_bundles(Path(root)):
        try:
            out.append(open_bundle(p))
        except (BundleError, OSError, ValueError):
            continue        # a damaged bundle: its own page says why
    return out


def folder_bundles(root: Path) -> list[Bundle]:
    """Every bundle of the folder opened lazily (manifest read, nothing validated or loaded): what the trust
    badges need to find the PCA bundle of the same corpus, cheap enough for every page's request path."""
    paths = discover_bundles(Path(root))
    stamp = tuple((p.name, (p / "manifest.json").stat().st_mtime) for p in paths)
    return _folder(str(Path(root).resolve()), stamp)


def bundle(path: Path) -> Bundle:
    """The cached Bundle for a folder; raises BundleError with the validator's message."""
    mf = Path(path) / "manifest.json"
    return load_bundle(str(Path(path).resolve()), mf.stat().st_mtime if mf.exists() else 0.0)


@st.cache_resource(show_spinner=False)
def gene_index(path: str, mtime: float) -> GeneIndex:
    """Search index over a bundle's symbols, aliases and Ensembl ids."""
    return GeneIndex.from_genes(bundle(Path(path)).genes)


def index_for(b: Bundle) -> GeneIndex:
    """The cached GeneIndex of a bundle."""
    return gene_index(str(b.path), _mtime(b))


@st.cache_resource(show_spinner=False, max_entries=6)
def _unit(path: str, mtime: float, matrix: str, rank: int) -> np.ndarray:
    b = bundle(Path(path))
    checked(path, mtime, f"subspaces/{matrix}.npy")
    return unit_rows(b.subspace(matrix), rank)


@st.cache_resource(show_spinner=False)
def checked(path: str, mtime: float, rel: str) -> bool:
    """Content check of one bundle array, once per server: finite values, and kNN indices that are
    gene rows. A file of the right size with wrong content (NaN similarities) passes the size check of
    the validator; this turns it into a BundleError (one line on the page) instead of a crash later."""
    b = bundle(Path(path))
    a = b._npy(rel)
    p = b.path / rel
    if a.dtype.kind == "f":
        bad = ~np.isfinite(np.asarray(a))
        if bad.any():
            raise BundleError(f"{p}: {int(bad.sum())} non-finite values (NaN or infinity); the file is damaged, "
                              "rebuild the bundle with `python -m precompute run ... --overwrite --force`")
    elif rel.endswith(".indices.npy"):
        arr = np.asarray(a)
        if arr.size and (arr.min() < 0 or arr.max() >= b.n_genes):
            raise BundleError(f"{p}: neighbour indices outside 0..{b.n_genes - 1}; the file is damaged, "
                              "rebuild the bundle with `python -m precompute run ... --overwrite --force`")
    return True


def knn(b: Bundle, matrix: str) -> tuple[np.ndarray, np.ndarray]:
    """The stored kNN of a matrix after its content check (see :func:`checked`)."""
    m = _mtime(b)
    checked(str(b.path), m, f"knn/{matrix}.indices.npy")
    checked(str(b.path), m, f"knn/{matrix}.sims.npy")
    return b.knn(matrix)


def unit(b: Bundle, matrix: str, rank: int) -> np.ndarray:
    """(G, rank) unit-norm gene vectors for cosine similarity at ``rank`` (cached per server)."""
    return _unit(str(b.path), _mtime(b), matrix, rank)


@st.cache_resource(show_spinner=False)
def _pairs(path: str, mtime: float) -> PairIndex:
    b = bundle(Path(path))
    return PairIndex.from_pairs(b.pairs, b.symbols)


def pairs(b: Bundle) -> PairIndex:
    """Known relationships of a bundle indexed by row (cached per server)."""
    return _pairs(str(b.path), _mtime(b))


@st.cache_resource(show_spinner=False)
def _library(path: str, mtime: float) -> dict[str, dict[str, list[str]]]:
    b = bundle(Path(path))
    return {lib: b.gene_sets(lib) for lib in b.gmt_libraries()}


def library(b: Bundle) -> dict[str, dict[str, list[str]]]:
    """A bundle's gene-set libraries, {library: {term: [symbol, ...]}} (cached per server; do not mutate)."""
    return _library(str(b.path), _mtime(b))


@st.cache_resource(show_spinner="Indexing the bundle's gene sets (once per server)…")
def _sets(path: str, mtime: float) -> SetIndex:
    b = bundle(Path(path))
    return SetIndex.from_libraries(_library(path, mtime), b.symbols)


def gene_sets(b: Bundle) -> SetIndex:
    """Which of the bundle's gene sets each gene belongs to, for the sets two genes share (app.evidence;
    built once per server from the libraries of :func:`library`)."""
    return _sets(str(b.path), _mtime(b))


@st.cache_resource(show_spinner=False)
def _table(path: str, mtime: float, what: str, matrix: str) -> pd.DataFrame:
    b = bundle(Path(path))
    return {"umap": b.umap, "modules": b.modules, "enrichment": b.enrichment}[what](matrix)


def table(b: Bundle, what: str, matrix: str) -> pd.DataFrame:
    """A per-matrix table ("umap", "modules" or "enrichment"), read once per server. Do not mutate."""
    return _table(str(b.path), _mtime(b), what, matrix)


def _mtime(b: Bundle) -> float:
    return (b.path / "manifest.json").stat().st_mtime


# ---- cached queries -------------------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=256)
def _neighbours(path: str, mtime: float, matrix: str, rank: int, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    b = bundle(Path(path))
    idx, sims = knn(b, matrix)
    if rank == b.default_rank(matrix) and k <= idx.shape[1]:
        return top_k_precomputed(idx, sims, row, k)
    return top_k(unit(b, matrix, rank), row, k)


def neighbours(b: Bundle, matrix: str, rank: int, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k neighbour rows and cosines of ``row`` at ``rank``: the stored kNN at the bundle's
    chosen rank, otherwise computed from the subspace (cached per query)."""
    return _neighbours(str(b.path), _mtime(b), matrix, int(rank), int(row), int(k))


@st.cache_resource(show_spinner=False, max_entries=8)
def _hover(path: str, mtime: float, matrix: str, resolution: str | None) -> np.ndarray:
    b = bundle(Path(path))
    # Plotly renders an HTML subset (<a href>, <b>) in hover text: gene names from data are escaped.
    safe = np.array([plain(s) for s in b.symbols.astype(str)], dtype=object)
    sym = pd.Series(safe)
    idx, _ = knn(b, matrix)
    nb = pd.DataFrame(safe[np.asarray(idx[:, :3])])
    text = sym.copy()
    names = b.genes["name"].astype(str)
    if (names != "").any():
        text = text + pd.Series(np.where(names != "", " · " + names.map(plain), ""), dtype=object)
    if resolution:
        text = text + "<br>module " + _table(path, mtime, "modules", matrix)[resolution].astype(str).map(plain).reset_index(drop=True)
    joined = nb[0]
    for j in range(1, nb.shape[1]):
        joined = joined + ", " + nb[j]       # column-wise concatenation: 10x faster than a row apply
    text = text + "<br>neighbours: " + joined
    return text.to_numpy(dtype=object)


def hover_text(b: Bundle, matrix: str, resolution: str | None) -> np.ndarray:
    """(G,) hover text per gene: symbol and official name, module at ``resolution`` and the top 3 stored
    neighbours."""
    return _hover(str(b.path), _mtime(b), matrix, resolution)
