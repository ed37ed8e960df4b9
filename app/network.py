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


def central_rows(unit: np.ndarray, rows: np.ndarray, n: int, mark: int | None = None) -> np.ndarray:
    """``rows`` when there are at most ``n``, else the ``n`` most central of them (highest cosine to their mean
    vector), in row order; ``mark`` (the user's gene), when among them, is always kept."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) <= n:
        return rows
    centrality = unit[rows] @ unit[rows].mean(axis=0)
    if mark is not None:
        centrality[rows == mark] = np.inf                   # the user's gene is always in the selection
    return rows[np.sort(np.argsort(-centrality)[:n])]


def module_network(unit: np.ndarray, rows: np.ndarray, symbols: np.ndarray, threshold: float,
                   pairs: PairIndex | None, max_genes: int, mark: int | None = None) -> nx.Graph:
    """Similarity graph of a module's genes: all of them, or its ``max_genes`` most central ones (highest
    cosine to the module's mean vector, kept in row order) when it is larger. The graph records what
    it holds (``genes_in_module``, ``genes_in_network``, ``selection``), so a truncated export says so.
    ``mark``: the user's gene when it is in the module: always kept, drawn as the centre (is_centre)."""
    rows = np.asarray(rows, dtype=np.int64)
    mark = mark if mark is not None and mark in set(rows.tolist()) else None
    kept = central_rows(unit, rows, max_genes, mark)
    g = similarity_graph(unit, kept, symbols, threshold, pairs, centre=mark)
    g.graph.update({"edge_threshold": float(threshold), "genes_in_module": int(len(rows)),
                    "genes_in_network": int(len(kept)),
                    "selection": "all genes of the module" if len(kept) == len(rows) else
                    f"the {len(kept)} most central of {len(rows)} genes (highest cosine to the module mean)"})
    return g


# ---- drawing: a fixed pixel frame, so labels can be placed where they overlap nothing --------------
WIDTH, HEIGHT = 720, 600                        # the figure, in CSS pixels (drawn at this size, not stretched)
MARGIN = dict(l=10, r=10, t=64, b=10)           # the title and the legend sit in the top margin
LABEL_FONT = "DejaVu Sans Mono, Menlo, Consolas, Courier New, monospace"   # every monospace font: <= 0.61 em
LABEL_SIZE, CENTRE_LABEL_SIZE = 11, 13          # px
NODE_SIZE, CENTRE_SIZE = 11, 18                 # marker diameters, px
MAX_LABELS = 40                                 # a label per node up to this many; beyond, the first by priority
LABEL_GAP = 3                                   # px kept free between two labels and between a label and a node


def text_box(text: str, size: float) -> tuple[float, float]:
    """(width, height) in px that a label in LABEL_FONT at ``size`` px fits in: monospace fonts advance
    0.55-0.61 em per character (wide East Asian characters, drawn by a fallback font, about 1 em) and
    their ascent plus descent is below 1.2 em; the estimate errs on the large side."""
    import unicodedata
    em = sum(1.1 if unicodedata.east_asian_width(ch) in "WF" else 0.62 for ch in str(text))
    return em * size + 2.0, 1.3 * size


def ego_positions(unit: np.ndarray, rows: np.ndarray, width: float, height: float) -> np.ndarray:
    """Pixel positions (n, 2) in a ``width`` x ``height`` frame (y up) for an ego network: ``rows[0]`` (the
    query gene) in the middle, every neighbour at a distance that grows as its cosine to the query falls
    (the nearest on the inner ring, the farthest on the outer one, linear in between) and at an angle
    given by the neighbours' own similarity (the first two principal directions of their vectors after
    the query's direction is removed), so that similar neighbours sit side by side. Angles are then
    spread halfway towards even spacing, and nodes closer than a marker apart are pushed apart."""
    rows = np.asarray(rows, dtype=np.int64)
    centre = np.array([width / 2, height / 2])
    out = np.tile(centre, (len(rows), 1)).astype(float)
    n = len(rows) - 1
    if n <= 0:
        return out
    c = np.asarray(unit[rows[0]], dtype=np.float64)
    v = np.asarray(unit[rows[1:]], dtype=np.float64)
    cos = v @ c
    w = v - np.outer(cos, c)
    w = w - w.mean(axis=0)
    if n >= 3 and np.abs(w).max() > 0:
        _, _, vt = np.linalg.svd(w, full_matrices=False)
        xy = w @ vt[:2].T
        if xy.shape[1] < 2:                                                     # a rank-1 subspace
            xy = np.c_[xy, np.zeros(n)]
        xy *= np.where(xy[np.argmax(np.abs(xy), axis=0), [0, 1]] < 0, -1, 1)   # a fixed sign per axis
        theta = np.arctan2(xy[:, 1], xy[:, 0])
    else:
        theta = np.arange(n) * 2 * np.pi / n
    order = np.argsort(theta, kind="stable")
    even = 2 * np.pi * np.arange(n) / n
    shift = np.angle(np.mean(np.exp(1j * (theta[order] - even))))               # even spacing, rotated to fit
    dev = np.angle(np.exp(1j * (theta[order] - even - shift)))
    spread = np.empty(n)
    spread[order] = even + shift + dev / 2
    span = cos.max() - cos.min()
    rho = 0.3 + 0.7 * ((cos.max() - cos) / span if span > 1e-9 else np.full(n, 0.7))
    rx, ry = width / 2 - 90, height / 2 - 40        # room outside the outer ring for a label
    out[1:, 0] = centre[0] + rx * rho * np.cos(spread)
    out[1:, 1] = centre[1] + ry * rho * np.sin(spread)
    return np.clip(_push_apart(out, NODE_SIZE + 4, fixed=0), NODE_SIZE, [width - NODE_SIZE, height - NODE_SIZE])


