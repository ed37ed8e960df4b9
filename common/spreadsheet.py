"""Spreadsheet-safe text cells (OWASP "CSV injection"): a cell that a spreadsheet would read as a
formula -- starting with '=', '+', '-', '@', a tab or a carriage return (also after leading spaces,
and the full-width forms some spreadsheets accept) -- is prefixed with a single quote so Excel,
LibreOffice and Google Sheets show it as text. Every CSV, TSV and GMT export uses it.
"""
from __future__ import annotations

from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FULLWIDTH = ("\uff1d", "\uff0b", "\uff0d", "\uff20")   # ＝ ＋ － ＠


def is_formula_like(value: Any) -> bool:
    """True for a string a spreadsheet could evaluate as a formula."""
    if not isinstance(value, str) or not value:
        return False
    if value.startswith(FORMULA_PREFIXES):
        return True
    head = value.lstrip(" \n")
    return head.startswith(FORMULA_PREFIXES + _FULLWIDTH)


def safe_cell(value: Any) -> Any:
    """`value` unchanged unless it is a string a spreadsheet would evaluate; then "'" + value."""
    if is_formula_like(value):
        return "'" + value
    return value


def safe_frame(df):
    """A copy of a pandas DataFrame whose text cells and column names are `safe_cell`-ed.

    Numeric columns are untouched (a negative number stays a number)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("string", "category"):
            out[col] = out[col].astype(object).map(safe_cell)
    out.columns = [safe_cell(c) if isinstance(c, str) else c for c in out.columns]
    return out
