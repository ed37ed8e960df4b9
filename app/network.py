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
                   pairs: PairIndex | None, max_genes: int, mark: int | None = None) -> nx.Graph:
    """Similarity graph of a module's genes: all of them, or its ``max_genes`` most central ones (highest
    cosine to the module's mean vector, kept in row order) when it is larger. The graph records what
    it holds (``genes_in_module``, ``genes_in_network``, ``selection``), so a truncated export says so.
    ``mark``: the user's gene when it is in the module: always kept, drawn as the centre (is_centre)."""
    rows = np.asarray(rows, dtype=np.int64)
    mark = mark if mark is not None and mark in set(rows.tolist()) else None
    if len(rows) > max_genes:
        centrality = unit[rows] @ unit[rows].mean(axis=0)
        if mark is not None:
            centrality[rows == mark] = np.inf                   # the user's gene is always in the network
        kept = rows[np.sort(np.argsort(-centrality)[:max_genes])]
    else:
        kept = rows
    g = similarity_graph(unit, kept, symbols, threshold, pairs, centre=mark)
    g.graph.update({"edge_threshold": float(threshold), "genes_in_module": int(len(rows)),
                    "genes_in_network": int(len(kept)),
                    "selection": "all genes of the module" if len(kept) == len(rows) else
                    f"the {len(kept)} most central of {len(rows)} genes (highest cosine to the module mean)"})
    return g


def network_figure(g: nx.Graph, title: str = "", seed: int = 0, height: int = 520) -> go.Figure:
    """Plotly drawing of a similarity graph: spring layout (fixed seed), known edges in red.

    Every node of a graph of up to 40 genes is labelled; in a larger one the marked gene and the 25
    best connected (all symbols on hover). The marked gene (``is_centre``) is its own red legend entry.
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
    # Labels: every gene of a small graph; in a large one the marked gene and the 25 best connected
    # (a label per node of a 60-gene module would be unreadable).
    if len(nodes) <= 40:
        labelled = {n for n, _ in nodes}
    else:
        by_degree = sorted(g.degree, key=lambda nd: (-nd[1], nd[0]))
        labelled = {n for n, _ in by_degree[:25]} | {n for n, d in nodes if d.get("is_centre")}
    # The marked gene and the others as separate traces, so each legend swatch has its nodes' colour.
    for centre, colour, size, label in ((False, "#1f77b4", 11, "genes"), (True, "#d62728", 18, "your gene")):
        part = [(n, d) for n, d in nodes if bool(d.get("is_centre")) == centre]
        if not part:
            continue
        fig.add_trace(go.Scatter(
            x=[pos[n][0] for n, _ in part], y=[pos[n][1] for n, _ in part], mode="markers+text",
            text=[plain(n) if n in labelled else "" for n, _ in part], textposition="top center", name=label,
            marker=dict(size=size, color=colour, line=dict(width=1, color="white")),
            hovertext=[f"{plain(n)}<br>degree {g.degree(n)}" + (
                f"<br>cosine to centre {d['similarity_to_centre']:.3f}"
                if np.isfinite(d.get("similarity_to_centre", np.nan)) else "") for n, d in part],
            hoverinfo="text"))
    fig.update_layout(title=title, height=height, showlegend=True, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(visible=False), yaxis=dict(visible=False), plot_bgcolor="white")
    return fig
