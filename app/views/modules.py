"""Modules: table of modules at a resolution with their top enriched term; one module's genes,
enrichment and network; GMT export of one module or all."""
import numpy as np
import pandas as pd
import streamlit as st

from app import cards, loaders, params, ui
from app.text import code, esc
from app.evidence import annotate_edges, library_label
from app.network import central_rows, module_network, network_figure

MAX_NETWORK_GENES = 60      # drawn on the page
MAX_EXPORT_GENES = 500      # in the GraphML export: edges grow with the square of the genes (500: <= 125k)

st.title("Modules")
b = ui.require_bundles()[0]
c = st.columns(3)
matrix = ui.matrix_choice(b, container=c[0])
mods = loaders.table(b, "modules", matrix)
resolutions = [col for col in mods.columns if col.startswith("res_")]
if not resolutions:
    st.info(f"Bundle {code(b.name)} has no modules for {code(matrix)}.")
    st.stop()
cur = params.get("resolution")
res = c[1].selectbox("Resolution (Leiden)", resolutions, index=resolutions.index(cur) if cur in resolutions else 0,
                     key=f"mod_res_{b.name}_{matrix}")
params.put("resolution", res, default=resolutions[0])
enr = loaders.table(b, "enrichment", matrix)


@st.cache_data(show_spinner=False)
def module_summary(path: str, matrix: str, res: str) -> pd.DataFrame:
    """One row per module: size, best term (smallest q) with its library and q."""
    bb = loaders.bundle(path)
    m = loaders.table(bb, "modules", matrix)
    e = loaders.table(bb, "enrichment", matrix)
    size = m[res].value_counts().rename_axis("module").reset_index(name="size")
    if not e.empty:
        e = e[np.isclose(e["resolution"].astype(float), float(res[4:]))]
        best = e.sort_values(["q", "p"]).drop_duplicates("module")[["module", "term", "library", "overlap", "q"]]
        size = size.merge(best, on="module", how="left")
    return size.sort_values(["size", "module"], ascending=[False, True]).reset_index(drop=True)


summary = module_summary(str(b.path), matrix, res)
st.dataframe(summary, hide_index=True, height=260, column_config={
    "q": st.column_config.NumberColumn("q (BH)", format="%.2e"), "term": "top enriched term"})
options = summary["module"].tolist()
mod_key = f"mod_sel_{b.name}_{matrix}_{res}"
# The gene in the URL (or picked on another page) opens the module that contains it; a module chosen
# here, or given in the URL with the gene, stays until the gene, matrix or resolution changes.
gene = params.get("gene")
gene_row = loaders.index_for(b).lookup(gene) if gene else None
if gene_row is not None:
    for_key = f"{b.name}/{matrix}/{res}/{gene}"
    owner = params.get("_module_for")
    if owner != for_key:
        if owner is not None or params.get("module") is None:
            params.put("module", int(mods[res].iloc[gene_row]))
            st.session_state.pop(mod_key, None)
        params.put("_module_for", for_key)
cur_mod = params.as_int(params.get("module"), options[0])
module = c[2].selectbox("Module", options, index=options.index(cur_mod) if cur_mod in options else 0,
                        format_func=lambda m: f"module {m} ({int(summary.set_index('module').loc[m, 'size'])} genes)",
                        key=mod_key)
params.put("module", int(module), default=int(mods[res].iloc[gene_row]) if gene_row is not None else options[0])

rows = np.flatnonzero(mods[res].to_numpy() == module)
genes = [str(b.symbols[r]) for r in rows]
st.subheader(f"Module {module}: {len(rows)} genes")
if gene_row is not None:
    home = int(mods[res].iloc[gene_row])
    st.caption(f"**{esc(b.symbols[gene_row])}** is in this module." if home == module else
               f"**{esc(b.symbols[gene_row])}** is in module {home}, not this one.")
st.markdown("**Genes**")
shown = cards.with_cards(ui.gene_table(b, rows), b.genes, rows)
if gene_row is not None and gene_row in set(rows.tolist()):        # the user's gene first, marked
    first = np.flatnonzero(rows == gene_row)
    shown = pd.concat([shown.iloc[first], shown.drop(index=shown.index[first])], ignore_index=True)
    shown.insert(0, "your gene", [True] + [False] * (len(shown) - 1))
