"""Gene networks (networkx) for the neighbourhood and module pages, and their plotly drawing."""
from __future__ import annotations

import networkx as nx
import numpy as np
import plotly.graph_objects as go

from app.neighbours import PairIndex, similarity_matrix
from app.text import plain


def similarity_graph(unit: np.ndarray, rows: np.ndarray, symbols: np.ndarray, threshold: float,
                     pairs: PairIndex | None = None, centre: int | None = None) -> nx.Graph:
    """Graph over ``rows`` with an edge wherever cosine similarity >= ``threshold``.

    Args:
        unit: (G, r) unit-norm gene vectors at the chosen rank.
        rows: gene rows to include (the centre gene first for an ego network).
        symbols: (G,) gene symbols, used as node ids.
        threshold: minimum cosine for an edge, in [-1, 1].
        pairs: known relationships; an edge that is also a known pair gets ``known=True`` and
            ``sources`` ("|"-joined).
        centre: the query gene's row for an ego network; nodes get ``similarity_to_centre``.
    Returns:
        Undirected graph; node attributes symbol, row, is_centre, and similarity_to_centre for an
        ego network (absent otherwise: no NaN reaches a GraphML file); edge attributes cosine,
        known, sources. All scalar (GraphML-safe).
    """
    rows = np.asarray(rows, dtype=np.int64)
    sims = similarity_matrix(unit, rows)
    known = {}
    if pairs is not None:
        for a, b, src in pairs.pairs_among(rows):
            key = (min(a, b), max(a, b))
            known.setdefault(key, set()).add(src)
    g = nx.Graph()
    centre_sims = unit[rows] @ unit[centre] if centre is not None else None
    for i, r in enumerate(rows):
        extra = {"similarity_to_centre": float(centre_sims[i])} if centre_sims is not None else {}
        g.add_node(str(symbols[r]), symbol=str(symbols[r]), row=int(r), is_centre=bool(r == centre), **extra)
    iu, ju = np.triu_indices(len(rows), k=1)
    keep = sims[iu, ju] >= threshold
    for i, j in zip(iu[keep], ju[keep]):
        a, b = int(rows[i]), int(rows[j])
        src = known.get((min(a, b), max(a, b)), set())
        g.add_edge(str(symbols[a]), str(symbols[b]), cosine=float(sims[i, j]), known=bool(src),
                   sources="|".join(sorted(src)))
    return g


def module_network(unit: np.ndarray, rows: np.ndarray, symbols: np.ndarray, threshold: float,
                   pairs: PairIndex | None, max_genes: int) -> nx.Graph:
    """Similarity graph of a module's genes: all of them, or its ``max_genes`` most central ones (highest
    cosine to the module's mean vector, kept in row order) when it is larger. The graph records what
    it holds (``genes_in_module``, ``genes_in_network``, ``selection``), so a truncated export says so."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) > max_genes:
        centrality = unit[rows] @ unit[rows].mean(axis=0)
        kept = rows[np.sort(np.argsort(-centrality)[:max_genes])]
    else:
        kept = rows
    g = similarity_graph(unit, kept, symbols, threshold, pairs)
    g.graph.update({"edge_threshold": float(threshold), "genes_in_module": int(len(rows)),
                    "genes_in_network": int(len(kept)),
                    "selection": "all genes of the module" if len(kept) == len(rows) else
                    f"the {len(kept)} most central of {len(rows)} genes (highest cosine to the module mean)"})
    return g


def network_figure(g: nx.Graph, title: str = "", seed: int = 0, height: int = 520) -> go.Figure:
    """Plotly drawing of a similarity graph: spring layout (fixed seed), known edges in red.

    Node labels are drawn for graphs of up to 40 genes; larger ones show symbols on hover.
    """
    if g.number_of_nodes() == 0:
        return go.Figure()
    pos = nx.spring_layout(g, seed=seed, weight="cosine")
    fig = go.Figure()
    for known, colour, width, label in ((False, "rgba(150,150,150,0.5)", 1, "similar"),
                                        (True, "rgba(200,60,30,0.9)", 2.5, "similar + known pair")):
        xs, ys = [], []
        for a, b, d in g.edges(data=True):
            if bool(d.get("known")) == known:
                xs += [pos[a][0], pos[b][0], None]
                ys += [pos[a][1], pos[b][1], None]
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=colour, width=width),
                                     hoverinfo="skip", name=label))
    nodes = list(g.nodes(data=True))
    fig.add_trace(go.Scatter(
        x=[pos[n][0] for n, _ in nodes], y=[pos[n][1] for n, _ in nodes],
        mode="markers+text" if len(nodes) <= 40 else "markers",
        text=[plain(n) for n, _ in nodes], textposition="top center", name="genes",
        marker=dict(size=[18 if d.get("is_centre") else 11 for _, d in nodes],
                    color=["#d62728" if d.get("is_centre") else "#1f77b4" for _, d in nodes],
                    line=dict(width=1, color="white")),
        hovertext=[f"{plain(n)}<br>degree {g.degree(n)}" + (
            f"<br>cosine to centre {d['similarity_to_centre']:.3f}" if np.isfinite(d.get("similarity_to_centre", np.nan)) else "")
            for n, d in nodes],
        hoverinfo="text"))
    fig.update_layout(title=title, height=height, showlegend=True, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(visible=False), yaxis=dict(visible=False), plot_bgcolor="white")
    return fig
