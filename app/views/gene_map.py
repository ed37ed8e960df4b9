"""Gene map: UMAP of all genes (WebGL); colour by module, gene set, relationship source or a gene list;
search highlights genes; box/lasso selection becomes a gene list for enrichment or export."""
import numpy as np
import pandas as pd
import streamlit as st

from app import cards, charts, loaders, params, ui
from app.text import code, codes, plain
from app.search import parse_gene_list

st.title("Gene map")
b = ui.require_bundles()[0]
with_umap = [m for m in b.matrix_names if b.has_umap(m)]
if not with_umap:
    st.error(f"Bundle {code(b.name)} has no umap/ tables; rebuild it with `python -m precompute run ... --overwrite --force`.")
    st.stop()

c1, c2, c3 = st.columns([1, 1, 2])
matrix = ui.matrix_choice(b, container=c1)
if matrix not in with_umap:
    st.warning(f"No UMAP for {code(matrix)}; showing {code(with_umap[0])}.")
    matrix = with_umap[0]
mods = loaders.table(b, "modules", matrix)
resolutions = [c for c in mods.columns if c.startswith("res_")]
MODES = ["module", "one module", "gene set", "relationship source", "my gene list"]
if "map_colour" not in st.session_state and params.get("genes"):
    st.session_state["map_colour"] = "my gene list"          # a shared link with a gene list opens on it
mode = c2.selectbox("Colour by", MODES, key="map_colour")
xy = loaders.table(b, "umap", matrix)
idx = loaders.index_for(b)

res = None
if resolutions:
    cur = params.get("resolution")
    res = c3.selectbox("Module resolution", resolutions, index=resolutions.index(cur) if cur in resolutions else 0,
                       key=f"map_res_{b.name}_{matrix}")
    params.put("resolution", res, default=resolutions[0])
hover = loaders.hover_text(b, matrix, res)

colour: np.ndarray
categorical = True
if mode == "module" and res:
    colour = ("module " + mods[res].astype(str)).to_numpy(dtype=object)
    counts = pd.Series(colour).value_counts()
    small = counts.index[30:]  # a legend of more than 30 modules is unreadable
    colour[np.isin(colour, small)] = "other"
elif mode == "one module" and res:
    labels = mods[res].to_numpy()
    sizes = pd.Series(labels).value_counts()
    options = sorted(sizes.index.tolist())
    home = int(labels[idx.lookup(params.get("gene"))]) if params.get("gene") and idx.lookup(params.get("gene")) is not None \
        else None
    cur = params.as_int(params.get("module"), home if home is not None else options[0])
    one = st.selectbox("Module", options, index=options.index(cur) if cur in options else 0, key=f"map_mod_{res}",
                       format_func=lambda m: f"module {m} ({int(sizes[m])} genes)"
                       + (" · your gene's" if m == home else ""))
    params.put("module", int(one))
    colour = np.full(b.n_genes, "none", dtype=object)
    colour[labels == one] = f"module {one}"
elif mode == "gene set":
    libs = loaders.library(b)
    if not libs:
        st.info("This bundle has no gene-set libraries (references/gmt/).")
        st.stop()
    l1, l2 = st.columns([1, 3])
    lib = l1.selectbox("Library", list(libs), key="map_lib")
    term = l2.selectbox("Gene set", sorted(libs[lib]), key="map_term")
    rows, _ = idx.map_list(libs[lib][term])
    colour = np.full(b.n_genes, "none", dtype=object)
    colour[rows] = plain(term)
elif mode == "relationship source":
    pi = loaders.pairs(b)
    if not pi.sources:
        st.info("This bundle has no references/pairs.parquet.")
        st.stop()
    source = st.selectbox("Source", pi.sources, key="map_source")
    colour = np.full(b.n_genes, "none", dtype=object)
    colour[pi.rows_in_source(source)] = plain(f"in {source}")
else:
    if "map_list" not in st.session_state:
        st.session_state["map_list"] = "\n".join(parse_gene_list(params.get("genes") or ""))
    text = st.text_area("Your gene list (symbols, aliases or Ensembl ids)", key="map_list", height=90,
                        help="Kept in the page's link (the genes parameter), so the view can be shared.")
    params.put("genes", ",".join(parse_gene_list(text)) or None)
    rows, unmapped = idx.map_list(parse_gene_list(text))
    if unmapped:
        st.warning(f"{len(unmapped)} not found in this bundle: " + codes(unmapped[:30]))
    colour = np.full(b.n_genes, "none", dtype=object)
    colour[rows] = "my list"

query = st.text_input("Highlight genes (comma or space separated)", value=params.get("gene") or "", key="map_search")
hl_rows, hl_missing = idx.map_list(parse_gene_list(query))
if hl_missing:
    for t in hl_missing:
        close = idx.close_matches(t)
        st.warning(f"Gene {code(t)} not found." + (" Close matches: " + codes(close) if close else ""))
if len(hl_rows) == 1:
    params.put("gene", str(b.symbols[hl_rows[0]]))

fig = charts.gene_map(xy, colour, mode, hover, highlight=hl_rows, categorical=categorical,
                      title=plain(f"{b.name} · {matrix} · {b.n_genes:,} genes"))
event = st.plotly_chart(fig, key=f"map_{b.name}_{matrix}", on_select="rerun",
                        selection_mode=("points", "box", "lasso"), config={"scrollZoom": True})
st.caption("Click a point to open that gene's neighbourhood; drag to move, scroll to zoom; to select genes, pick "
           "Box or Lasso select in the chart's toolbar (top right) and draw; hover a point for its name, module and "
           "top neighbours.")
clicked = event.selection if event and event.selection else {}
if len(clicked.get("points", [])) == 1 and not clicked.get("box") and not clicked.get("lasso"):
    point = clicked["points"][0]
    if point.get("customdata") is not None:               # a click on one gene (not a box or lasso)
        params.put("gene", str(b.symbols[int(point["customdata"])]))
        params.switch_page("views/neighbourhood.py")

points = event.selection.get("points", []) if event and event.selection else []
sel_rows = np.unique([int(p["customdata"]) for p in points if p.get("customdata") is not None])
if len(sel_rows):
    st.subheader(f"Selection: {len(sel_rows)} genes")
    table = ui.gene_table(b, sel_rows)
    if res:
        table["module"] = mods[res].to_numpy()[sel_rows]
    st.dataframe(cards.with_cards(table, b.genes, sel_rows), hide_index=True, height=240,
                 column_config=cards.link_columns())
    genes = table["gene"].tolist()
    if st.button("Send selection to Enrichment", icon=":material/science:"):
        st.session_state["enrich_text"] = "\n".join(genes)
        params.switch_page("views/enrichment.py")
    ui.export_buttons(f"{b.name}_{matrix}_selection", table=table, sets={"selection": genes},
                      view={"page": "Gene map", "bundle": b.name, "genes": genes,
                            "params": {"matrix": matrix, "colour": mode, "resolution": res}}, key="map_sel")
elif len(hl_rows):
    ui.export_buttons(f"{b.name}_highlighted", table=ui.gene_table(b, hl_rows),
                      sets={"highlighted": [str(b.symbols[r]) for r in hl_rows]},
                      view={"page": "Gene map", "bundle": b.name, "genes": [str(b.symbols[r]) for r in hl_rows],
                            "params": {"matrix": matrix, "colour": mode, "resolution": res}}, key="map_hl")
