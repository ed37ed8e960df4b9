"""Exports of gene lists and networks: CSV, GMT, GraphML (Cytoscape) and a JSON view description.

Every function returns bytes so Streamlit can hand them to ``st.download_button`` lazily.
"""
from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import networkx as nx
import numpy as np
import pandas as pd

from common.spreadsheet import safe_frame, safe_cell


def table_csv(df: pd.DataFrame) -> bytes:
    """A table as UTF-8 CSV without the index; text cells a spreadsheet would run as a formula
    (``=HYPERLINK(...)`` as a gene name) are neutralised with a leading quote (OWASP)."""
    return safe_frame(df).to_csv(index=False).encode("utf-8")


def _clean_gmt_field(s: str) -> str:
    # tabs/newlines would break the GMT line; a formula-like name is neutralised (GMT files are
    # often opened in a spreadsheet)
    return safe_cell(" ".join(str(s).split()))


def gmt_bytes(sets: dict[str, list[str]], descriptions: dict[str, str] | None = None) -> bytes:
    """GMT text: one line per set, ``name<TAB>description<TAB>gene<TAB>gene...``.

    Args:
        sets: {set name: genes in order}; names and genes have whitespace collapsed.
        descriptions: optional {set name: description}; default "TxFM export".
    """
    descriptions = descriptions or {}
    lines = []
    for name, genes in sets.items():
        fields = [_clean_gmt_field(name), _clean_gmt_field(descriptions.get(name, "TxFM export"))]
        fields += [_clean_gmt_field(g) for g in genes]
        lines.append("\t".join(fields))
    return ("\n".join(lines) + "\n").encode("utf-8")


def _scalar(v):
    """GraphML only carries scalars: numpy scalars -> Python, lists -> '|'-joined strings, None -> ''."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple, set, np.ndarray)):
        return "|".join(str(x) for x in v)
    if v is None:
        return ""
    return v


def graphml_bytes(g: nx.Graph) -> bytes:
    """GraphML that Cytoscape opens: node ids are gene symbols, every attribute a scalar.

    Attributes that are lists become "|"-joined strings; numpy scalars become Python ones.
    """
    h = nx.Graph() if not g.is_directed() else nx.DiGraph()
    h.graph.update({k: _scalar(v) for k, v in g.graph.items()})
    for n, d in g.nodes(data=True):
        h.add_node(str(n), **{k: _scalar(v) for k, v in d.items()})
    for a, b, d in g.edges(data=True):
        h.add_edge(str(a), str(b), **{k: _scalar(v) for k, v in d.items()})
    buf = io.BytesIO()
    nx.write_graphml(h, buf, encoding="utf-8", prettyprint=True)
    return buf.getvalue()


def view_json(page: str, bundle: str, params: dict, genes: list[str] | None = None, extra: dict | None = None) -> bytes:
    """A JSON description of the current view so it can be reproduced or cited.

    Args:
        page: page name ("Gene neighbourhood", ...).
        bundle: bundle folder name (and its checkpoint hash in ``extra`` when known).
        params: the view's parameters (gene, k, threshold, matrix, rank, ...).
        genes: the gene list shown, if any.
        extra: anything else worth recording (e.g. the bundle manifest's source block).
    """
    doc = {
        "format": "txfm-app-view", "format_version": 1,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "page": page, "bundle": bundle,
        "params": {k: _scalar(v) for k, v in params.items()},
        "genes": list(genes or []),
    }
    if extra:
        doc.update(extra)
    return json.dumps(doc, indent=2, default=str).encode("utf-8")
