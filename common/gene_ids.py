"""Gene identifiers: the one Ensembl normaliser and the one identifier resolver of every room.

A gene is named by its current symbol (TP53), an Ensembl gene id with or without version
(ENSG00000141510, ENSG00000141510.17, ENSG00000002586.20_PAR_Y), an NCBI Entrez id (7157), a
previous symbol or an alias (P53). ``IdentifierIndex`` resolves any of them against the rows of a
gene table, at the first level of ``LEVELS`` that has a hit:

    symbol (exact) > ensembl (version ignored) > entrez > case-insensitive symbol > previous symbol > alias

and reports every row at that level, so a caller can refuse an ambiguous identifier (building a
corpus: ``data.genes.table.GeneTable.map``) or take the first row (the app's search, mapping a count
file's harmonised symbols onto a checkpoint vocabulary: ``txfm.inference.map_to_vocabulary``).
Standard library only (the ground floor).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

LEVELS = ("symbol", "ensembl", "entrez", "case", "previous_symbol", "alias")

# ENS + optional species code (MUS mouse, RNO rat, DAR zebrafish; none for human) + G + 11 digits,
# then an optional version and the PAR_Y suffix of GENCODE's pseudo-autosomal copies.
_ENSEMBL_GENE = re.compile(r"^(ENS([A-Z]{3,4})?G\d{11})(?:\.\d+)?(?:_PAR_Y)?$", re.IGNORECASE)
_ENTREZ = re.compile(r"^\d+$")


def ensembl_gene_id(identifier: str) -> str | None:
    """'ENSG00000141510.17' -> 'ENSG00000141510', 'ensmusg00000000001.4' -> 'ENSMUSG00000000001';
    None when ``identifier`` is not an Ensembl gene id (transcript ids ENST..., symbols)."""
    m = _ENSEMBL_GENE.match(str(identifier).strip())
    return m.group(1).upper() if m else None


def human_ensembl_id(identifier: str) -> str | None:
    """The unversioned human Ensembl gene id (ENSG...), or None (another species' id, not an id)."""
    m = _ENSEMBL_GENE.match(str(identifier).strip())
    return m.group(1).upper() if m and not m.group(2) else None


def ensembl_species_code(identifier: str) -> str | None:
    """'MUS' for ENSMUSG..., '' for a human ENSG... id, None when not an Ensembl gene id."""
    m = _ENSEMBL_GENE.match(str(identifier).strip())
    return (m.group(2) or "").upper() if m else None


def _names(cell) -> list[str]:
    """One cell of a multi-valued column: a list, or a '|'-joined string ('' or None = none)."""
    if cell is None or cell != cell:          # None or NaN
        return []
    if isinstance(cell, str):
        return [x.strip() for x in cell.split("|") if x.strip()]
    return [str(x).strip() for x in cell if str(x).strip()]


class IdentifierIndex:
    """Rows of a gene table indexed by every identifier that names them.

    Args (one entry per row, in row order; all but ``symbols`` optional):
        symbols: current symbols.
        ensembl: Ensembl gene ids (any version; '' when unknown).
        entrez: Entrez ids.
        previous: previous symbols per row ('|'-joined string or list).
        aliases: aliases per row ('|'-joined string or list).
        other_ensembl: further Ensembl ids of the row's gene (e.g. retired ids), matched at the
            'ensembl' level after the primary ids.
    """

    def __init__(self, symbols: Sequence[str], ensembl: Sequence[str] | None = None,
                 entrez: Sequence[str] | None = None, previous: Sequence | None = None,
                 aliases: Sequence | None = None, other_ensembl: Sequence | None = None):
        self.n = len(symbols)
        self._index: dict[str, dict[str, list[int]]] = {level: {} for level in LEVELS}
        self._other_ensembl: dict[str, list[int]] = {}

        def add(table: dict[str, list[int]], key: str, row: int) -> None:
            if key:
                rows = table.setdefault(key, [])
                if row not in rows:
                    rows.append(row)

        for row, sym in enumerate(symbols):
            sym = "" if sym is None else str(sym).strip()
            add(self._index["symbol"], sym, row)
            add(self._index["case"], sym.upper(), row)
        for level, column in (("previous_symbol", previous), ("alias", aliases)):
            for row, cell in enumerate(column if column is not None else []):
                for name in _names(cell):
                    add(self._index[level], name.upper(), row)
        for row, e in enumerate(ensembl if ensembl is not None else []):
            add(self._index["ensembl"], ensembl_gene_id(e) or "", row)
        for row, cell in enumerate(other_ensembl if other_ensembl is not None else []):
            for e in _names(cell):
                add(self._other_ensembl, ensembl_gene_id(e) or "", row)
        for row, e in enumerate(entrez if entrez is not None else []):
            e = "" if e is None else str(e).strip()
            add(self._index["entrez"], (e.lstrip("0") or "0") if _ENTREZ.match(e) else "", row)

    def resolve(self, identifier) -> tuple[str, list[int]]:
        """(level, rows) at the first level of ``LEVELS`` with a hit; ("", []) when nothing matches.
        An Ensembl-shaped or all-digit identifier is only looked up as an Ensembl or Entrez id."""
        s = "" if identifier is None or identifier != identifier else str(identifier).strip()
        if not s:
            return "", []
        if s in self._index["symbol"]:
            return "symbol", self._index["symbol"][s]
        ens = ensembl_gene_id(s)
        if ens is not None:
            rows = self._index["ensembl"].get(ens) or self._other_ensembl.get(ens, [])
            return ("ensembl", rows) if rows else ("", [])
        if _ENTREZ.match(s):
            rows = self._index["entrez"].get(s.lstrip("0") or "0", [])
            return ("entrez", rows) if rows else ("", [])
        up = s.upper()
        for level in ("case", "previous_symbol", "alias"):
            rows = self._index[level].get(up)
            if rows:
                return level, rows
        return "", []

    def first(self, identifier) -> int | None:
        """The first row ``identifier`` resolves to (row order breaks ambiguity), or None."""
        rows = self.resolve(identifier)[1]
        return rows[0] if rows else None

    def first_rows(self, identifiers: Iterable) -> list[int]:
        """``first`` of each identifier, -1 where nothing matches."""
        out = []
        for q in identifiers:
            r = self.first(q)
            out.append(-1 if r is None else r)
        return out
