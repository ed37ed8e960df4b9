"""Subspaces: recall vs rank per matrix and source, the rank used everywhere else, and a component
browser that reads each principal direction as a candidate gene program."""
import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from app import cards, charts, loaders, params, ui
from app.text import code, esc, plain

st.title("Subspaces")
b = ui.require_bundles()[0]

st.subheader("Recall vs subspace rank")
if b.recall.empty:
    st.info("No recall/recall.parquet in this bundle.")
else:
    chosen = {m: b.default_rank(m) for m in b.matrix_names}
    st.plotly_chart(charts.recall_curves(b.recall, chosen=chosen), key="recall_curves")
    best = ", ".join(f"{esc(m)} {v['rank']} ({v['recall']:.1%})" for m, v in b.best.items() if "rank" in v)
    st.caption("Dotted lines: the rank each matrix's stored neighbours were computed at. Chance ≈ 10%."
               + (f" Best mean recall (recall/best.json): {best}." if best else "")
               + " " + esc(charts.recall_population(b.recall)))

c = st.columns([1, 2])
matrix = ui.matrix_choice(b, container=c[0])
with c[1]:
    rank = ui.rank_choice(b, matrix)
st.caption(f"Rank {rank} is now used for {code(matrix)} on the Gene neighbourhood page "
           f"(neighbours at rank {b.default_rank(matrix)} are precomputed; other ranks are computed on the fly).")
gene = params.get("gene")
if gene:
    row = loaders.index_for(b).lookup(gene)
    if row is not None:
        nb, sims = loaders.neighbours(b, matrix, rank, row, 10)
        st.markdown(f"Top 10 neighbours of **{esc(b.symbols[row])}** at rank {rank}: "
                    + ", ".join(f"{esc(b.symbols[r])} ({s:.2f})" for r, s in zip(nb, sims)))

st.divider()
st.subheader("Component browser")
sub = b.subspace(matrix)
spec = b.spectrum[b.spectrum["matrix"] == matrix] if not b.spectrum.empty else pd.DataFrame()
cc = st.columns([1, 1, 2])
width = sub.shape[1]
if "w_component" not in st.session_state:
    st.session_state["w_component"] = min(max(params.as_int(params.get("component"), 1), 1), width)
comp = cc[0].number_input(f"Component (1-{width})", 1, width, key="w_component")
params.put("component", int(comp), default=1)
n_top = cc[1].slider("Genes per side", 5, 200, 25, key="comp_n")
if not spec.empty:
    row_spec = spec[spec["component"] == comp]
    if len(row_spec):
        ev, evr = float(row_spec["explained_variance"].iloc[0]), float(row_spec["explained_variance_ratio"].iloc[0])
        cc[2].metric(f"Explained variance of component {comp}", f"{evr:.2%}", help=f"variance {ev:.3g}")
    fig = px.bar(spec[spec["component"] <= min(width, 64)], x="component", y="explained_variance_ratio", height=200,
                 labels={"explained_variance_ratio": "explained variance ratio"})
    fig.add_vline(x=comp, line_color="#d62728")
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(fig, key="comp_spec")


@st.cache_data(show_spinner=False, max_entries=64)
def extremes(path: str, matrix: str, comp: int, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Top-n positive and top-n negative genes of one component (scores of subspaces/MATRIX.npy)."""
    bnd = loaders.bundle(path)
    col = np.asarray(bnd.subspace(matrix)[:, comp - 1], dtype=np.float64)
    order = np.argsort(col)
    pos, neg = order[::-1][:n], order[:n]
    mk = lambda r: pd.DataFrame({"gene": bnd.symbols[r].astype(str), "score": np.round(col[r], 3),  # noqa: E731
                                 "row": r})
    return mk(pos), mk(neg)


pos, neg = extremes(str(b.path), matrix, int(comp), int(n_top))
left, right = st.columns(2)
libs = loaders.library(b)
for col, label, df in ((left, "positive", pos), (right, "negative", neg)):
    with col:
        st.markdown(f"**Top {label} genes of component {comp}**")
        rows_, df = df["row"].to_numpy(), df.drop(columns="row")
        st.dataframe(cards.with_cards(df, b.genes, rows_), hide_index=True, height=260,
                     column_config=cards.link_columns())
        ui.export_buttons(f"{b.name}_{matrix}_PC{comp}_{label}", table=df,
                          sets={f"{b.name}_{matrix}_PC{comp}_{label}": df["gene"].tolist()}, key=f"comp_{label}",
                          view={"page": "Subspaces", "bundle": b.name, "genes": df["gene"].tolist(),
                                "params": {"matrix": matrix, "component": int(comp), "side": label, "n": int(n_top)}})
        done = f"_enr_{b.name}_{matrix}_{comp}_{n_top}_{label}"
        if libs and st.button(f"Enrichment of the {label} genes", key=f"enr_{label}"):
            st.session_state[done] = ui.enrich_with_progress(df["gene"].tolist(), libs, b.symbols.astype(str))
        if done in st.session_state:
            ui.enrichment_table(st.session_state[done].head(50), height=260)
