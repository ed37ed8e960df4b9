"""Why two genes are related: the named gene sets both belong to (CORUM complexes, Reactome pathways,
Hallmark and GO BP terms, ...), beside the reference lists that hold the pair (``PairIndex``,
app.neighbours).

Everything comes from what a bundle already holds: its gene-set libraries (``references/gmt/``) and its
known pairs (``references/pairs.parquet``). :class:`SetIndex` is built once per bundle (the app caches it
per server): the sets of every library are numbered in display order (smallest set first, then library,
then name), and each gene row keeps the sorted numbers of the sets it belongs to, so the sets two genes
share are the intersection of two short sorted arrays, already in display order. A gene query asks for
its k neighbours (and its known partners) at once: a few milliseconds.

A set's size is its number of genes in the library (not only those in the bundle); the smallest sets are
the most specific statements ("both in the 26S proteasome" says more than "both in protein metabolism").
Texts here are plain text: the pages escape them for Markdown (app.text.esc) or Plotly (app.text.plain).
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd

# The libraries the users ask for first: protein complexes, pathways, hallmark programmes and GO
# biological processes. Used by default when a bundle has any of them; otherwise every library it has.
DEFAULT_LIBRARIES = ("CORUM_complexes", "MSigDB_Reactome", "MSigDB_Hallmark", "GO_BP")
SHOWN = 3           # shared sets named per pair; the rest are counted
SEP = " | "         # between the named sets of one pair (no library's set names contain "|")


def default_libraries(available) -> list[str]:
    """The DEFAULT_LIBRARIES among ``available`` (a bundle's libraries), or all of them when it has none."""
    mine = [lib for lib in DEFAULT_LIBRARIES if lib in list(available)]
    return mine or list(available)


def library_label(library: str) -> str:
    """A library's short name for the evidence text: MSigDB_Reactome -> Reactome, CORUM_complexes -> CORUM,
    GO_BP -> GO BP."""
    s = library[len("MSigDB_"):] if library.startswith("MSigDB_") else library
    s = s[: -len("_complexes")] if s.endswith("_complexes") else s
    return s.replace("_", " ")


@dataclass
class SetIndex:
    """Gene-set membership of a bundle's genes, for the sets two genes share."""

    libraries: list[str]     # library names; ``lib`` codes index this list
    lib: np.ndarray          # (S,) int library code of each set; sets numbered in display order
    term: np.ndarray         # (S,) object: set names
    size: np.ndarray         # (S,) int: genes in the set (in the library, not only in the bundle)
    indptr: np.ndarray       # (G + 1,) int64: gene row g's sets are members[indptr[g]:indptr[g + 1]]
    members: np.ndarray      # (nnz,) int32 set numbers, ascending within each gene row

    @classmethod
    def from_libraries(cls, libraries: dict[str, dict[str, list[str]]], symbols) -> "SetIndex":
        """Index ``{library: {set name: [symbol, ...]}}`` over the bundle's genes (``symbols``, in row order).

        Set members that are not bundle genes count in the set's size but are not indexed; a symbol
        that appears twice in the bundle is indexed at its first row (as PairIndex does)."""
        symbols = np.asarray(symbols, dtype=object)
        names = sorted(libraries)
        lib_code, term, size, flat, owner = [], [], [], [], []
        for code, name in enumerate(names):
            for t, genes in libraries[name].items():
                genes = list(dict.fromkeys(genes))
                owner.append(np.full(len(genes), len(term), dtype=np.int64))
                flat.extend(genes)
                lib_code.append(code)
                term.append(str(t))
                size.append(len(genes))
        lib_code, size = np.asarray(lib_code, dtype=np.int64), np.asarray(size, dtype=np.int64)
        term = np.asarray(term, dtype=object)
        # display order: smallest set first, then library (sorted name), then set name
        order = np.lexsort((term.astype(str), lib_code, size)) if len(term) else np.zeros(0, dtype=np.int64)
        number = np.empty(len(order), dtype=np.int64)
        number[order] = np.arange(len(order))
        first_row = pd.Series(np.arange(len(symbols)), index=pd.Index(symbols)).groupby(level=0).first()
        rows = pd.Index(first_row.index).get_indexer(pd.Index(flat, dtype=object)) if flat else np.zeros(0, np.int64)
        rows = np.where(rows >= 0, first_row.to_numpy()[np.maximum(rows, 0)], -1)
        sets = number[np.concatenate(owner)] if owner else np.zeros(0, dtype=np.int64)
        keep = rows >= 0
        rows, sets = rows[keep], sets[keep]
        n = max(len(order), 1)
        pair = np.sort(rows * n + sets)                             # by row, then set number
        pair = pair[np.r_[True, pair[1:] != pair[:-1]]] if len(pair) else pair
        rows, sets = pair // n, pair % n
        indptr = np.zeros(len(symbols) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(symbols)), out=indptr[1:])
        return cls(names, lib_code[order], term[order], size[order], indptr, sets.astype(np.int32))

    # ---- queries ------------------------------------------------------------------------------
    def default_libraries(self) -> list[str]:
        """The libraries evidence uses unless the user picks others (:func:`default_libraries`)."""
        return default_libraries(self.libraries)

    def sets_of(self, row: int) -> np.ndarray:
        """Set numbers (display order) that gene ``row`` belongs to."""
        return self.members[self.indptr[row]:self.indptr[row + 1]]

    def _allowed(self, libraries) -> np.ndarray | None:
        if libraries is None:
            return None
        codes = [self.libraries.index(x) for x in libraries if x in self.libraries]
        return np.isin(np.arange(len(self.libraries)), codes)

    def shared(self, a: int, b: int, libraries=None) -> np.ndarray:
        """Numbers of the sets holding both genes ``a`` and ``b``, in display order (smallest first);
        ``libraries``: only those libraries (None = all)."""
        s = np.intersect1d(self.sets_of(int(a)), self.sets_of(int(b)), assume_unique=True)
        allowed = self._allowed(libraries)
        return s if allowed is None else s[allowed[self.lib[s]]]

    def shared_with(self, a: int, others, libraries=None) -> list[np.ndarray]:
        """For each row of ``others``, the sets it shares with gene ``a`` (display order)."""
        mine = np.zeros(len(self.term), dtype=bool)
        mine[self.sets_of(int(a))] = True
        allowed = self._allowed(libraries)
        if allowed is not None:
            mine &= allowed[self.lib]
        out = []
        for b in others:
            s = self.sets_of(int(b))
            out.append(s[mine[s]])
        return out

    def describe(self, sets: np.ndarray, shown: int = SHOWN) -> str:
        """Plain text naming the first ``shown`` sets ("CORUM: 26S proteasome (34 genes)"), joined by " | ",
        and a count of the rest; "" for none."""
        parts = [f"{library_label(self.libraries[self.lib[s]])}: {self.term[s]} ({int(self.size[s])} genes)"
                 for s in sets[:shown]]
        if len(sets) > shown:
            parts.append(f"and {len(sets) - shown} more")
        return SEP.join(parts)

    def evidence(self, a: int, others, libraries=None, shown: int = SHOWN) -> pd.DataFrame:
        """One row per gene of ``others``: ``shared_sets`` (how many sets it shares with gene ``a``) and
        ``evidence`` (the smallest of them named, see :func:`describe`)."""
        found = self.shared_with(a, others, libraries)
        return pd.DataFrame({"shared_sets": np.array([len(s) for s in found], dtype=np.int64),
                             "evidence": [self.describe(s, shown) for s in found]})


def annotate_edges(g: nx.Graph, index: SetIndex, libraries=None, shown: int = SHOWN) -> nx.Graph:
    """Give every edge of a similarity graph (nodes carry ``row``) its evidence: ``shared_sets`` (int) and
    ``evidence`` (text), beside the ``known``/``sources`` it already has. Returns ``g`` (changed in place)."""
    for a in g.nodes:                               # one gene against all its neighbours at a time
        others = [b for b in g.adj[a] if "evidence" not in g.edges[a, b]]
        found = index.shared_with(g.nodes[a]["row"], [g.nodes[b]["row"] for b in others], libraries)
        for b, s in zip(others, found):
            g.edges[a, b].update(shared_sets=int(len(s)), evidence=index.describe(s, shown))
    return g