def _push_apart(pos: np.ndarray, gap: float, fixed: int | None = None, steps: int = 60) -> np.ndarray:
    """Move points closer than ``gap`` apart away from each other (a few relaxation steps); ``fixed``: one
    point that stays where it is."""
    pos = pos.copy()
    for _ in range(steps):
        d = pos[:, None, :] - pos[None, :, :]
        dist = np.hypot(d[..., 0], d[..., 1])
        np.fill_diagonal(dist, np.inf)
        close = dist < gap
        if not close.any():
            break
        near = np.where(close, dist, gap)                     # the far (and the diagonal's inf) push nothing
        push = np.where(close, (gap - near) / 2 / np.maximum(near, 1e-6), 0.0)
        same = dist < 1e-6                                   # coincident points: apart along a fixed direction
        step = (d * push[..., None]).sum(axis=1) + same.sum(axis=1)[:, None] * np.array([0.5, 0.3])
        if fixed is not None:
            step[fixed] = 0
        pos += step
    return pos


def frame_positions(pos: dict, width: float, height: float, pad_x: float = 80, pad_y: float = 30) -> dict:
    """A layout in any units (networkx's) scaled into a ``width`` x ``height`` pixel frame, keeping its aspect
    and leaving ``pad_x``/``pad_y`` px free at the sides for labels."""
    names = list(pos)
    xy = np.array([pos[n] for n in names], dtype=float).reshape(len(names), 2)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    scale = min((width - 2 * pad_x) / max(hi[0] - lo[0], 1e-9), (height - 2 * pad_y) / max(hi[1] - lo[1], 1e-9))
    xy = (xy - (lo + hi) / 2) * scale + np.array([width / 2, height / 2])
    xy = np.clip(_push_apart(xy, NODE_SIZE + 2), NODE_SIZE, [width - NODE_SIZE, height - NODE_SIZE])
    return {n: xy[i] for i, n in enumerate(names)}


