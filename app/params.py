"""The app's view parameters: the bundles folder (command line), the URL-synchronised parameters
(bundle, gene, k, threshold, matrix, rank, ...) and which bundles are selected.

Session state is the source of truth for the view parameters; it is filled from the URL query
parameters on a session's first run (and again after Back/Forward, see ``_store``) and mirrored back
to the URL on every run, so a view survives page switches, can be shared as a link, and each change
is a browser history entry.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import streamlit as st

from precompute.bundle.reader import discover_bundles

URL_PARAMS = ("bundle", "cmp_a", "cmp_b", "gene", "genes", "k", "threshold", "matrix", "rank", "resolution", "module", "component",
              "series", "step")
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
_SYNCED = "_txfm_synced_url"      # the query string this session last wrote (see sync_url)
_KEEP = {"_bundles_root"}         # session keys that are not view state


def _url_now() -> dict:
    """The view parameters in the browser's URL now, in the form sync_url writes them."""
    out = {}
    for key in URL_PARAMS:
        if key in st.query_params:
            out[key] = st.query_params.get_all(key) if key == "bundle" else st.query_params[key]
    return out


def _store() -> dict:
    """The view parameters. Filled from the URL on a session's first run; refilled from it whenever the
    URL differs from what this session last wrote, i.e. the browser's Back/Forward buttons (or an edited
    URL) took the user to another view: then every widget's state is dropped too, so each widget starts
    again from the URL's values. (A URL without parameters is not such a move: ``st.switch_page`` clears
    the query string for one run.)"""
    s = st.session_state
    url = _url_now()
    if _STORE not in s:
        s[_STORE] = dict(url)
        s[_SYNCED] = url
    elif url and s.get(_SYNCED) is not None and url != s[_SYNCED]:
        for k in list(s.keys()):
            if k not in _KEEP:
                del s[k]
        s[_STORE] = dict(url)
        s[_SYNCED] = url
    return s[_STORE]


def get(key: str, default=None):
    """A view parameter (string from the URL, or whatever a page stored)."""
    return _store().get(key, DEFAULTS.get(key, default))


_NO_DEFAULT = object()
_DEFAULTS = "_txfm_view_defaults"   # each parameter's default as last declared by a page (kept out of the URL)


def put(key: str, value, default=_NO_DEFAULT) -> None:
    """Store a view parameter (None removes it). ``default``: the value the page would show without it
    (first matrix, chosen rank, ...); a parameter at its default stays out of the URL, so merely
    opening a page adds no browser history entry and Back goes to the previous view in one step."""
    s = _store()
    if value is None:
        s.pop(key, None)
    else:
        s[key] = value
    if default is not _NO_DEFAULT:
        st.session_state.setdefault(_DEFAULTS, {})[key] = default


def url_view() -> dict[str, object]:
    """The stored view parameters as the URL carries them (values at their default left out)."""
    want: dict[str, object] = {}
    defaults = {**DEFAULTS, **st.session_state.get(_DEFAULTS, {})}
    for key in URL_PARAMS:
        v = _store().get(key)
        if v is None or v == "" or v == []:
            continue
        if key in defaults and _same(v, defaults[key]):
            continue
        want[key] = [str(x) for x in v] if isinstance(v, list) else str(v)
    return want


def sync_url() -> None:
    """Mirror the stored view parameters into the URL query string."""
    want = url_view()
    current = {k: (st.query_params.get_all(k) if isinstance(want.get(k), list) else st.query_params.get(k))
               for k in st.query_params}
    if current != want:
        st.query_params.from_dict(want)   # the browser pushes a history entry: Back returns to this view
    st.session_state[_SYNCED] = _url_now()


def switch_page(page: str) -> None:
    """Open another page with the current view in its URL (st.switch_page alone would clear the URL,
    leaving an empty history entry that Back would stop at)."""
    st.session_state[_SYNCED] = {k: v for k, v in url_view().items()}
    st.switch_page(page, query_params=url_view())


def _same(a, b) -> bool:
    """Equal as the URL would write them (lists element-wise, everything else as text)."""
    if isinstance(a, list) or isinstance(b, list):
        return [str(x) for x in (a if isinstance(a, list) else [a])] == [str(x) for x in (b if isinstance(b, list) else [b])]
    return str(a) == str(b) or (_num(a) is not None and _num(a) == _num(b))


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


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
