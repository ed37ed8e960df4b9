"""TxFM gene explorer: ``streamlit run app/main.py -- --bundles DIR`` (or TXFM_BUNDLES=DIR).

Reads precomputed bundles only (no torch, no checkpoints). Pages live in app/views/.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `streamlit run app/main.py` puts app/ on the path, not the repo
    sys.path.insert(0, str(HERE.parent))

import streamlit as st  # noqa: E402

from app import params, ui  # noqa: E402
from precompute.bundle.reader import BundleError  # noqa: E402
from app.text import esc  # noqa: E402

log = logging.getLogger("txfm.app")

PAGES = [
    ("overview.py", "Overview", ":material/dashboard:"),
    ("gene_map.py", "Gene map", ":material/scatter_plot:"),
    ("neighbourhood.py", "Gene neighbourhood", ":material/hub:"),
    ("modules.py", "Modules", ":material/workspaces:"),
    ("enrichment.py", "Enrichment", ":material/science:"),
    ("compare.py", "Compare matrices", ":material/compare:"),
    ("subspaces.py", "Subspaces", ":material/stacked_line_chart:"),
    ("run.py", "Training run", ":material/timeline:"),
]


def main(argv: list[str]) -> None:
    """Configure the page, pick bundles in the sidebar, run the selected page, mirror state to the URL."""
    st.set_page_config(page_title="TxFM gene explorer", page_icon=":material/genetics:", layout="wide")
    root = params.bundles_root(argv)
    st.session_state["_bundles_root"] = str(root)
    pages = [st.Page(HERE / "views" / f, title=t, icon=i, default=(n == 0)) for n, (f, t, i) in enumerate(PAGES)]
    # Our own page links (the built-in menu would open a page with an empty URL, a history entry that
    # Back stops at): drawn at the top of the sidebar after the page has run, carrying its final view.
    nav = st.navigation(pages, position="hidden")
    links = st.sidebar.container()
    st.sidebar.title("TxFM explorer")
    ui.bundle_sidebar(root)
    try:
        _run(nav)
    finally:      # also when a page stops early (st.stop): the links and the URL always follow the view
        params.sync_url()
        for page in pages:
            links.page_link(page, query_params=params.url_view(), width="stretch")


def _run(nav) -> None:
    """Run the selected page; expected bundle problems and defects become one line on the page."""
    try:
        nav.run()
    except (BundleError, OSError, UnicodeDecodeError) as e:
        # A damaged or unreadable bundle file (right size, wrong content): one plain-text line.
        log.warning("bundle problem: %s", e)
        st.error(f"Bundle problem: {esc(ui.problem_line(e))}")
    except Exception as e:  # noqa: BLE001 -- never a traceback in the page; the full one goes to the terminal
        log.exception("page failed")
        st.error(f"Internal error ({esc(type(e).__name__)}): {esc(ui.problem_line(e))}. "
                 "The full traceback is in the terminal running streamlit; please report it.")


main(sys.argv[1:])
