"""Plotly figures used by several pages (recall, spectrum, gene map)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from app.text import plain

PALETTE = px.colors.qualitative.Dark24 + px.colors.qualitative.Light24


def recall_at_rank(recall: pd.DataFrame, chosen: dict[str, int]) -> pd.DataFrame:
    """Rows of ``recall`` at each matrix's chosen rank (the swept rank nearest to it; the highest if unknown)."""
    out = []
    for m, grp in recall.groupby("matrix", sort=False):
        ranks = grp["rank"].to_numpy()
        r = ranks[np.argmin(np.abs(np.log(ranks) - np.log(chosen[m])))] if m in chosen else ranks.max()
        out.append(grp[grp["rank"] == r])
    return pd.concat(out, ignore_index=True) if out else recall.iloc[:0]


def recall_population(recall: pd.DataFrame) -> str:
    """One line naming the gene population a bundle's recall was measured on, with its size.

    Bundles record it (precompute: genes measured well in >= 2 datasets, known and null pairs both
    drawn from them); a bundle made before that scored the whole vocabulary, which rarely measured
    genes inflate, and is labelled so."""
    if "population" in recall and "n_genes" in recall and len(recall):
        pop, n = str(recall["population"].iloc[0]), int(recall["n_genes"].iloc[0])
        note = " (inflated by rarely measured genes)" if pop == "whole vocabulary" else ""
        return f"Recall measured on {n:,} genes: {pop}{note}; known and null pairs both drawn from them."
    return ("Recall measured over the whole vocabulary (a bundle made before the honest population was "
            "recorded): inflated by rarely measured genes; rebuild the bundle for the honest figure.")


def _plain_labels(df: pd.DataFrame) -> pd.DataFrame:
    """Source and matrix names (from reference/bundle files) escaped for Plotly's HTML-subset labels."""
    df = df.copy()
    for col in ("source", "matrix"):
        if col in df:
            df[col] = df[col].astype(str).map(plain)
    return df


def recall_bars(recall: pd.DataFrame, chosen: dict[str, int], height: int = 320) -> go.Figure:
    """Grouped bars: recall per source (x) for each matrix (colour) at its chosen rank, chance as a dashed line."""
    df = _plain_labels(recall_at_rank(recall, chosen))
    fig = px.bar(df, x="source", y="recall_mean", color="matrix", barmode="group", error_y="recall_std",
                 hover_data=["rank", "n_pairs"], height=height, labels={"recall_mean": "recall"})
    if "chance" in df and len(df):
        fig.add_hline(y=float(df["chance"].mean()), line_dash="dash", line_color="grey",
                      annotation_text="chance", annotation_position="top left")
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), yaxis_range=[0, 1])
    return fig


def recall_curves(recall: pd.DataFrame, height: int = 380, chosen: dict[str, int] | None = None) -> go.Figure:
    """Recall vs rank (log x) per matrix (colour) and source (dash), chance dashed, chosen ranks dotted."""
    df = _plain_labels(recall.sort_values(["matrix", "source", "rank"]))
    fig = px.line(df, x="rank", y="recall_mean", color="matrix", line_dash="source", markers=True,
                  log_x=True, height=height, labels={"recall_mean": "recall", "rank": "subspace rank"},
                  hover_data=["recall_std", "n_pairs"])
    if "chance" in df and len(df):
        fig.add_hline(y=float(df["chance"].mean()), line_dash="dash", line_color="grey", annotation_text="chance")
    # Chosen ranks as traces: add_vline on a log axis would need log10 coordinates.
    for m, r in (chosen or {}).items():
        fig.add_trace(go.Scatter(x=[r, r], y=[0, 1], mode="lines", line=dict(dash="dot", color="black", width=1),
                                 name=plain(f"{m}: chosen rank {r}"), hoverinfo="name"))
    ticks = sorted(set(df["rank"].astype(int)))
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), xaxis=dict(tickvals=ticks, ticktext=[str(t) for t in ticks]))
    return fig


def spectrum(spec: pd.DataFrame, height: int = 320, max_components: int = 256) -> go.Figure:
    """Explained variance ratio per component (log y) for every matrix."""
    df = _plain_labels(spec[spec["component"] <= max_components])
    fig = px.line(df, x="component", y="explained_variance_ratio", color="matrix", log_y=True, height=height,
                  labels={"explained_variance_ratio": "explained variance ratio"})
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10))
    return fig


