"""Widgets shared by the pages: bundle picker and messages, gene picker, exports, tables."""
from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import streamlit as st

from app import loaders, params
from precompute.bundle.reader import Bundle, BundleError
from app.export import gmt_bytes, graphml_bytes, table_csv, view_json
from app.text import code, codes, esc

MAKE_BUNDLE_COMMANDS = (
    "make demo                      # trains a tiny model and writes bundles/demo\n"
    "python -m precompute run --checkpoint runs/NAME/checkpoint.pt --out bundles/NAME"
)


def root() -> Path:
    """The bundles folder chosen at start-up (``--bundles`` or TXFM_BUNDLES)."""
    return Path(st.session_state.get("_bundles_root", "bundles"))


def bundle_sidebar(bundles_root: Path) -> None:
    """Sidebar multiselect of the bundles found under ``bundles_root`` (stored in the ``bundle`` URL param)."""
    found = [p.name for p in params.available(bundles_root)]
    st.sidebar.caption(f"Bundles folder: {code(bundles_root)}")
    if not found:
        return
    chosen = [p.name for p in params.selected_bundles(bundles_root)]
    if "w_bundles" not in st.session_state:
        st.session_state["w_bundles"] = chosen
    picked = st.sidebar.multiselect("Bundles", found, key="w_bundles",
                                    help="The first bundle is the one the pages show; Compare uses the first two.")
    params.put("bundle", [p for p in picked if p in found], default=found[:1])


def problem_line(e: BaseException) -> str:
    """An exception as the one-line problem shown on a page (no traceback)."""
    from common.errors import one_line
    return one_line(str(e) or type(e).__name__)


def problem(where: str, e: BaseException) -> None:
    """Show a damaged-bundle problem as one plain-text error line and stop the page."""
    st.error(f"{esc(where)}: {esc(problem_line(e))}")
    st.stop()


def require_bundles(n: int = 1) -> list[Bundle]:
    """The selected bundles, opened and validated; shows the right message and stops the page otherwise.

    Args:
        n: how many bundles the page needs (Compare needs 2).
    """
    r = root()
    paths = params.selected_bundles(r)
    if not params.available(r):
        st.error(f"No bundles found in {code(r)}. A bundle is a folder with a manifest.json written by "
                 "precompute. Make one, then reload this page:")
        st.code(MAKE_BUNDLE_COMMANDS, language="bash")
        st.caption("Start the app on another folder with `streamlit run app/main.py -- --bundles DIR` "
                   "or the TXFM_BUNDLES environment variable.")
        st.stop()
    out = []
    for p in paths:
        try:
            out.append(loaders.bundle(p))
        except BundleError as e:
            st.error(f"Bundle {code(p.name)} is not valid: {esc(problem_line(e))}")
            st.stop()
    if len(out) < n:
        st.info(f"This page needs {n} bundles: pick them in the sidebar ({len(params.available(r))} found in {code(r)}).")
        st.stop()
    return out


def gene_sets(b: Bundle):
    """The bundle's gene-set index for evidence (app.evidence), or, when a library file is damaged, an empty
    one and a one-line warning: the page still shows neighbours and known pairs, without shared sets."""
    from app.evidence import SetIndex
    try:
        return loaders.gene_sets(b)
    except BundleError as e:
        st.warning(f"No gene-set evidence: {esc(problem_line(e))}")
        return SetIndex.from_libraries({}, b.symbols)


def quality_badge(b: Bundle, matrix: str, container=st, detail: bool = True) -> None:
    """The matrix's trust badge (app.quality) with its one-line reason."""
    from app.quality import matrix_verdict
    v, ref = matrix_verdict(b, matrix, loaders.folder_bundles(root()))
    container.badge(f"{matrix}: {v.label}", color=v.colour)
    if detail:
        container.caption(esc(v.text) + (f" (PCA bundle {code(ref.name)})" if ref is not None else ""))


