"""Gene neighbourhood: top-k cosine neighbours at a chosen matrix and rank, known pairs marked with their
evidence (the reference lists that hold the pair and the gene sets both genes belong to), and an ego
network with a similarity threshold, laid out around the gene with labels that overlap nothing."""
import numpy as np
import pandas as pd
import streamlit as st

from app import cards, loaders, params, ui
from app.evidence import annotate_edges, default_libraries, library_label
from app.text import code, esc, plain
from app.neighbours import neighbour_table
from app.network import HEIGHT, MARGIN, WIDTH, ego_positions, network_figure, similarity_graph

st.title("Gene neighbourhood")
b = ui.require_bundles()[0]

top = st.columns([2, 1, 1])
with top[0]:
    row = ui.gene_picker(b)
with top[1]:
    matrix = ui.matrix_choice(b)
with top[2]:
    rank = ui.rank_choice(b, matrix)
c = st.columns([1, 1, 2])
if "w_k" not in st.session_state:
    st.session_state["w_k"] = min(max(params.as_int(params.get("k"), 20), 5), 200)
k = c[0].slider("Neighbours (k)", 5, 200, key="w_k")
params.put("k", k)
if "w_threshold" not in st.session_state:
    st.session_state["w_threshold"] = min(max(params.as_float(params.get("threshold"), 0.5), -1.0), 1.0)
threshold = c[1].slider("Ego-network edge threshold (cosine)", -1.0, 1.0, step=0.05, key="w_threshold")
params.put("threshold", threshold)
available = b.gmt_libraries()
libraries = c[2].multiselect(
    "Evidence from gene-set libraries", available, default=default_libraries(available), format_func=library_label,
    key=f"w_evidence_{b.name}", help="The named sets that hold both genes of a pair (smallest first) come from "
    "these libraries of the bundle (references/gmt); CORUM complexes, Reactome, Hallmark and GO BP by default.")

if row is None:
    st.info("Pick a gene to see its neighbours.")
    st.stop()

symbol = str(b.symbols[row])
nb_rows, nb_sims = loaders.neighbours(b, matrix, rank, row, k)
pairs = loaders.pairs(b)
known = pairs.partners(row)
sets = ui.gene_sets(b)
table = neighbour_table(b.symbols, nb_rows, nb_sims, known)
table = pd.concat([table, sets.evidence(row, nb_rows, libraries)], axis=1)
n_known_in = int(table["known"].sum())
st.subheader(f"{esc(symbol)}: {k} nearest genes in {code(matrix)} at rank {rank}")
ui.quality_badge(b, matrix)
cards.show_card(b.genes, row)
st.caption(f"{len(known)} known partners of {esc(symbol)} in the bundle's references; {n_known_in} of them are among "
           f"these {k} neighbours. Similarity = cosine of the first {rank} standardised principal components. "
           "Evidence: the reference lists that hold the pair (sources) and the gene sets of the chosen libraries "
           "that hold both genes, smallest first (set sizes in the library), a few named and the rest counted.")

EVIDENCE_COLUMNS = {
    "cosine": st.column_config.ProgressColumn("cosine", min_value=-1.0, max_value=1.0, format="%.3f"),
    "known": st.column_config.CheckboxColumn("known pair"),
    "sources": st.column_config.TextColumn("sources", help="Reference lists that hold the pair"),
    "shared_sets": st.column_config.NumberColumn("shared sets", format="%d",
                                                 help="Gene sets of the chosen libraries holding both genes"),
    "evidence": st.column_config.TextColumn("evidence (smallest shared sets first)", width="large"),
    **cards.link_columns()}
st.dataframe(cards.with_cards(table, b.genes, nb_rows, after="evidence"), hide_index=True, height=min(38 + 35 * len(table), 740),
             column_config=EVIDENCE_COLUMNS)

unit = loaders.unit(b, matrix, rank)
rows = np.concatenate([[row], nb_rows])
graph = similarity_graph(unit, rows, b.symbols, threshold, pairs, centre=row)
annotate_edges(graph, sets, libraries)
graph.graph.update({"bundle": b.name, "matrix": matrix, "rank": rank, "threshold": threshold,
                    "evidence_libraries": "|".join(libraries)})
xy = ego_positions(unit, rows, WIDTH - MARGIN["l"] - MARGIN["r"], HEIGHT - MARGIN["t"] - MARGIN["b"])
fig = network_figure(graph, title=plain(f"Ego network of {symbol} (edges: cosine ≥ {threshold:.2f})"),
                     pos={str(b.symbols[r]): xy[i] for i, r in enumerate(rows)},
                     label_order=[str(b.symbols[r]) for r in rows])
st.plotly_chart(fig, key="ego", width="content")
left_out = fig.layout.meta["labels_wanted"] - fig.layout.meta["labels_drawn"] if fig.layout.meta else 0
st.caption(f"{graph.number_of_nodes()} genes, {graph.number_of_edges()} edges. Distance from {esc(symbol)} grows as "
           f"the cosine falls (nearest {float(nb_sims.max()):.3f}, farthest {float(nb_sims.min()):.3f}); neighbours "
           "similar to each other sit side by side. Red edges are known pairs: hover the middle of one for its "
           "sources and shared gene sets."
           + (f" {left_out} labels left out for room (every gene is named in its hover)." if left_out > 0 else ""))

missing_known = sorted(set(known) - set(nb_rows.tolist()))


def partner_table() -> tuple[pd.DataFrame, np.ndarray]:
    """Known partners outside the top k, closest first, with their cosine and evidence (and their rows)."""
    rs = np.asarray(missing_known, dtype=np.int64)
    cos = unit[rs] @ unit[row]
    order = np.argsort(-cos, kind="stable")
    rs, cos = rs[order], cos[order]
    t = pd.DataFrame({"gene": [str(b.symbols[r]) for r in rs], "cosine": np.round(cos.astype(float), 4),
                      "sources": ["|".join(known[int(r)]) for r in rs]})
    return pd.concat([t, sets.evidence(row, rs, libraries)], axis=1), rs


if missing_known:
    with st.expander(f"Known partners of {esc(symbol)} not among the top {k} ({len(missing_known)})"):
        partners, partner_rows = partner_table()
        st.dataframe(cards.with_cards(partners, b.genes, partner_rows, after="evidence"), hide_index=True,
                     height=min(36 + 35 * len(partners), 420), column_config=EVIDENCE_COLUMNS)
        ui.export_buttons(f"{symbol}_known_partners_outside_top{k}", table=partners, key="nb_partners")

genes = [symbol] + table["gene"].tolist()
ui.export_buttons(f"{symbol}_{matrix}_r{rank}_neighbours", table=table, sets={f"{symbol}_neighbours": genes},
                  graph=graph, key="nb",
                  view={"page": "Gene neighbourhood", "bundle": b.name, "genes": genes,
                        "params": {"gene": symbol, "matrix": matrix, "rank": rank, "k": k, "threshold": threshold,
                                   "evidence_libraries": libraries},
                        "extra": {"source": b.manifest.get("source", {}).get("checkpoint")}})
