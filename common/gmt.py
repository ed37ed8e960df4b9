"""GMT gene-set text (name TAB description TAB gene...): the project's one reader.

Used for the reference libraries (``data.references.tables.load_gmt``), a bundle's
``references/gmt`` (the app) and the app's own GMT exports read back. Standard library only.
"""
from __future__ import annotations

import re

# control characters that can stand inside a line (str.splitlines breaks at \n, \r, \x0b, \x0c, \x1c-\x1e)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x1f]")


def read_gmt_text(text: str, source: str = "GMT") -> list[tuple[str, str, list[str]]]:
    """Parse GMT text into [(name, description, genes)], genes de-duplicated in order.

    The project's one GMT reader (reference libraries, bundles, the app's exports read back). A
    line must be ``name<TAB>description<TAB>gene...`` with a name and at least one gene; control
    characters other than tabs (a binary file) are refused. ``source`` names the file in errors.
    """
    bad = _CONTROL.search(text)       # one scan of the whole text, not a Python loop over characters
    if bad:
        i = len(text[:bad.start()].splitlines()) or 1
        if text[:bad.start()].endswith(("\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e")):
            i += 1
        raise ValueError(f"{source}: line {i} contains control characters; not a GMT text file")
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 3 or not fields[0].strip():
            raise ValueError(f"{source}: line {i} has {len(fields)} tab-separated fields"
                             f"{' and no name' if len(fields) >= 3 else ''}; a GMT line needs name, "
                             f"description and at least one gene")
        genes = list(dict.fromkeys(g.strip() for g in fields[2:] if g.strip()))
        out.append((fields[0], fields[1], genes))
    return out


def gmt_sets(text: str, source: str = "GMT") -> dict[str, list[str]]:
    """GMT text -> {set name: [genes]} (file order; see ``read_gmt_text``)."""
    return {n: g for n, _, g in read_gmt_text(text, source)}
