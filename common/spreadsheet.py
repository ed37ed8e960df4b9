"""Spreadsheet-safe text cells (OWASP "CSV injection"): a cell that a spreadsheet would read as a
formula -- starting with '=', '+', '-', '@', a tab or a carriage return -- is prefixed with a single
quote so Excel, LibreOffice and Google Sheets show it as text. Every CSV, TSV and GMT export uses it.
"""
from __future__ import annotations

from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value` unchanged unless it is a string a spreadsheet would evaluate; then "'" + value."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value
