"""Show user- and data-supplied strings as plain text (docs/reliability.md: no injection through links or data).

Streamlit renders every message, title, caption, label and button text as Markdown, and Plotly renders
a subset of HTML (including ``<a href>``) in titles, point text and hover text. A gene name from a data
file, a ``gene=`` URL parameter, a GMT term, a bundle folder name or a manifest field must therefore
never be interpolated raw:

- :func:`esc` escapes every Markdown-active ASCII punctuation character (links, emphasis, HTML, math,
  Streamlit's ``:colour[...]``/``:emoji:`` directives) and breaks GFM autolink literals: the browser's
  Markdown renderer (remark-gfm) turns ``https://x``, ``www.x.org`` and ``a@b.org`` into links in the
  text *after* escapes are resolved, so a backslash does not stop them; an invisible WORD JOINER
  (U+2060) before the scheme, the ``www.`` and the ``@`` does (a literal must follow a space or
  punctuation, and an e-mail's local part must touch its ``@``). Real gene symbols never contain these;
- :func:`code` wraps a string in an inline code span whose fence is longer than any backtick run in it
  (code spans are literal: no links, no autolinks, no directives);
- :func:`plain` escapes a string for Plotly's HTML-subset text.

Newlines are collapsed so a value can never start a new Markdown block (heading, list, table).
"""
from __future__ import annotations

import html
import re

# Every ASCII punctuation character: CommonMark allows a backslash escape before each of them, and
# escaping all of them (not only the famous few) also defeats GFM autolinks and Streamlit directives.
_PUNCT = re.compile(r"([!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])")
# What remark-gfm's autolink literals start with: a URL scheme (http, https, and the mailto/xmpp of newer
# GFM), ``www.``, or an e-mail address's ``@``.
_AUTOLINK = re.compile(r"((?:https?|ftp|mailto|xmpp):|www\.|@)", re.IGNORECASE)
WORD_JOINER = "\u2060"


def unlink(value: object) -> str:
    """``value`` (one line) with a WORD JOINER before anything a Markdown renderer would auto-link."""
    return _AUTOLINK.sub(WORD_JOINER + r"\1", _one_line(value))


def _one_line(value: object) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def esc(value: object) -> str:
    """``value`` as Markdown that renders as exactly its text (one line), never as a link."""
    return _PUNCT.sub(r"\\\1", unlink(value))


def code(value: object) -> str:
    """``value`` as a literal inline code span (one line), safe whatever backticks it contains."""
    s = _one_line(value)
    if not s:
        return esc(s)
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def codes(values, sep: str = ", ") -> str:
    """Several values as literal code spans joined by ``sep``."""
    return sep.join(code(v) for v in values)


def plain(value: object) -> str:
    """``value`` escaped for Plotly text/hover/title (which render ``<a href>``, ``<b>``, ``<br>``)."""
    return html.escape(str(value), quote=True)
