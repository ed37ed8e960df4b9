"""Neighbour lookup in a gene subspace, known-relationship marking, and neighbourhood overlap.

Cosine similarity at rank r uses the first r columns of ``subspaces/MATRIX.npy`` (standardised
PCA scores, columns by decreasing variance), each row scaled to unit length. This is the same
quantity precompute used to write ``knn/`` at the matrix's chosen rank.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


def unit_rows(subspace: np.ndarray, rank: int) -> np.ndarray:
    """First ``rank`` columns of a (G, W) subspace with each row scaled to unit L2 norm.

    Args:
        subspace: (G, W) float array (may be a memory map).
        rank: 1 <= rank <= W.
    Returns:
        (G, rank) float32 C-contiguous array; all-zero rows stay zero (similarity 0 to everything).
    """
    if not 1 <= rank <= subspace.shape[1]:
        raise ValueError(f"rank {rank} is outside 1..{subspace.shape[1]} (the subspace width)")
    # Always a private, writable copy: np.ascontiguousarray would hand back the read-only memory map
    # itself when rank == width (already contiguous float32), and the division below writes in place.
    x = np.array(subspace[:, :rank], dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    x[(norms == 0)[:, 0]] = 0.0
    return x


def top_k(unit: np.ndarray, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k rows most cosine-similar to ``row`` (itself excluded).

    Args:
        unit: (G, r) unit-norm rows from :func:`unit_rows`.
        row: query row.
        k: number of neighbours (clipped to G - 1).
    Returns:
        (rows int64 (k,), sims float32 (k,)) sorted by decreasing similarity, ties by row.
    """
    sims = unit @ unit[row]
    sims[row] = -np.inf
    k = min(k, len(sims) - 1)
    part = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
    order = np.lexsort((part, -sims[part]))
    rows = part[order]
    return rows.astype(np.int64), sims[rows].astype(np.float32)


def top_k_precomputed(indices: np.ndarray, sims: np.ndarray, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours read from ``knn/MATRIX.{indices,sims}.npy`` (G, K); returns the first min(k, K)."""
    return np.asarray(indices[row, :k], dtype=np.int64), np.asarray(sims[row, :k], dtype=np.float32)


def similarity_matrix(unit: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(n, n) cosine similarities among ``rows`` of a unit-row matrix."""
    sub = unit[np.asarray(rows)]
    return sub @ sub.T


@dataclass
class PairIndex:
    """Known gene-gene relationships (``references/pairs.parquet``) indexed by matrix row."""

    a: np.ndarray        # (P,) int64 row of gene_a
    b: np.ndarray        # (P,) int64 row of gene_b
    source: np.ndarray   # (P,) int code into ``sources``
    sources: list[str]

    @classmethod
    def from_pairs(cls, pairs: pd.DataFrame, symbols: np.ndarray) -> "PairIndex":
        """Build from a (source, gene_a, gene_b) table; pairs with a gene not in ``symbols`` are dropped."""
        pos = pd.Series(np.arange(len(symbols)), index=pd.Index(symbols)).groupby(level=0).first()
        a = pairs["gene_a"].astype(str).map(pos)
        b = pairs["gene_b"].astype(str).map(pos)
        keep = a.notna() & b.notna()
        codes, uniques = pd.factorize(pairs.loc[keep, "source"].astype(str), sort=True)
        return cls(a[keep].to_numpy(np.int64), b[keep].to_numpy(np.int64), codes.astype(np.int64), list(uniques))

    def partners(self, row: int) -> dict[int, list[str]]:
        """{partner row: sorted list of sources} for every known relationship of ``row``."""
        hit_a = self.a == row
        hit_b = self.b == row
        out: dict[int, set[str]] = {}
        for partner, src in zip(np.concatenate([self.b[hit_a], self.a[hit_b]]),
                                np.concatenate([self.source[hit_a], self.source[hit_b]])):
            out.setdefault(int(partner), set()).add(self.sources[src])
        return {p: sorted(s) for p, s in out.items()}

    def rows_in_source(self, source: str) -> np.ndarray:
        """Sorted unique rows of all genes that take part in at least one pair of ``source``."""
        if source not in self.sources:
            return np.zeros(0, dtype=np.int64)
        m = self.source == self.sources.index(source)
        return np.unique(np.concatenate([self.a[m], self.b[m]]))

    def pairs_among(self, rows: np.ndarray) -> list[tuple[int, int, str]]:
        """(row_a, row_b, source) for every known pair with both genes in ``rows``."""
        s = np.zeros(max(int(self.a.max(initial=0)), int(self.b.max(initial=0)), int(np.max(rows, initial=0))) + 1, bool)
        s[np.asarray(rows, dtype=np.int64)] = True
        m = s[self.a] & s[self.b]
        return [(int(x), int(y), self.sources[c]) for x, y, c in zip(self.a[m], self.b[m], self.source[m])]


def neighbour_table(symbols: np.ndarray, rows: np.ndarray, sims: np.ndarray,
                    known: dict[int, list[str]]) -> pd.DataFrame:
    """A neighbours table: rank, symbol, cosine, known (bool) and sources ("|"-joined)."""
    return pd.DataFrame({
        "rank": np.arange(1, len(rows) + 1),
        "gene": [symbols[r] for r in rows],
        "cosine": np.round(sims.astype(float), 4),
        "known": [r in known for r in rows],
        "sources": ["|".join(known.get(int(r), [])) for r in rows],
    })


