"""Enrichment: a pasted or uploaded gene list against the bundle's gene-set libraries
(hypergeometric + Benjamini-Hochberg, the same test precompute uses for modules)."""
import numpy as np
import streamlit as st

from app import loaders, params, ui
from app.text import code, codes
from app.search import parse_gene_list

st.title("Enrichment")
b = ui.require_bundles()[0]
libs = loaders.library(b)
if not libs:
    st.error(f"Bundle {code(b.name)} has no gene-set libraries (references/gmt/*.gmt); rebuild it with "
             "`python -m precompute run --references cache/references ... --overwrite`.")
    st.stop()
idx = loaders.index_for(b)

left, right = st.columns([1, 1])
with left:
    if "enrich_text" not in st.session_state and params.get("genes"):   # a shared link carries the list
        st.session_state["enrich_text"] = "\n".join(parse_gene_list(params.get("genes")))
    text = st.text_area("Gene list (symbols, aliases or Ensembl ids; one per line or comma separated)",
                        key="enrich_text", height=200,
                        help="The pasted list is kept in the page's link (the genes parameter), so the result "
                             "can be shared or bookmarked.")
    params.put("genes", ",".join(parse_gene_list(text)) or None)
    upload = st.file_uploader("…or upload a text/CSV file (first column)", type=["txt", "csv", "tsv"], key="enrich_file")
with right:
    chosen = st.multiselect("Libraries", list(libs), default=list(libs), key="enrich_libs")
    bg_mode = st.radio("Background", ["all genes of this bundle", "my own background list"], key="enrich_bg",
                       help="Per library, the background is further restricted to genes annotated in it "
                            "(the rule precompute uses).")
    bg_text = st.text_area("Background genes", key="enrich_bg_text", height=90) if bg_mode.startswith("my") else ""
    s1, s2 = st.columns(2)
    min_size = s1.number_input("Smallest set", 1, 10000, 5, key="enrich_min")
    max_size = s2.number_input("Largest set", 1, 100000, 500, key="enrich_max")

tokens = parse_gene_list(text)
if upload is not None:
    tokens += parse_gene_list("\n".join(line.replace("\t", ",").split(",")[0]
                                        for line in upload.getvalue().decode("utf-8", "replace").splitlines()))
if not tokens:
    st.info("The gene list is empty: paste genes above, upload a file, or send a selection from the Gene map.")
    st.stop()
rows, unmapped = idx.map_list(tokens)
st.markdown(f"**{len(rows)}** genes mapped to bundle {code(b.name)}"
            + (f"; **{len(unmapped)}** not found: " + codes(unmapped[:50]) if unmapped else "."))
if len(rows) == 0:
    st.warning("None of these genes is in this bundle; nothing to test.")
    st.stop()
if not chosen:
    st.warning("Pick at least one library.")
    st.stop()

universe = b.symbols.astype(str)
if bg_mode.startswith("my"):
    bg_rows, bg_unmapped = idx.map_list(parse_gene_list(bg_text))
    if len(bg_rows) == 0:
        st.warning("The background list is empty (or none of it is in this bundle).")
        st.stop()
    if bg_unmapped:
        st.caption(f"{len(bg_unmapped)} background genes not in the bundle were ignored.")
    universe = universe[bg_rows]
    outside = np.setdiff1d(rows, bg_rows)
    if len(outside):
        st.caption(f"{len(outside)} list genes are outside the background and are ignored.")


@st.cache_data(show_spinner="Testing gene sets…", max_entries=64)
def run(path: str, genes: tuple, libraries: tuple, universe: tuple, lo: int, hi: int):
    """Cached enrichment of one list (keyed by bundle, list, libraries, background and size limits)."""
    from app.enrichment import enrich_list  # scipy.stats loads on first use, not on page load
    sets = loaders.library(loaders.bundle(path))
    return enrich_list(list(genes), {name: sets[name] for name in libraries}, list(universe), lo, hi)


genes = [str(b.symbols[r]) for r in rows]
result = run(str(b.path), tuple(genes), tuple(chosen), tuple(universe), int(min_size), int(max_size))
n_sig = int((result["q"] < 0.05).sum()) if len(result) else 0
st.subheader(f"{len(result)} gene sets overlap the list; {n_sig} with q < 0.05")
ui.enrichment_table(result, height=420)
ui.export_buttons(f"{b.name}_enrichment", table=result, sets={"my_list": genes}, key="enr",
                  view={"page": "Enrichment", "bundle": b.name, "genes": genes,
                        "params": {"libraries": chosen, "background": bg_mode, "min_set_size": int(min_size),
                                   "max_set_size": int(max_size), "unmapped": unmapped}})
