"""Gene neighbourhood: top-k cosine neighbours at a chosen matrix and rank, known pairs marked,
and an ego network with a similarity threshold."""
import numpy as np
import streamlit as st

from app import cards, loaders, params, ui
from app.text import code, esc, plain
from app.neighbours import neighbour_table
from app.network import network_figure, similarity_graph

st.title("Gene neighbourhood")
b = ui.require_bundles()[0]

top = st.columns([2, 1, 1])
with top[0]:
    row = ui.gene_picker(b)
with top[1]:
    matrix = ui.matrix_choice(b)
with top[2]:
    rank = ui.rank_choice(b, matrix)
c = st.columns(2)
if "w_k" not in st.session_state:
    st.session_state["w_k"] = min(max(params.as_int(params.get("k"), 20), 5), 200)
k = c[0].slider("Neighbours (k)", 5, 200, key="w_k")
params.put("k", k)
if "w_threshold" not in st.session_state:
    st.session_state["w_threshold"] = min(max(params.as_float(params.get("threshold"), 0.5), -1.0), 1.0)
threshold = c[1].slider("Ego-network edge threshold (cosine)", -1.0, 1.0, step=0.05, key="w_threshold")
params.put("threshold", threshold)

if row is None:
    st.info("Pick a gene to see its neighbours.")
    st.stop()

symbol = str(b.symbols[row])
nb_rows, nb_sims = loaders.neighbours(b, matrix, rank, row, k)
pairs = loaders.pairs(b)
known = pairs.partners(row)
table = neighbour_table(b.symbols, nb_rows, nb_sims, known)
n_known_in = int(table["known"].sum())
st.subheader(f"{esc(symbol)}: {k} nearest genes in {code(matrix)} at rank {rank}")
ui.quality_badge(b, matrix)
cards.show_card(b.genes, row)
st.caption(f"{len(known)} known partners of {esc(symbol)} in the bundle's references; {n_known_in} of them are among "
           f"these {k} neighbours. Similarity = cosine of the first {rank} standardised principal components.")

left, right = st.columns([1, 1])
with left:
    st.dataframe(cards.with_cards(table, b.genes, nb_rows), hide_index=True, height=520, column_config={
        "cosine": st.column_config.ProgressColumn("cosine", min_value=-1.0, max_value=1.0, format="%.3f"),
        "known": st.column_config.CheckboxColumn("known pair"), **cards.link_columns(),
    })
with right:
    graph = similarity_graph(loaders.unit(b, matrix, rank), np.concatenate([[row], nb_rows]), b.symbols,
                             threshold, pairs, centre=row)
    graph.graph.update({"bundle": b.name, "matrix": matrix, "rank": rank, "threshold": threshold})
    st.plotly_chart(network_figure(graph, title=plain(f"Ego network of {symbol} (edges: cosine ≥ {threshold:.2f})")),
                    key="ego")
    st.caption(f"{graph.number_of_nodes()} genes, {graph.number_of_edges()} edges; red edges are known relationships.")

missing_known = sorted(set(known) - set(nb_rows.tolist()))
if missing_known:
    with st.expander(f"Known partners of {esc(symbol)} not among the top {k} ({len(missing_known)})"):
        st.text(", ".join(f"{b.symbols[r]} ({'|'.join(known[r])})" for r in missing_known[:200]))

genes = [symbol] + table["gene"].tolist()
ui.export_buttons(f"{symbol}_{matrix}_r{rank}_neighbours", table=table, sets={f"{symbol}_neighbours": genes},
                  graph=graph, key="nb",
                  view={"page": "Gene neighbourhood", "bundle": b.name, "genes": genes,
                        "params": {"gene": symbol, "matrix": matrix, "rank": rank, "k": k, "threshold": threshold},
                        "extra": {"source": b.manifest.get("source", {}).get("checkpoint")}})