def gene_search(b: Bundle, label: str = "Search a gene to start", then: str | None = None) -> None:
    """A type-ahead gene box that stores the gene and opens page ``then`` (e.g. "views/neighbourhood.py")."""
    current = params.get("gene")
    row = loaders.index_for(b).lookup(current) if current else None
    _search_box(str(b.path), b.name, "gene", label, str(b.symbols[row]) if row is not None else None, then)


def gene_picker(b: Bundle, key: str = "gene", label: str = "Gene (symbol, alias or Ensembl id)") -> int | None:
    """Type-ahead gene search answered on the server, plus the current gene's resolution.

    The search box (streamlit-searchbox) sends each typed prefix to ``GeneIndex.suggest`` and shows
    its dozen answers, so the page never carries the bundle's 45,000 symbols. It lives in a fragment:
    a keystroke reruns only the box; picking a gene stores it in the ``key`` URL parameter and reruns
    the page. Returns the current gene's row, or None (after showing close matches) when the gene in
    the URL matches nothing.
    """
    idx = loaders.index_for(b)
    current = params.get(key)
    row = idx.lookup(current) if current else None
    _search_box(str(b.path), b.name, key, label, str(b.symbols[row]) if row is not None else None)
    if not current:
        return None
    if row is None:
        close = idx.close_matches(current)
        msg = f"Gene {code(current)} is not in bundle {code(b.name)}."
        st.warning(msg + (" Close matches: " + codes(close) if close else " No close matches."))
        cols = st.columns(max(len(close), 1))
        for c, name in zip(cols, close):
            if c.button(esc(name), key=f"close_{key}_{name}"):
                params.put(key, name)
                st.rerun()
        return None
    if str(b.symbols[row]) != current:
        st.caption(f"{code(current)} → **{esc(b.symbols[row])}**")
    params.put(key, str(b.symbols[row]))
    return int(row)


@st.fragment
def _search_box(path: str, name: str, key: str, label: str, current: str | None, then: str | None = None) -> None:
    from streamlit_searchbox import st_searchbox
    idx = loaders.index_for(loaders.bundle(Path(path)))
    box = f"sb_{key}_{name}"
    state = st.session_state.get(box)
    if state is not None and state.get("result") not in (None, current):
        del st.session_state[box]          # the gene changed elsewhere (URL, another page): a fresh box

    def picked(value: str) -> None:        # Enter or a click on a suggestion: open it at once (one rerun)
        params.put(key, value)
        if then:
            params.switch_page(then)
        st.rerun(scope="app")

    st_searchbox(idx.suggest, key=box, label=label, rerun_scope="fragment", debounce=100, submit_function=picked,
                 placeholder=f"{current} · type to search another gene" if current
                 else "type to search, e.g. TP53, p21 or ENSG00000141510",
                 help="Symbols, aliases (p21) and Ensembl ids (ENSG...), any case; suggestions come from the "
                      "bundle's gene table as you type. Enter picks the first.")


def export_buttons(name: str, table=None, sets=None,
                   graph: nx.Graph | None = None, view: dict | None = None, key: str = "") -> None:
    """Download buttons (built only when clicked) for a gene list / table / network / view.

    Args:
        name: file name stem ("TP53_neighbours").
        table: CSV export: a DataFrame, or a function returning one (built on click).
        sets: GMT export: {set name: genes}, or a function returning that dict (built on click).
        graph: GraphML export (Cytoscape): a graph, or a function returning one (built on click).
        view: JSON export: dict with keys page, bundle, params, genes.
    """
    cols = st.columns(4)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    if table is not None:
        cols[0].download_button("CSV", data=lambda: table_csv(table() if callable(table) else table), file_name=f"{safe}.csv", mime="text/csv",
                                key=f"dl_csv_{key}", on_click="ignore", icon=":material/download:")
    if sets:
        cols[1].download_button("GMT", data=lambda: gmt_bytes(sets() if callable(sets) else sets), file_name=f"{safe}.gmt", mime="text/plain",
                                key=f"dl_gmt_{key}", on_click="ignore", icon=":material/download:")
    if graph is not None and (callable(graph) or graph.number_of_nodes()):
        cols[2].download_button("GraphML (Cytoscape)", data=lambda: graphml_bytes(graph() if callable(graph) else graph),
                                file_name=f"{safe}.graphml",
                                mime="application/xml", key=f"dl_graphml_{key}", on_click="ignore",
                                icon=":material/download:")
    if view is not None:
        cols[3].download_button("View (JSON)", data=lambda: view_json(**view), file_name=f"{safe}.view.json",
                                mime="application/json", key=f"dl_json_{key}", on_click="ignore",
                                icon=":material/download:")