def place_labels(points: np.ndarray, texts: list[str], sizes: list[float], radii: np.ndarray, outward: np.ndarray,
                 width: float, height: float, labelled: list[int]) -> dict[int, tuple[float, float, float, float]]:
    """Where to draw each label so that no two labels overlap and no label covers a node.

    Args:
        points: (n, 2) node positions in px (y up); radii: (n,) their marker radii in px.
        texts, sizes: each node's label and font size (px).
        outward: (n, 2) the preferred direction of each label (away from the middle).
        width, height: the frame; a label stays inside it.
        labelled: the nodes to label, most important first (a node that finds no free place is left
            unlabelled: its name is still in its hover).
    Returns:
        {node: (x, y, box width, box height)}, the label's centre and its box, in px.
    """
    obstacles = np.c_[points - radii[:, None], points + radii[:, None]]            # x0, y0, x1, y1 of every node
    placed: list[np.ndarray] = []
    out = {}
    angles = np.deg2rad(np.arange(0, 360, 22.5))
    gaps = np.array([2, 8, 16, 26, 38, 52, 70], dtype=float)
    for i in labelled:
        w, h = text_box(texts[i], sizes[i])
        o = outward[i] / (np.hypot(*outward[i]) or 1.0)
        # every candidate at once, in the order tried: the nearest gap first, within it the angle nearest outward
        a = angles[np.argsort(-(np.cos(angles) * o[0] + np.sin(angles) * o[1]), kind="stable")]
        ca, sa = np.tile(np.cos(a), len(gaps)), np.tile(np.sin(a), len(gaps))
        gap = np.repeat(gaps, len(a))
        x = points[i, 0] + ca * (radii[i] + gap + w / 2)
        y = points[i, 1] + sa * (radii[i] + gap + h / 2)
        cand = np.c_[x - w / 2, y - h / 2, x + w / 2, y + h / 2]                    # (c, 4)
        boxes = np.concatenate([obstacles, np.array(placed).reshape(-1, 4)])
        g = LABEL_GAP
        hit = ((boxes[None, :, 0] - g < cand[:, None, 2]) & (cand[:, None, 0] < boxes[None, :, 2] + g)
               & (boxes[None, :, 1] - g < cand[:, None, 3]) & (cand[:, None, 1] < boxes[None, :, 3] + g)).any(axis=1)
        inside = (cand[:, 0] >= 0) & (cand[:, 1] >= 0) & (cand[:, 2] <= width) & (cand[:, 3] <= height)
        ok = np.flatnonzero(inside & ~hit)
        if len(ok):
            c = ok[0]
            out[i] = (float(x[c]), float(y[c]), w, h)
            placed.append(cand[c])
    return out


