"""The app's view parameters: the bundles folder (command line), the URL-synchronised parameters
(bundle, gene, k, threshold, matrix, rank, ...) and which bundles are selected.

Session state is the source of truth for the view parameters; it is filled from the URL query
parameters once per session and mirrored back to the URL on every run, so a view survives page
switches and can be shared as a link.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import streamlit as st

from precompute.bundle.reader import discover_bundles

URL_PARAMS = ("bundle", "cmp_a", "cmp_b", "gene", "genes", "k", "threshold", "matrix", "rank", "resolution", "module", "component")
DEFAULTS = {"k": 20, "threshold": 0.5}
_STORE = "_txfm_params"


# ---- bundles folder ---------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    """Options after ``--`` on ``streamlit run app/main.py -- --bundles DIR``."""
    ap = argparse.ArgumentParser(prog="streamlit run app/main.py --",
                                 description="TxFM gene explorer over precomputed bundles.")
    ap.add_argument("--bundles", type=Path, default=None,
                    help="folder holding bundle folders (or one bundle); default $TXFM_BUNDLES or ./bundles")
    args, _ = ap.parse_known_args(argv)
    return args


def bundles_root(argv: list[str]) -> Path:
    """The bundles folder: ``--bundles`` beats the TXFM_BUNDLES environment variable beats ./bundles."""
    args = parse_args(argv)
    if args.bundles is not None:
        return args.bundles
    return Path(os.environ.get("TXFM_BUNDLES", "bundles"))


# ---- URL-synchronised parameters --------------------------------------------------------------
def _store() -> dict:
    if _STORE not in st.session_state:
        init = {}
        for key in URL_PARAMS:
            if key in st.query_params:
                init[key] = st.query_params.get_all(key) if key == "bundle" else st.query_params[key]
        st.session_state[_STORE] = init
    return st.session_state[_STORE]


def get(key: str, default=None):
    """A view parameter (string from the URL, or whatever a page stored)."""
    return _store().get(key, DEFAULTS.get(key, default))


def put(key: str, value) -> None:
    """Store a view parameter (None removes it)."""
    s = _store()
    if value is None:
        s.pop(key, None)
    else:
        s[key] = value


def sync_url() -> None:
    """Mirror the stored view parameters into the URL query string."""
    want: dict[str, object] = {}
    for key in URL_PARAMS:
        v = _store().get(key)
        if v is None or v == "" or v == []:
            continue
        want[key] = [str(x) for x in v] if isinstance(v, list) else str(v)
    current = {k: (st.query_params.get_all(k) if isinstance(want.get(k), list) else st.query_params.get(k))
               for k in st.query_params}
    if current != want:
        st.query_params.from_dict(want)


def as_int(v, default: int) -> int:
    """Parse a URL value as int, falling back to ``default`` on junk."""
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def as_float(v, default: float) -> float:
    """Parse a URL value as float, falling back to ``default`` on junk."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


# ---- selection ------------------------------------------------------------------------------
def available(root: Path) -> list[Path]:
    """Bundle folders under the bundles root."""
    return discover_bundles(root)


def selected_bundles(root: Path) -> list[Path]:
    """Bundles chosen in the sidebar (by folder name), defaulting to the first one found."""
    found = {p.name: p for p in available(root)}
    chosen = get("bundle") or []
    if isinstance(chosen, str):
        chosen = [chosen]
    chosen = [c for c in chosen if c in found]
    if not chosen and found:
        chosen = [next(iter(found))]
    return [found[c] for c in chosen]
