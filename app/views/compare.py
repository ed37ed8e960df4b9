"""Compare checkpoints: two bundles side by side (aligned maps, linked highlighting), per-gene
neighbourhood change, recall of both."""
import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from app import charts, loaders, params, ui
from app.text import code, codes, esc, plain
from precompute.bundle.compare import align_layout, neighbourhood_change, row_map
from app.search import parse_gene_list

st.title("Compare checkpoints")
ba, bb = ui.require_bundles(n=2)[:2]
common = [m for m in ba.matrix_names if m in bb.matrix_names and ba.has_umap(m) and bb.has_umap(m)]
if not common:
    st.error(f"Bundles {code(ba.name)} and {code(bb.name)} share no gene matrix with a UMAP; nothing to compare.")
    st.stop()
cur = params.get("matrix")
c = st.columns([1, 2])
matrix = c[0].selectbox("Gene matrix (both bundles)", common, index=common.index(cur) if cur in common else 0,
                        key="cmp_matrix")
params.put("matrix", matrix)
query = c[1].text_input("Highlight a gene or gene set in both maps", value=params.get("gene") or "", key="cmp_query")
tokens = parse_gene_list(query)
if len(tokens) == 1:
    params.put("gene", tokens[0])


@st.cache_data(show_spinner="Aligning layouts…")
def aligned(path_a: str, path_b: str, matrix: str) -> tuple[np.ndarray, np.ndarray]:
    """(xy_a, xy_b aligned onto a) for the two bundles' UMAPs of ``matrix``."""
    a, b = loaders.bundle(path_a), loaders.bundle(path_b)
    xa = loaders.table(a, "umap", matrix)[["x", "y"]].to_numpy()
    xb = loaders.table(b, "umap", matrix)[["x", "y"]].to_numpy()
    return xa, align_layout(xa, xb, row_map(b.symbols, a.symbols))


@st.cache_data(show_spinner="Comparing neighbourhoods…")
def change(path_a: str, path_b: str, matrix: str) -> pd.DataFrame:
    """Per-gene Jaccard overlap of the stored top-k neighbours in the two bundles."""
    a, b = loaders.bundle(path_a), loaders.bundle(path_b)
    ka, kb = loaders.knn(a, matrix)[0], loaders.knn(b, matrix)[0]
    return neighbourhood_change(a.symbols, ka, b.symbols, kb, min(ka.shape[1], kb.shape[1]))


xa, xb = aligned(str(ba.path), str(bb.path), matrix)
cols = st.columns(2)
for col, bnd, xy in ((cols[0], ba, xa), (cols[1], bb, xb)):
    hl, missing = loaders.index_for(bnd).map_list(tokens) if tokens else (np.zeros(0, dtype=np.int64), [])
    res_cols = [c for c in loaders.table(bnd, "modules", matrix).columns if c.startswith("res_")]
    res = params.get("resolution") if params.get("resolution") in res_cols else (res_cols or [None])[0]
    colour = np.full(bnd.n_genes, "gene", dtype=object)
    if res:
        colour = ("module " + loaders.table(bnd, "modules", matrix)[res].astype(str)).to_numpy(dtype=object)
        small = pd.Series(colour).value_counts().index[20:]
        colour[np.isin(colour, small)] = "other"
    # Hover = symbol only: two 45,000-point maps with full hover text would double the page's payload.
    fig = charts.gene_map(pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]}), colour, "module", np.array([plain(s) for s in bnd.symbols.astype(str)], dtype=object),
                          highlight=hl, height=480, title=plain(f"{bnd.name} · {matrix}"))
    fig.update_layout(showlegend=False)
    with col:
        st.plotly_chart(fig, key=f"cmp_map_{bnd.name}")
        if missing:
            st.caption(f"Not in {code(bnd.name)}: " + codes(missing))
st.caption(f"{code(bb.name)} is rotated/scaled onto {code(ba.name)} (Procrustes on the shared genes) so the maps line up.")

st.subheader("Which genes changed neighbourhood most")
ch = change(str(ba.path), str(bb.path), matrix)
k = int(ch["k"].iloc[0]) if len(ch) else 0
m1, m2, m3 = st.columns(3)
m1.metric("Shared genes", f"{len(ch):,}")
m2.metric(f"Mean Jaccard of top-{k} neighbours", f"{ch['jaccard'].mean():.3f}" if len(ch) else "—")
m3.metric("Genes with no shared neighbour", f"{int((ch['shared_neighbours'] == 0).sum()):,}")
left, right = st.columns([1, 1])
with left:
    st.dataframe(ch.head(500), hide_index=True, height=360, column_config={
        "jaccard": st.column_config.ProgressColumn("Jaccard", min_value=0.0, max_value=1.0, format="%.2f")})
with right:
    counts, edges = np.histogram(ch["jaccard"].dropna(), bins=20, range=(0, 1))   # bins, not 45,000 values
    fig = px.bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, height=360,
                 labels={"x": f"Jaccard overlap of top-{k} neighbours", "y": "genes"})
    fig.update_traces(width=0.045)
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(fig, key="cmp_hist")
ui.export_buttons(f"{ba.name}_vs_{bb.name}_{matrix}_neighbour_change", table=ch,
                  sets=lambda: {"most_changed_200": ch["gene"].head(200).tolist()}, key="cmp",
                  view={"page": "Compare checkpoints", "bundle": f"{ba.name} vs {bb.name}",
                        "genes": ch["gene"].head(200).tolist(), "params": {"matrix": matrix, "k": k}})

st.subheader("Recall of known relationships")
rc = st.columns(2)
for col, bnd in zip(rc, (ba, bb)):
    with col:
        st.markdown(f"**{esc(bnd.name)}**")
        if bnd.recall.empty:
            st.info("No recall table.")
        else:
            st.plotly_chart(charts.recall_bars(bnd.recall, {m: bnd.default_rank(m) for m in bnd.matrix_names}), key=f"cmp_recall_{bnd.name}")
            st.caption(esc(charts.recall_population(bnd.recall)))