def network_figure(g: nx.Graph, title: str = "", seed: int = 0, pos: dict | None = None,
                   width: int = WIDTH, height: int = HEIGHT, label_order: list | None = None) -> go.Figure:
    """Plotly drawing of a similarity graph in a fixed ``width`` x ``height`` px figure: known edges in red
    (hover: the pair, its sources and its evidence when the graph carries them), the marked gene
    (``is_centre``) large, red and its own legend entry, and labels that overlap nothing
    (:func:`place_labels`).

    Args:
        pos: node positions in px of the plot area (y up; e.g. :func:`ego_positions`); default a spring
            layout (fixed seed) scaled into it.
        label_order: nodes to label, most important first (at most MAX_LABELS); default the marked gene,
            then by degree. The figure's ``meta`` records how many labels were asked for and drawn.
    """
    if g.number_of_nodes() == 0:
        return go.Figure()
    pw, ph = width - MARGIN["l"] - MARGIN["r"], height - MARGIN["t"] - MARGIN["b"]
    if pos is None:
        pos = frame_positions(nx.spring_layout(g, seed=seed, weight="cosine"), pw, ph)
    # Traces as plain dicts, made into one figure at the end: plotly validates a figure built at once several
    # times faster than one grown trace by trace.
    traces = []
    for known, colour, lw, label in ((False, "rgba(150,150,150,0.5)", 1, "similar"),
                                     (True, "rgba(200,60,30,0.9)", 2.5, "similar + known pair")):
        ends = [(pos[a], pos[b]) for a, b, d in g.edges(data=True) if bool(d.get("known")) == known]
        if ends:             # segments as one float array with NaN gaps (numpy arrays skip plotly's per-item checks)
            seg = np.full((len(ends), 3, 2), np.nan)
            seg[:, :2] = np.asarray(ends, dtype=float)
            traces.append(dict(type="scatter", x=seg[:, :, 0].ravel(), y=seg[:, :, 1].ravel(), mode="lines",
                               line=dict(color=colour, width=lw), hoverinfo="skip", name=label))
    known_edges = [(a, b, d) for a, b, d in g.edges(data=True) if d.get("known")]
    if known_edges:          # the hover of a red edge: an invisible point at its middle
        mid = np.array([(np.asarray(pos[a], dtype=float) + np.asarray(pos[b], dtype=float)) / 2
                        for a, b, _ in known_edges])
        traces.append(dict(
            type="scatter", x=mid[:, 0], y=mid[:, 1], mode="markers",
            marker=dict(size=14, color="rgba(0,0,0,0)"), showlegend=False, name="known pair",
            hovertext=[edge_hover(a, b, d) for a, b, d in known_edges], hoverinfo="text",
            hoverlabel=dict(bgcolor="white", bordercolor="rgba(200,60,30,0.9)", align="left",
                            font=dict(color="#222"))))
    names = list(g.nodes)
    data = [g.nodes[n] for n in names]
    centre = [bool(d.get("is_centre")) for d in data]
    xy = np.array([pos[n] for n in names], dtype=float)
    for is_centre, colour, size, label in ((False, "#1f77b4", NODE_SIZE, "genes"), (True, "#d62728", CENTRE_SIZE,
                                                                                   "your gene")):
        part = [i for i in range(len(names)) if centre[i] == is_centre]
        if not part:
            continue
        traces.append(dict(
            type="scatter", x=xy[part, 0], y=xy[part, 1], mode="markers", name=label,
            marker=dict(size=size, color=colour, line=dict(width=1, color="white")),
            hovertext=[f"{plain(names[i])}<br>degree {g.degree(names[i])}" + (
                f"<br>cosine to centre {data[i]['similarity_to_centre']:.3f}"
                if np.isfinite(data[i].get("similarity_to_centre", np.nan)) else "") for i in part],
            hoverinfo="text"))
    # Labels: the marked gene, then by degree (or the caller's order), placed where they overlap nothing.
    if label_order is None:
        label_order = [n for n, _ in sorted(g.degree, key=lambda nd: (not g.nodes[nd[0]].get("is_centre"), -nd[1], nd[0]))]
    index = {n: i for i, n in enumerate(names)}
    wanted = [index[n] for n in label_order if n in index][:MAX_LABELS]
    radii = np.array([(CENTRE_SIZE if c else NODE_SIZE) / 2 + 1 for c in centre])
    middle = xy[centre.index(True)] if any(centre) else np.array([pw / 2, ph / 2])
    outward = xy - middle
    outward[np.hypot(outward[:, 0], outward[:, 1]) < 1e-6] = (0.0, 1.0)          # the middle one: above
    sizes = [CENTRE_LABEL_SIZE if c else LABEL_SIZE for c in centre]
    where = place_labels(xy, names, sizes, radii, outward, pw, ph, wanted)
    leaders = []
    for i, (x, y, w, h) in where.items():          # a leader line when a label sits away from its node
        near = np.clip(xy[i], [x - w / 2, y - h / 2], [x + w / 2, y + h / 2])
        if np.hypot(*(near - xy[i])) > radii[i] + 10:
            leaders += [xy[i], near, (np.nan, np.nan)]
    if leaders:
        leaders = np.asarray(leaders, dtype=float)
        traces.append(dict(type="scatter", x=leaders[:, 0], y=leaders[:, 1], mode="lines", hoverinfo="skip",
                           showlegend=False, line=dict(color="rgba(120,120,120,0.6)", width=0.8), name="label lines"))
    for is_centre in (False, True):
        part = [i for i in where if centre[i] == is_centre]
        if part:
            traces.append(dict(
                type="scatter", x=np.array([where[i][0] for i in part]), y=np.array([where[i][1] for i in part]),
                mode="text", text=[plain(names[i]) for i in part], textposition="middle center", hoverinfo="skip",
                showlegend=False, name="your gene's label" if is_centre else "labels",
                textfont=dict(family=LABEL_FONT, size=CENTRE_LABEL_SIZE if is_centre else LABEL_SIZE,
                              color="#d62728" if is_centre else "#222")))
    layout = dict(title=dict(text=title, x=0, xanchor="left", y=0.985, yanchor="top"), width=width, height=height,
                  autosize=False, showlegend=True, margin=dict(**MARGIN, autoexpand=False),
                  legend=dict(orientation="h", x=0, xanchor="left", y=1.0, yanchor="bottom"),
                  xaxis=dict(visible=False, range=[0, pw]), yaxis=dict(visible=False, range=[0, ph]),
                  plot_bgcolor="white", meta={"labels_wanted": len(wanted), "labels_drawn": len(where)})
    return go.Figure(data=traces, layout=layout)


def edge_hover(a: str, b: str, d: dict) -> str:
    """Hover text of one edge (Plotly HTML subset, every value escaped): the pair, its cosine, the reference
    lists that hold it and the named sets both genes belong to (app.evidence), one per line."""
    from app.evidence import SEP
    lines = [f"<b>{plain(a)} – {plain(b)}</b>  cosine {d.get('cosine', float('nan')):.3f}"]
    if d.get("sources"):
        lines.append("known pair in " + plain(str(d["sources"]).replace("|", ", ")))
    if d.get("evidence"):
        lines.append(f"{d.get('shared_sets', '')} shared gene sets, smallest first:")
        lines += [plain(x) for x in str(d["evidence"]).split(SEP)]
    elif "shared_sets" in d:
        lines.append("no shared gene set in the chosen libraries")
    return "<br>".join(lines)