def spaced_labels(hx: np.ndarray, hy: np.ndarray, x: np.ndarray, y: np.ndarray, limit: int = 50,
                  min_gap: float = 0.035) -> np.ndarray:
    """Which of the highlighted points get a text label: in order, a point is labelled only when it lies
    at least ``min_gap`` (a fraction of the map's extent) from every point labelled before it, so labels
    do not pile up; at most ``limit`` labels. Returns a bool mask over the highlighted points."""
    span = np.array([np.ptp(x) if len(x) else 1.0, np.ptp(y) if len(y) else 1.0])
    span[span == 0] = 1.0
    pts = np.stack([np.asarray(hx, float), np.asarray(hy, float)], axis=1) / span
    keep = np.zeros(len(pts), dtype=bool)
    placed: list[np.ndarray] = []
    for i, p in enumerate(pts):
        if len(placed) >= limit:
            break
        if not placed or np.min(np.abs(np.asarray(placed) - p).max(axis=1)) >= min_gap:
            keep[i] = True
            placed.append(p)
    return keep


def gene_map(xy: pd.DataFrame, colour: np.ndarray, colour_name: str, hover: np.ndarray,
             highlight: np.ndarray | None = None, categorical: bool = True, height: int = 640,
             title: str = "") -> go.Figure:
    """WebGL scatter of all genes.

    Args:
        xy: (G, 2+) table with x, y in row order.
        colour: (G,) category labels (str) or values (float; NaN = grey).
        hover: (G,) hover text per gene.
        highlight: rows drawn on top with a large red outline and their symbol as text.
    Point i of the first traces has customdata = gene row, so selections map back to rows.
    """
    fig = go.Figure()
    rows = np.arange(len(xy))
    x, y = xy["x"].to_numpy(), xy["y"].to_numpy()
    if categorical:
        cats = pd.Series(colour, dtype="object").fillna("none").astype(str)
        order = cats.value_counts().index.tolist()
        named = [c for c in order if c not in ("none", "other")]
        # Grey background first, then the categories from largest to smallest: a later trace is drawn on
        # top, so a gene set's members sit above the grey points and small groups above large ones.
        for cat in [c for c in ("none", "other") if c in order] + named:
            m = (cats == cat).to_numpy()
            col = "#d0d0d0" if cat in ("none", "other") else PALETTE[named.index(cat) % len(PALETTE)]
            fig.add_trace(go.Scattergl(x=x[m], y=y[m], mode="markers", name=cat, customdata=rows[m],
                                       text=hover[m], hoverinfo="text", marker=dict(size=4, color=col, opacity=0.8)))
    else:
        fig.add_trace(go.Scattergl(x=x, y=y, mode="markers", name=colour_name, customdata=rows, text=hover,
                                   hoverinfo="text", marker=dict(size=4, color=colour, colorscale="Viridis",
                                                                 showscale=True, colorbar=dict(title=colour_name))))
    if highlight is not None and len(highlight):
        h = np.asarray(highlight)
        # One WebGL trace for marker and label: an SVG text trace would sit under the WebGL canvas.
        keep = spaced_labels(x[h], y[h], x, y, limit=50)
        labels = [t.split("<br>")[0].split(" · ")[0] if keep[i] else "" for i, t in enumerate(hover[h])]
        fig.add_trace(go.Scattergl(x=x[h], y=y[h], mode="markers+text", name="highlighted", customdata=rows[h],
                                   text=labels, hovertext=hover[h], hoverinfo="text", textposition="top center",
                                   textfont=dict(color="#d62728", size=13),
                                   marker=dict(size=14, color="rgba(255,255,255,0.4)",
                                               line=dict(width=3, color="#d62728"))))
    fig.update_layout(height=height, title=title, legend=dict(title=colour_name, itemsizing="constant"),
                      margin=dict(l=10, r=10, t=40 if title else 10, b=10), dragmode="pan",
                      xaxis=dict(title="UMAP 1", showgrid=False, zeroline=False),
                      yaxis=dict(title="UMAP 2", showgrid=False, zeroline=False), plot_bgcolor="white")
    return fig
