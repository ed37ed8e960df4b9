"""Writing results: atomic files (temp + rename), result folders, small markdown tables.

Result folders (`--out` of perturbation, celltype, ablate) are recognised by the files the command
itself writes; a folder holding anything else is never written into (common.outputs).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable

import pandas as pd

from common.atomic import atomic_write_text


def result_folder_test(marker: str) -> Callable[[Path], bool]:
    """is_own(path) for a benchmark's result folder: run.json plus the command's own MARKER file."""
    def is_own(path: Path) -> bool:
        return (Path(path) / "run.json").is_file() and (Path(path) / marker).is_file()
    return is_own


def is_ablation_folder(path: Path) -> bool:
    """An ablation folder: its runs/ subfolder or its tables."""
    p = Path(path)
    return (p / "ablation_runs.csv").is_file() or (p / "ablation.csv").is_file() or (p / "runs").is_dir()


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    from common.spreadsheet import safe_frame  # labels from data files: no spreadsheet formulas
    return atomic_write_text(path, safe_frame(df).to_csv(index=False))


def write_json(obj, path: str | os.PathLike) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def _fmt(v, digits: int) -> str:
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub markdown table of a DataFrame (floats rounded, NaN as an em dash)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v, digits) for v in row) + " |")
    return "\n".join(lines) + "\n"