def enrich_with_progress(genes: list[str], libraries: dict, universe, **kw) -> pd.DataFrame:
    """``app.enrichment.enrich_list`` with a progress bar naming the library being tested."""
    from app.enrichment import enrich_list  # scipy.stats loads on first use
    bar = st.progress(0.0, text=f"Testing {len(libraries)} gene-set libraries…")

    def step(done: int, total: int, name: str) -> None:
        bar.progress(done / max(total, 1), text=f"Testing {esc(name)} ({done + 1} of {total} libraries)…")

    try:
        return enrich_list(genes, libraries, universe, progress=step, **kw)
    finally:
        bar.empty()


def enrichment_table(df: pd.DataFrame, height: int = 320) -> None:
    """An enrichment result as a sortable table, full width, q (BH) and p first in scientific notation,
    the overlapping genes last."""
    if df.empty:
        st.info("No gene set overlaps this list.")
        return
    first = [c for c in ("q", "p", "term", "library", "overlap") if c in df.columns]
    last = [c for c in ("genes",) if c in df.columns]
    df = df[first + [c for c in df.columns if c not in first + last] + last]
    st.dataframe(df, hide_index=True, height=height, width="stretch", column_config={
        "p": st.column_config.NumberColumn("p", format="%.2e"),
        "q": st.column_config.NumberColumn("q (BH)", format="%.2e"),
        "genes": st.column_config.TextColumn("overlapping genes", width="large"),
    })


def gene_table(b: Bundle, rows: np.ndarray) -> pd.DataFrame:
    """Symbol / Ensembl id table for gene rows (the CSV export of any gene list)."""
    g = b.genes.iloc[np.asarray(rows, dtype=np.int64)]
    return pd.DataFrame({"gene": g["symbol"].to_numpy(), "ensembl_id": g["ensembl_id"].to_numpy()})


def matrix_choice(b: Bundle, label: str = "Gene matrix", key: str = "matrix", container=st) -> str:
    """Select box for the gene matrix, synchronised with the ``matrix`` URL parameter."""
    names = b.matrix_names
    current = params.get(key)
    idx = names.index(current) if current in names else 0
    m = container.selectbox(label, names, index=idx, key=f"w_{key}_{b.name}",
                            help="codebook = input gene embeddings; decoder = output gene weights; pca = PCA baseline")
    params.put(key, m, default=names[0])
    return m


_RANK_OWNER = "_rank_owner"   # session only (not in the URL): which bundle/matrix the stored rank is for


def rank_choice(b: Bundle, matrix: str, container=st) -> int:
    """Slider for the subspace rank, synchronised with the ``rank`` URL parameter.

    A rank belongs to the matrix it was chosen for: after switching matrix (or bundle) the slider
    starts at the new matrix's chosen rank, the one its label names, not at the previous matrix's."""
    hi, default = b.max_rank(matrix), b.default_rank(matrix)
    wkey = f"w_rank_{b.name}_{matrix}"
    owner = f"{b.name}/{matrix}"
    if params.get(_RANK_OWNER) not in (None, owner):   # the stored rank was chosen for another matrix
        params.put("rank", None)
        st.session_state.pop(wkey, None)
    params.put(_RANK_OWNER, owner)
    r = min(max(params.as_int(params.get("rank"), default), 1), hi)
    if wkey not in st.session_state:  # (re)created: start from the URL value or the chosen rank
        st.session_state[wkey] = r
    r = container.slider(f"Subspace rank (chosen: {default})", 1, hi, key=wkey,
                         help="Similarity uses the first r standardised principal components of the matrix.")
    params.put("rank", int(r), default=default)
    return int(r)
