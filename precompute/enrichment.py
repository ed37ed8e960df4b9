"""Module enrichment against gene set libraries: one-sided hypergeometric test + Benjamini-Hochberg."""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import hypergeom

COLUMNS = ["resolution", "module", "library", "term", "overlap", "set_size", "module_size",
           "background", "p", "q", "genes"]


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (step-up, monotone, capped at 1) for a 1-D array of p-values."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="mergesort")
    ranked = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


def enrich_membership(membership: np.ndarray, symbols: list[str] | np.ndarray,
                      library: dict[str, list[str]], library_name: str, resolution: float,
                      min_set_size: int = 5, max_set_size: int = 500,
                      top_terms: int = 10) -> pd.DataFrame:
    """Enrichment of every module of one partition against one gene set library.

    Background = the model's genes that appear in any term of the library. Terms are
    restricted to the background; a term is tested when min_set_size <= its restricted size
    <= max_set_size. For module m and term t: p = P[X >= overlap] with
    X ~ Hypergeom(background, set_size, module_size) (one-sided Fisher). q-values: BH over all
    module x term tests of this partition and library. Returns the `top_terms` smallest-p
    terms with overlap >= 1 per module, columns as in the bundle contract.

    Args:
        membership: (G,) int module id per gene (row order of `symbols`).
    """
    symbols = np.asarray(symbols, dtype=object)
    pos = {s: i for i, s in enumerate(symbols)}
    in_lib = np.zeros(len(symbols), dtype=bool)
    term_names, term_rows = [], []
    for term, genes in library.items():
        rows = sorted({pos[g] for g in genes if g in pos})
        if rows:
            in_lib[rows] = True
        term_names.append(term)
        term_rows.append(rows)
    bg_rows = np.nonzero(in_lib)[0]
    background = int(bg_rows.size)
    sizes = np.array([len(r) for r in term_rows], dtype=np.int64)
    tested = np.nonzero((sizes >= min_set_size) & (sizes <= max_set_size))[0]
    if background == 0 or tested.size == 0:
        return pd.DataFrame({c: [] for c in COLUMNS})
    col_of = -np.ones(len(symbols), dtype=np.int64)
    col_of[bg_rows] = np.arange(background)
    # T: background genes x tested terms (0/1); M: modules x background genes (0/1)
    t_i = np.concatenate([col_of[term_rows[t]] for t in tested])
    t_j = np.concatenate([np.full(sizes[t], j) for j, t in enumerate(tested)])
    T = sp.csr_matrix((np.ones(t_i.size, np.int32), (t_i, t_j)), shape=(background, tested.size))
    memb_bg = np.asarray(membership)[bg_rows]
    n_mod = int(np.asarray(membership).max()) + 1
    M = sp.csr_matrix((np.ones(background, np.int32), (memb_bg, np.arange(background))),
                      shape=(n_mod, background))
    overlap = (M @ T).toarray()                                      # (modules, tested terms)
    mod_size = np.bincount(memb_bg, minlength=n_mod)
    set_size = sizes[tested]
    present = mod_size > 0
    overlap, mod_idx = overlap[present], np.nonzero(present)[0]
    p = np.ones(overlap.shape)
    hit = overlap > 0
    mi, tj = np.nonzero(hit)
    p[mi, tj] = hypergeom.sf(overlap[mi, tj] - 1, background, set_size[tj], mod_size[mod_idx[mi]])
    q = bh_qvalues(p.ravel()).reshape(p.shape)
    rows = []
    for r, m in enumerate(mod_idx):
        cand = np.nonzero(hit[r])[0]
        if cand.size == 0:
            continue
        best = cand[np.lexsort((cand, p[r, cand]))][:top_terms]
        members = set(bg_rows[memb_bg == m].tolist())
        for j in best:
            t = tested[j]
            genes = [symbols[i] for i in term_rows[t] if i in members]
            rows.append((float(resolution), int(m), library_name, term_names[t], int(overlap[r, j]),
                         int(set_size[j]), int(mod_size[m]), background, float(p[r, j]),
                         float(q[r, j]), "|".join(genes)))
    return pd.DataFrame(rows, columns=COLUMNS)
