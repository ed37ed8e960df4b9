"""Compare gene matrices: any two matrices of any two bundles (TxFM codebook vs PCA, decoder vs the
decoder of another checkpoint, anything vs an imported embedding) on the genes they share: recall
side by side on the same population, aligned maps, each gene's neighbours kept, lost and gained,
and how the modules of one are spread over the modules of the other."""
import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from app import cards, charts, loaders, params, ui
from app.quality import txfm_and_pca
from app.search import parse_gene_list
from app.text import code, codes, esc, plain
from precompute.bundle.reader import BundleError
from precompute.bundle.compare import (align_layout, module_change, neighbour_diff, neighbourhood_change,
                                       recall_side_by_side, row_map)

st.title("Compare gene matrices")
st.caption("Pick any two gene matrices, from one bundle or two: TxFM's codebook or decoder, a PCA baseline, "
           "another checkpoint, or an embedding imported with `python -m precompute import`. Everything below "
           "is computed on the genes both have.")
selected = ui.require_bundles(n=1)
paths = {p.name: p for p in params.available(ui.root())}
names = list(paths)


def side(label: str, key: str, default_bundle: str, default_matrix: str | None, col) -> tuple:
    """A bundle and matrix choice, kept in the URL as ``key=BUNDLE:MATRIX``."""
    want = str(params.get(key) or "")
    wb, _, wm = want.partition(":")
    bname = wb if wb in names else default_bundle
    bname = col.selectbox(f"Bundle {label}", names, index=names.index(bname), key=f"w_{key}_bundle")
    b = loaders.bundle(paths[bname])
    ms = b.matrix_names
    fallback = default_matrix if default_matrix in ms else ms[0]
    m = wm if wm in ms else fallback
    m = col.selectbox(f"Matrix {label}", ms, index=ms.index(m), key=f"w_{key}_matrix_{bname}")
    params.put(key, f"{bname}:{m}", default=f"{default_bundle}:{fallback}" if bname == default_bundle else None)
    return b, m


# Defaults (a choice on the page, kept in the URL, beats them): two bundles picked in the sidebar are compared
# matrix for matrix; one bundle is set against its counterpart when the folder holds a TxFM bundle and a PCA
# bundle sharing genes (TxFM's decoder against PCA, the comparison users bring), else two of its matrices.
first = selected[0]
pair = txfm_and_pca(first, loaders.folder_bundles(ui.root())) if len(selected) == 1 else None
try:                                           # a damaged counterpart is no default (its own page says why)
    pair = pair if pair is not None and all(loaders.bundle(paths[x.name]) for x in pair) else None
except (BundleError, KeyError):
    pair = None
if pair is not None:
    first, second = pair
    m_first = "decoder"
    m_second = "pca" if "pca" in second.matrix_names else second.matrix_names[0]
else:
    second = selected[1] if len(selected) > 1 else first
    m_first = params.get("matrix") if params.get("matrix") in first.matrix_names else first.matrix_names[0]
    if second.name != first.name:   # two bundles: the same matrix by default (decoder vs decoder), else B's first
        m_second = m_first if m_first in second.matrix_names else second.matrix_names[0]
    else:                           # one bundle: two of its matrices
        m_second = next((m for m in second.matrix_names if m != m_first), m_first)
c = st.columns(2)
ba, ma = side("A", "cmp_a", first.name, m_first, c[0])
bb, mb = side("B", "cmp_b", second.name, m_second, c[1])
if pair is not None and (ba.name, ma, bb.name, mb) == (first.name, m_first, second.name, m_second):
    st.caption(f"Opened on TxFM's decoder ({code(first.name)}) against the PCA baseline it is judged against "
               f"({code(second.name)}); pick any other pair above.")
ra, rb = ba.default_rank(ma), bb.default_rank(mb)
a_to_b = row_map(ba.symbols, bb.symbols)
n_shared = int((a_to_b >= 0).sum())
if n_shared < 3:
    st.error(f"{code(ba.name)} and {code(bb.name)} share {n_shared} gene symbols; nothing to compare. "
             "Were they built on different species or identifier types?")
    st.stop()
built = (ba.manifest.get("created"), bb.manifest.get("created"))   # a rebuilt bundle is recomputed
label_a, label_b = f"A: {ba.name} · {ma} (rank {ra})", f"B: {bb.name} · {mb} (rank {rb})"


