"""Training run: a run's checkpoints as light bundles (`python -m precompute series`): recall on the honest
population against samples seen for each matrix, one gene's neighbourhood step by step (genes entering and
leaving), and the gene map at a chosen step."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import charts, loaders, params, ui
from app.search import parse_gene_list
from app.text import code, esc, plain
from precompute.bundle.compare import align_layout, row_map
from precompute.bundle.reader import BundleError, discover_series, read_series

st.title("Training run")
root = ui.root()
found = {p.name: p for p in discover_series(root)}
if not found:
    st.info(f"No run series in {code(root)}. A series is one light bundle per saved checkpoint of a training run; "
            "make one, then reload this page:")
    st.code("python -m precompute series --run runs/NAME --pca bundles/NAME-pca   # writes bundles/NAME-series",
            language="bash")
    st.stop()
names = list(found)
cur = params.get("series")
name = st.selectbox("Run series", names, index=names.index(cur) if cur in names else 0, key="w_series")
params.put("series", name, default=names[0])
try:
    series = read_series(found[name])
except BundleError as e:
    ui.problem(f"Series {name}", e)
steps = series["checkpoints"]
bundles = [loaders.bundle(found[name] / c["bundle"]) for c in steps]
last = bundles[-1]
st.caption(f"Run {code(series.get('run', '?'))}: {len(steps)} checkpoints, steps {steps[0]['step']:,} to "
           f"{steps[-1]['step']:,} ({steps[-1]['samples_seen']:,} samples seen).")

# ---- recall against samples seen ---------------------------------------------------------------
st.subheader("Recall of known relationships along the run")
rows = []
for c, b in zip(steps, bundles):
    for m in b.matrix_names:
        best = b.best.get(m, {})
        if best.get("recall") is not None:
            rows.append({"matrix": m, "step": c["step"], "samples seen": c["samples_seen"],
                         "recall": float(best["recall"]), "rank": best.get("rank"),
                         "genes": best.get("n_genes"), "population": best.get("population")})
curve = pd.DataFrame(rows)
fig = go.Figure()
for m, g in curve.groupby("matrix", sort=False) if len(curve) else []:
    fig.add_trace(go.Scatter(x=g["samples seen"], y=g["recall"], mode="lines+markers", name=plain(m),
                             customdata=g[["step", "rank"]].to_numpy(),
                             hovertemplate="%{x:,} samples (step %{customdata[0]}): recall %{y:.3f} "
                                           "at rank %{customdata[1]}<extra></extra>"))
chance = float(np.mean([b.recall["chance"].mean() for b in bundles if len(b.recall)])) if len(curve) else 0.10
fig.add_hline(y=chance, line_dash="dash", line_color="grey", annotation_text="chance")
pca_ref = None
if series.get("pca"):
    from pathlib import Path
    cands = [Path(series["pca"]), root / Path(series["pca"]).name]
    for p in cands:
        try:
            pca_ref = loaders.bundle(p) if (p / "manifest.json").is_file() else None
        except BundleError:
            pca_ref = None
        if pca_ref is not None:
            break
if pca_ref is not None and pca_ref.best.get("pca", {}).get("recall") is not None:
    fig.add_hline(y=float(pca_ref.best["pca"]["recall"]), line_dash="dot", line_color="black",
                  annotation_text=plain(f"PCA baseline ({pca_ref.name})"))
fig.update_layout(height=360, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="samples seen",
                  yaxis_title="recall (best rank)", legend=dict(orientation="h"))
st.plotly_chart(fig, key="run_curve")
if len(curve):
    st.caption(f"Each point is one checkpoint's bundle: recall at its best rank on {int(curve['genes'].iloc[-1]):,} "
               f"genes ({esc(curve['population'].iloc[-1])}); known and null pairs drawn from them.")
    st.dataframe(curve.pivot_table(index=["step", "samples seen"], columns="matrix", values="recall").reset_index(),
                 hide_index=True)

# ---- a gene, step by step -----------------------------------------------------------------------
st.subheader("One gene's neighbourhood, step by step")
c = st.columns([2, 1, 1])
with c[0]:
    ui.gene_search(last, label="Gene")
gene = params.get("gene")
# the matrix that recovers known pairs best at the last checkpoint comes first
scored = sorted(last.matrix_names, key=lambda m: -(last.best.get(m, {}).get("recall") or 0.0))
matrix = c[1].selectbox("Gene matrix", scored, key="run_matrix")
k = c[2].slider("Neighbours", 5, 50, 10, key="run_k")
row_last = loaders.index_for(last).lookup(gene) if gene else None
if row_last is None:
    st.info("Search a gene to follow its neighbours through training.")
else:
    symbol = str(last.symbols[row_last])
    partners = {last.symbols[r] for r in loaders.pairs(last).partners(row_last)}
    table, prev = [], None
    for c_, b in zip(steps, bundles):
        r = loaders.index_for(b).lookup(symbol)
        if r is None or matrix not in b.matrix_names:
            continue
        nb = [str(b.symbols[j]) for j in loaders.knn(b, matrix)[0][r, :k]]
        entered = [g for g in nb if prev is not None and g not in prev]
        left = [g for g in (prev or []) if g not in nb]
        table.append({"step": c_["step"], "samples seen": c_["samples_seen"],
                      "known partners": sum(g in partners for g in nb), "neighbours": ", ".join(nb),
                      "entered": ", ".join(entered), "left": ", ".join(left)})
        prev = nb
    st.markdown(f"**{esc(symbol)}**: its {k} nearest genes in {code(matrix)} at each checkpoint (at that bundle's "
                f"chosen rank); {len(partners)} known partners in the references.")
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch", column_config={
        "neighbours": st.column_config.TextColumn(width="large"),
        "entered": st.column_config.TextColumn("entered (vs previous)", width="medium"),
        "left": st.column_config.TextColumn("left (vs previous)", width="medium")})

# ---- the map at a step ----------------------------------------------------------------------------
st.subheader("The gene map at a step")
labels = [f"step {s['step']:,}" for s in steps]
pick = params.as_int(params.get("step"), steps[-1]["step"])
at = next((i for i, s in enumerate(steps) if s["step"] == pick), len(steps) - 1)
choice = st.select_slider("Checkpoint", labels, value=labels[at], key="run_step")
i = labels.index(choice)
params.put("step", steps[i]["step"], default=steps[-1]["step"])
b = bundles[i]
if matrix in b.matrix_names and b.has_umap(matrix) and last.has_umap(matrix):
    xy_last = loaders.table(last, "umap", matrix)[["x", "y"]].to_numpy()
    xy = align_layout(xy_last, loaders.table(b, "umap", matrix)[["x", "y"]].to_numpy(), row_map(b.symbols, last.symbols))
    res = b.resolutions(matrix)
    colour = ("module " + loaders.table(b, "modules", matrix)[res[0]].astype(str)).to_numpy(dtype=object) if res \
        else np.full(b.n_genes, "gene", dtype=object)
    small = pd.Series(colour).value_counts().index[20:]
    colour[np.isin(colour, small)] = "other"
    hl, _ = loaders.index_for(b).map_list(parse_gene_list(gene or ""))
    fig = charts.gene_map(pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]}), colour, "module",
                          loaders.hover_text(b, matrix, res[0] if res else None), highlight=hl, height=520,
                          title=plain(f"{matrix} at step {steps[i]['step']:,} ({steps[i]['samples_seen']:,} samples)"))
    fig.update_layout(showlegend=False)
    st.plotly_chart(fig, key=f"run_map_{i}_{matrix}")
    st.caption("Aligned onto the last checkpoint's map (Procrustes on the shared genes), so moving the slider "
               "shows genes moving; coloured by that step's modules (the 20 largest).")
else:
    st.info(f"No UMAP of {code(matrix)} at this step.")
