"""Enrichment of a user's gene list, run with precompute's own test (torch-free import).

``precompute.bundle.enrichment.enrich_membership`` computes the module enrichment stored in bundles:
one-sided hypergeometric p = P[X >= overlap], X ~ Hypergeom(background, set_size, list size),
background = genes that appear in any term of the library, terms restricted to the background
and tested when min_set_size <= size <= max_set_size, Benjamini-Hochberg per library.
The app calls that same function with a two-module partition (1 = the list, 0 = every other
gene), keeps the list's rows, and applies BH over the list's own tests (precompute's family is
all modules x terms of a partition; a single list is a family of its own).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from precompute.bundle.enrichment import bh_qvalues, enrich_membership

ENRICHMENT_COLUMNS = ["library", "term", "overlap", "set_size", "list_size", "background", "p", "q", "genes"]


def enrich_list(genes: list[str], libraries: dict[str, dict[str, list[str]]], universe: list[str] | np.ndarray,
                min_set_size: int = 5, max_set_size: int = 500, progress=None) -> pd.DataFrame:
    """Over-representation of a gene list in every term of every library.

    Args:
        genes: the list's gene symbols (duplicates and genes outside ``universe`` are ignored).
        libraries: {library name: {term: [gene symbol, ...]}}.
        universe: gene symbols that could have been drawn (the bundle's genes, or a user's
            background list); per library the background is the universe genes annotated in it.
        min_set_size, max_set_size: tested term sizes after restriction to the background.
        progress: optional callback(done, total, library name) called before each library.
    Returns:
        DataFrame with ENRICHMENT_COLUMNS, one row per term with overlap >= 1, sorted by p then
        term. ``list_size`` = list genes in the background; ``q`` = BH over the library's tested terms.
    """
    universe = np.asarray(pd.unique(np.asarray(universe, dtype=object)), dtype=object)
    in_list = np.isin(universe, np.asarray(list(genes), dtype=object))
    frames = []
    if not in_list.any():
        return pd.DataFrame({c: [] for c in ENRICHMENT_COLUMNS})
    uni_set = set(universe.tolist())
    membership = in_list.astype(np.int64)      # module 1 = the list, module 0 = the rest
    for i, (name, sets) in enumerate(libraries.items()):
        if progress is not None:
            progress(i, len(libraries), name)
        res = enrich_membership(membership, universe, sets, name, resolution=0.0,
                                min_set_size=min_set_size, max_set_size=max_set_size, top_terms=len(sets) + 1)
        res = res[res["module"] == 1]
        if res.empty:
            continue
        sizes = np.array([len(uni_set.intersection(g)) for g in sets.values()])
        n_tested = int(((sizes >= min_set_size) & (sizes <= max_set_size)).sum())
        # Terms the list does not touch have p = 1; they still count in the family.
        p_all = np.concatenate([res["p"].to_numpy(), np.ones(n_tested - len(res))])
        res = res.assign(q=bh_qvalues(p_all)[: len(res)])
        frames.append(res)
    if not frames:
        return pd.DataFrame({c: [] for c in ENRICHMENT_COLUMNS})
    out = pd.concat(frames, ignore_index=True).rename(columns={"module_size": "list_size"})
    return out[ENRICHMENT_COLUMNS].sort_values(["p", "term"], kind="stable").reset_index(drop=True)