@st.cache_data(show_spinner=False, max_entries=8)
def change(pa: str, m_a: str, pb: str, m_b: str, built: tuple) -> pd.DataFrame:
    """Per-gene Jaccard overlap of the stored top-k neighbours of the two matrices."""
    a, b = loaders.bundle(pa), loaders.bundle(pb)
    ka, kb = loaders.knn(a, m_a)[0], loaders.knn(b, m_b)[0]
    return neighbourhood_change(a.symbols, ka, b.symbols, kb, min(ka.shape[1], kb.shape[1]))


@st.cache_data(show_spinner=False, max_entries=8)
def recall(pa: str, m_a: str, r_a: int, pb: str, m_b: str, r_b: int, built: tuple) -> tuple[pd.DataFrame, int, str]:
    """Recall of A's known pairs by both matrices (each at its chosen rank) on the population both share."""
    a, b = loaders.bundle(pa), loaders.bundle(pb)
    pairs = a.pairs if len(a.pairs) else b.pairs
    return recall_side_by_side(a.subspace(m_a)[:, :r_a], b.subspace(m_b)[:, :r_b], a.genes, b.genes, pairs)


@st.cache_data(show_spinner=False, max_entries=8)
def aligned(pa: str, m_a: str, pb: str, m_b: str, built: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(xy of A, xy of B aligned onto A) from the two UMAPs."""
    a, b = loaders.bundle(pa), loaders.bundle(pb)
    xa = loaders.table(a, "umap", m_a)[["x", "y"]].to_numpy()
    xb = loaders.table(b, "umap", m_b)[["x", "y"]].to_numpy()
    return xa, align_layout(xa, xb, row_map(b.symbols, a.symbols))


with st.status("Comparing the two matrices…", expanded=False) as status:
    status.update(label="Comparing neighbourhoods (1/2)…")
    ch = change(str(ba.path), ma, str(bb.path), mb, built)
    status.update(label="Scoring known pairs on the shared genes (2/2)…")
    rec, n_pop, pop_label = recall(str(ba.path), ma, ra, str(bb.path), mb, rb, built)
    status.update(label="Compared", state="complete")

k = int(ch["k"].iloc[0]) if len(ch) else 0
m = st.columns(4)
m[0].metric("Shared genes", f"{n_shared:,}")
m[1].metric(f"Mean overlap of top-{k} neighbours", f"{ch['jaccard'].mean():.3f}" if len(ch) else "—",
            help="Jaccard |A ∩ B| / |A ∪ B| of each gene's stored neighbours, both restricted to shared genes.")
m[2].metric("Genes with no shared neighbour", f"{int((ch['shared_neighbours'] == 0).sum()):,}")
mean_rec = rec[rec.source == "mean_of_sources"].set_index("side")["recall_mean"] if len(rec) else pd.Series()
if {"A", "B"} <= set(mean_rec.index):
    m[3].metric("Recall, B vs A", f"{mean_rec['B']:.3f} vs {mean_rec['A']:.3f}",
                delta=f"{mean_rec['B'] - mean_rec['A']:+.3f}")

st.subheader("Recall of known relationships, side by side")
if rec.empty:
    st.info(f"Too few shared genes in the recall population ({n_pop}) to score known pairs.")
else:
    shown = rec.replace({"side": {"A": label_a, "B": label_b}})
    fig = px.bar(shown.assign(source=shown.source.map(plain), side=shown.side.map(plain)), x="source",
                 y="recall_mean", color="side", barmode="group", error_y="recall_std", height=320,
                 hover_data=["n_pairs"], labels={"recall_mean": "recall", "side": ""})
    fig.add_hline(y=float(rec["chance"].mean()), line_dash="dash", line_color="grey",
                  annotation_text="chance", annotation_position="top left")
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), yaxis_range=[0, 1], legend=dict(orientation="h"))
    st.plotly_chart(fig, key="cmp_recall")
    st.caption(f"Both matrices scored on the same {n_pop:,} genes ({esc(pop_label)}), with the same known pairs "
               "(of bundle A) and the same null gene samples, each at its chosen rank; 'mean_of_sources' weighs "
               "every source the same. A bundle's own recall (Overview) uses its own population, so the figures "
               "can differ.")

st.subheader("Aligned maps")
query = st.text_input("Highlight a gene or gene list in both maps", value=params.get("gene") or "", key="cmp_query",
                      placeholder="e.g. ISG15, or a list: IFI6 MX1 IFIT3")
tokens = parse_gene_list(query)
if len(tokens) == 1:
    params.put("gene", tokens[0])
res_a = ba.resolutions(ma)
res_b = bb.resolutions(mb)
if ba.has_umap(ma) and bb.has_umap(mb):
    xa, xb = aligned(str(ba.path), ma, str(bb.path), mb, built)
    # Both maps are coloured by A's modules: a module of A that B keeps together stays one colour in one
    # place on B's map; one that B splits is scattered.
    colour_a = np.full(ba.n_genes, "gene", dtype=object)
    if res_a:
        res = params.get("resolution") if params.get("resolution") in res_a else res_a[0]
        colour_a = ("A module " + loaders.table(ba, "modules", ma)[res].astype(str)).to_numpy(dtype=object)
        small = pd.Series(colour_a).value_counts().index[20:]
        colour_a[np.isin(colour_a, small)] = "other"
    colour_b = np.full(bb.n_genes, "not in A", dtype=object)
    b_to_a = row_map(bb.symbols, ba.symbols)
    colour_b[b_to_a >= 0] = colour_a[b_to_a[b_to_a >= 0]]
    cols = st.columns(2)
    for col, bnd, xy, colour, title in ((cols[0], ba, xa, colour_a, label_a), (cols[1], bb, xb, colour_b, label_b)):
        hl, missing = loaders.index_for(bnd).map_list(tokens) if tokens else (np.zeros(0, dtype=np.int64), [])
        # Hover = symbol only: two 45,000-point maps with full hover text would double the page's payload.
        fig = charts.gene_map(pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]}), colour, "module of A",
                              np.array([plain(s) for s in bnd.symbols.astype(str)], dtype=object),
                              highlight=hl, height=460, title=plain(title))
        fig.update_layout(showlegend=False)
        with col:
            st.plotly_chart(fig, key=f"cmp_map_{title}")
            if missing:
                st.caption(f"Not in {code(bnd.name)}: " + codes(missing))
    st.caption("Both maps are coloured by A's modules (the 20 largest; grey = other). B's map is rotated and "
               "scaled onto A's (Procrustes on the shared genes) so the two line up; a module of A that B keeps "
               "together stays one colour in one place.")
else:
    st.info("One of the two matrices has no UMAP in its bundle; the maps are skipped.")

st.subheader("One gene's neighbours: kept, lost and gained")
gene = tokens[0] if len(tokens) == 1 else (params.get("gene") or "")
row = loaders.index_for(ba).lookup(gene) if gene else None
if row is None or a_to_b[row] < 0:
    st.info("Type one gene above to list its neighbours in A and in B"
            + (f" ({code(gene)} is not in both)." if gene else "."))
else:
    diff = neighbour_diff(row, loaders.knn(ba, ma)[0], loaders.knn(bb, mb)[0], ba.symbols, bb.symbols, k)
    partners = loaders.pairs(ba).partners(row)
    sym_row = {s: i for i, s in enumerate(ba.symbols.astype(str))}
    diff["known pair (sources)"] = [", ".join(partners.get(sym_row[g], [])) for g in diff["gene"]]
    counts = diff["status"].value_counts()
    jac = ch.set_index("gene")["jaccard"].get(str(ba.symbols[row]), np.nan)
    st.markdown(f"**{esc(ba.symbols[row])}**: {counts.get('in both', 0)} of its top-{k} neighbours kept, "
                f"{counts.get('only in A (lost)', 0)} only in A, {counts.get('only in B (gained)', 0)} only in B "
                f"(overlap {jac:.2f}). Known partners of the gene in A's references are named with their sources.")
    cards.show_card(ba.genes, row)
    lc = st.columns(3)
    for col, status_name in zip(lc, ("in both", "only in A (lost)", "only in B (gained)")):
        part = diff[diff.status == status_name].drop(columns="status")
        col.markdown(f"**{status_name}** ({len(part)})")
        shown = cards.with_cards(part, ba.genes, [sym_row[g] for g in part["gene"]])
        col.dataframe(shown, hide_index=True, height=300, width="stretch", column_config={
            "rank_a": st.column_config.NumberColumn("rank in A", format="%d"),
            "rank_b": st.column_config.NumberColumn("rank in B", format="%d"), **cards.link_columns()})
    ui.export_buttons(f"{ba.symbols[row]}_neighbours_{ba.name}_{ma}_vs_{bb.name}_{mb}", table=diff,
                      key="cmp_gene")

st.subheader("Which genes changed neighbourhood most")
left, right = st.columns([1, 1])
with left:
    st.dataframe(ch.head(500), hide_index=True, height=360, width="stretch", column_config={
        "jaccard": st.column_config.ProgressColumn("overlap (Jaccard)", min_value=0.0, max_value=1.0, format="%.2f")})
with right:
    counts, edges = np.histogram(ch["jaccard"].dropna(), bins=20, range=(0, 1))   # bins, not 45,000 values
    fig = px.bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, height=360,
                 labels={"x": f"Jaccard overlap of top-{k} neighbours", "y": "genes"})
    fig.update_traces(width=0.045)
    fig.update_layout(margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(fig, key="cmp_hist")
ui.export_buttons(f"{ba.name}_{ma}_vs_{bb.name}_{mb}_neighbour_change", table=ch,
                  sets=lambda: {"most_changed_200": ch["gene"].head(200).tolist()}, key="cmp",
                  view={"page": "Compare gene matrices", "bundle": f"{ba.name}:{ma} vs {bb.name}:{mb}",
                        "genes": ch["gene"].head(200).tolist(), "params": {"k": k, "rank_a": ra, "rank_b": rb}})

st.subheader("Modules: how A's modules are spread over B's")
if not res_a or not res_b:
    st.info("One of the two matrices has no modules in its bundle.")
else:
    cc = st.columns(2)
    r_a = cc[0].selectbox("Resolution in A", res_a, index=res_a.index(params.get("resolution"))
                          if params.get("resolution") in res_a else 0, key="cmp_res_a")
    r_b = cc[1].selectbox("Resolution in B", res_b, index=res_b.index(r_a) if r_a in res_b else 0, key="cmp_res_b")
    shared_rows = np.flatnonzero(a_to_b >= 0)
    mod_a = loaders.table(ba, "modules", ma)[r_a].to_numpy()[shared_rows]
    mod_b = loaders.table(bb, "modules", mb)[r_b].to_numpy()[a_to_b[shared_rows]]
    table, summary = module_change(mod_a, mod_b)
    s = st.columns(3)
    s[0].metric("Adjusted Rand index", f"{summary['adjusted_rand']:.3f}",
                help="Agreement of the two partitions beyond chance: 1 = identical modules, 0 = unrelated.")
    s[1].metric("Normalised mutual information", f"{summary['normalised_mutual_info']:.3f}")
    s[2].metric("Modules in A / in B", f"{len(set(mod_a)):,} / {len(set(mod_b)):,}")
    if row is not None and a_to_b[row] >= 0:
        my = int(loaders.table(ba, "modules", ma)[r_a].iloc[row])
        hit = table[table.module_a == my].iloc[0]
        st.markdown(f"**{esc(ba.symbols[row])}** is in A's module {my} ({int(hit.genes)} shared genes): "
                    f"{hit.kept:.0%} of them are together in B's module {int(hit.best_module_b)}, and "
                    f"{int(hit.modules_to_cover)} of B's modules hold 80% of them.")
    st.dataframe(table, hide_index=True, height=320, width="stretch", column_config={
        "module_a": st.column_config.NumberColumn("module in A", format="%d"),
        "genes": st.column_config.NumberColumn("shared genes", format="%d"),
        "best_module_b": st.column_config.NumberColumn("B module holding most", format="%d"),
        "kept": st.column_config.ProgressColumn("fraction kept together", min_value=0.0, max_value=1.0,
                                                format="%.2f"),
        "modules_to_cover": st.column_config.NumberColumn("B modules holding 80%", format="%d"),
        "b_module_genes": st.column_config.NumberColumn("size of that B module", format="%d")})
    top_a = table.module_a.head(15).tolist()
    tab = pd.crosstab(pd.Series(mod_a, name="A"), pd.Series(mod_b, name="B")).loc[top_a]
    top_b = tab.sum(axis=0).sort_values(ascending=False).index[:15]
    frac = tab[top_b].div(tab.sum(axis=1), axis=0)
    hm = px.imshow(frac.to_numpy(), x=[f"B {x}" for x in top_b], y=[f"A {y}" for y in top_a], aspect="auto",
                   color_continuous_scale="Blues", zmin=0, zmax=1, height=420,
                   labels={"color": "fraction of A's module"})
    hm.update_layout(margin=dict(l=10, r=10, t=10, b=10))
    st.plotly_chart(hm, key="cmp_modules")
    st.caption("Rows: A's 15 largest modules; columns: the 15 B modules that hold most of their genes; a cell is "
               "the fraction of the row's module found in the column's.")
    ui.export_buttons(f"{ba.name}_{ma}_{r_a}_vs_{bb.name}_{mb}_{r_b}_modules", table=table, key="cmp_mod")
