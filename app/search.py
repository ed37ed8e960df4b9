"""Gene search: symbols, aliases and Ensembl ids -> matrix rows, with autocomplete and close matches."""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.gene_ids import IdentifierIndex, ensembl_gene_id


@dataclass
class GeneIndex:
    """Gene search over one bundle's gene table: the project's identifier resolver
    (``common.gene_ids.IdentifierIndex``: symbol, Ensembl id with any version, case-insensitive
    symbol, alias; an alias shared by several genes maps to the first in row order) plus
    autocomplete labels.

    Build with :meth:`from_genes`.
    """

    symbols: np.ndarray           # (G,) str, row order
    key_kind: dict[str, str]      # upper-case token -> "symbol" | "ensembl" | "alias"
    display: list[str]            # autocomplete labels, one per searchable token
    display_rows: np.ndarray      # (n_labels,) int, row of each label
    display_upper: np.ndarray     # (n_labels,) unicode, upper-case token of each label
    ids: IdentifierIndex          # the resolver behind lookup()

    @classmethod
    def from_genes(cls, genes: pd.DataFrame) -> "GeneIndex":
        """Index a ``genes.parquet`` table (columns symbol, ensembl_id, aliases; row order = matrix rows)."""
        symbols = genes["symbol"].astype(str).to_numpy()
        n = len(symbols)
        ens = genes["ensembl_id"].fillna("").astype(str).tolist() if "ensembl_id" in genes else [""] * n
        ali = genes["aliases"].fillna("").astype(str).tolist() if "aliases" in genes else [""] * n
        tokens, rows, kinds, labels = [], [], [], []
        for i, sym in enumerate(symbols.tolist()):
            tokens.append(sym.strip()); rows.append(i); kinds.append("symbol"); labels.append(sym)  # noqa: E702
        for i, e in enumerate(ens):
            if e.strip():
                tokens.append(ensembl_gene_id(e) or e.strip()); rows.append(i); kinds.append("ensembl")  # noqa: E702
                labels.append(f"{e.strip()} ({symbols[i]})")
        for i, a in enumerate(ali):
            if a:
                for alias in a.split("|"):
                    alias = alias.strip()
                    if alias:
                        tokens.append(alias); rows.append(i); kinds.append("alias")  # noqa: E702
                        labels.append(f"{alias} (alias of {symbols[i]})")
        upper = [t.upper() for t in tokens]
        # First occurrence wins (symbols, then Ensembl ids, then aliases, each in row order):
        # building the dict from the reversed lists lets earlier entries overwrite later ones.
        first = dict(zip(reversed(upper), range(len(upper) - 1, -1, -1)))
        keep = sorted(i for i in first.values() if upper[i])
        kind = {upper[i]: kinds[i] for i in keep}
        return cls(symbols, kind, [labels[i] for i in keep], np.asarray([rows[i] for i in keep], dtype=np.int64),
                   np.asarray([upper[i] for i in keep], dtype=str), IdentifierIndex(symbols.tolist(), ens, aliases=ali))

    def lookup(self, query: str) -> int | None:
        """Row of a symbol (any case), Ensembl id (version ignored) or alias; None if absent."""
        return self.ids.first(query)

    def label_to_row(self, label: str) -> int | None:
        """Row for an autocomplete label ("TP53", "ENSG... (TP53)", "p53 (alias of TP53)") or a raw token."""
        row = self.lookup(label)
        if row is None and " (" in label:
            row = self.lookup(label.split(" (", 1)[0])
        return row

    def complete(self, prefix: str, limit: int = 20) -> list[str]:
        """Autocomplete labels whose token starts with ``prefix`` (case-insensitive), symbols first, then shorter."""
        p = prefix.strip().upper()
        if not p:
            return []
        hits = np.flatnonzero(np.char.startswith(self.display_upper, p)).tolist()
        order = {"symbol": 0, "ensembl": 1, "alias": 2}
        hits.sort(key=lambda i: (order[self.key_kind[self.display_upper[i]]], len(self.display_upper[i]), self.display_upper[i]))
        return [self.display[i] for i in hits[:limit]]

    def suggest(self, query: str, limit: int = 12) -> list[tuple[str, str]]:
        """Type-ahead answers for a partial query, answered on the server: [(label, symbol)], best first.

        An exact symbol, Ensembl id or alias comes first (labelled with the symbol it resolves to), then
        the genes whose symbol, Ensembl id or alias starts with the query (one entry per gene), and when
        nothing starts with it, the closest symbols ("did you mean").
        """
        q = query.strip()
        if not q:
            return []
        out: dict[str, str] = {}
        row = self.lookup(q)
        if row is not None:
            sym = str(self.symbols[row])
            out[sym] = sym if sym.upper() == q.upper() else f"{q} → {sym}"
        for label in self.complete(q, limit=4 * limit):
            sym = str(self.symbols[self.label_to_row(label)])
            out.setdefault(sym, label)
            if len(out) >= limit:
                break
        if not out:
            for sym in self.close_matches(q, n=min(limit, 5)):
                out[str(sym)] = f"{sym} (did you mean?)"
        return [(label, sym) for sym, label in list(out.items())[:limit]]

    def close_matches(self, query: str, n: int = 5) -> list[str]:
        """Symbols closest to a query that matched nothing (prefix matches first, then difflib similarity)."""
        q = query.strip().upper()
        if not q:
            return []
        out = [self.symbols[r] for r in self.display_rows[np.char.startswith(self.display_upper, q)]]
        upper_symbols = {s.upper(): s for s in self.symbols}
        out += [upper_symbols[m] for m in difflib.get_close_matches(q, list(upper_symbols), n=n, cutoff=0.6)]
        seen: list[str] = []
        for s in out:
            if s not in seen:
                seen.append(s)
        return seen[:n]

    def map_list(self, tokens: list[str]) -> tuple[np.ndarray, list[str]]:
        """Map a user's gene list to rows.

        Args:
            tokens: symbols, aliases or Ensembl ids (any case, duplicates allowed).
        Returns:
            (rows, unmapped): unique rows in first-seen order (int64), and the tokens that matched nothing.
        """
        rows, unmapped, seen = [], [], set()
        for t in tokens:
            r = self.lookup(t)
            if r is None:
                unmapped.append(t)
            elif r not in seen:
                seen.add(r)
                rows.append(r)
        return np.asarray(rows, dtype=np.int64), unmapped


def parse_gene_list(text: str) -> list[str]:
    """Split pasted text (newlines, commas, tabs, spaces or semicolons) into gene tokens.

    A header line such as "gene" or "symbol" in the first position is dropped, so a one-column
    CSV export from this app can be pasted back.
    """
    import re

    tokens = [t for t in re.split(r"[\s,;]+", text) if t]
    if tokens and tokens[0].lower() in {"gene", "genes", "symbol", "symbols", "ensembl_id"}:
        tokens = tokens[1:]
    return tokens