st.dataframe(shown, hide_index=True, height=min(38 + 35 * len(shown), 420), column_config={
    "your gene": st.column_config.CheckboxColumn("your gene", width="small"), **cards.link_columns()})

rank = b.default_rank(matrix)
thr = st.slider("Network edge threshold (cosine)", -1.0, 1.0, 0.5, 0.05, key="mod_thr")
unit = loaders.unit(b, matrix, rank)
sets = ui.gene_sets(b)


def module_graph(n: int):
    """The module's similarity network (its ``n`` most central genes at most), every edge with its evidence."""
    g = module_network(unit, rows, b.symbols, thr, loaders.pairs(b), n, mark=gene_row)
    annotate_edges(g, sets, sets.default_libraries())
    g.graph.update({"bundle": b.name, "matrix": matrix, "rank": rank, "resolution": res, "module": int(module),
                    "evidence_libraries": "|".join(sets.default_libraries())})
    return g


graph = module_graph(MAX_NETWORK_GENES)
st.plotly_chart(network_figure(graph, title=f"Module {module} (rank {rank})"), key="mod_net", width="content")
notes = ["Labels on your gene and the best connected ones, placed where they overlap nothing; every gene is named "
         "in its hover. Red edges are known pairs: hover the middle of one for its sources and the gene sets both "
         "genes belong to (" + ", ".join(esc(library_label(x)) for x in sets.default_libraries())
         + ")."]
if len(rows) > MAX_NETWORK_GENES:
    notes.append(f"The network shows the {MAX_NETWORK_GENES} most central of {len(rows)} genes "
                 "(highest cosine to the module mean).")
notes.append("GraphML export: " + ("all genes of the module." if len(rows) <= MAX_EXPORT_GENES else
             f"the {MAX_EXPORT_GENES} most central of {len(rows)} genes (stated in the file); the CSV and GMT "
             "exports hold every gene."))
st.caption(" ".join(notes))

st.markdown("**Enrichment of this module** (precomputed: hypergeometric, BH per partition and library)")
if enr.empty:
    st.info("No enrichment table for this matrix.")
else:
    mod_enr = enr[np.isclose(enr["resolution"].astype(float), float(res[4:])) & (enr["module"] == module)]
    ui.enrichment_table(mod_enr.drop(columns=["resolution", "module"]).sort_values("p"))


def all_sets() -> dict[str, list[str]]:
    """Every module at this resolution as a GMT-ready dict (built only when the GMT button is clicked)."""
    groups = pd.Series(b.symbols.astype(str)).groupby(mods[res].to_numpy())
    return {f"{b.name}_{matrix}_{res}_module_{m}": groups.get_group(m).tolist() for m in options}


st.markdown("**Export this module**")
ui.export_buttons(f"{b.name}_{matrix}_{res}_module_{module}", table=ui.gene_table(b, rows),
                  sets={f"{b.name}_{matrix}_{res}_module_{module}": genes},
                  graph=lambda: module_graph(MAX_EXPORT_GENES), key="mod_one",
                  view={"page": "Modules", "bundle": b.name, "genes": genes,
                        "params": {"matrix": matrix, "resolution": res, "module": int(module)}})
st.markdown("**Open this module in**")
string_genes = [str(b.symbols[r]) for r in central_rows(unit, rows, cards.STRING_MAX_GENES, gene_row)]
with st.container(horizontal=True):
    st.link_button("STRING", cards.string_url(string_genes), icon=":material/open_in_new:",
                   help="STRING's network of these genes (human), in a new tab")
    st.iframe(cards.enrichr_form(genes, f"TxFM {b.name} {matrix} {res} module {module}"), width=120, height=44)
st.caption("Both open in a new tab; the genes travel in the link (STRING) or a form your browser posts when you "
           "click (Enrichr); this app sends nothing. "
           + (f"STRING gets the {cards.STRING_MAX_GENES} most central of the module's {len(rows)} genes; Enrichr all "
              "of them." if len(rows) > cards.STRING_MAX_GENES else "Both get all of the module's genes."))
st.markdown("**Export all modules at this resolution**")
ui.export_buttons(f"{b.name}_{matrix}_{res}_all_modules", table=lambda: pd.DataFrame(
    {"gene": b.symbols.astype(str), "module": mods[res].to_numpy()}), sets=all_sets, key="mod_all")
