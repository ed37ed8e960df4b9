"""Reference tables (docs/formats.md "Reference tables") mapped onto a gene vocabulary.

Reading is delegated to `data.references.tables` (load_pairs, load_gmt), which owns the format.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data.references import tables as _data_refs


def _check_dir(ref_dir: Path) -> Path:
    ref_dir = Path(ref_dir)
    if not ref_dir.is_dir():
        raise FileNotFoundError(f"{ref_dir}: reference folder not found; create it with "
                                "`python -m data fetch-references` (or pass --references DIR)")
    if not (ref_dir / "pairs").is_dir() and not (ref_dir / "gmt").is_dir():
        raise FileNotFoundError(f"{ref_dir}: has neither pairs/ nor gmt/; it is not a reference folder "
                                "(docs/formats.md 'Reference tables')")
    return ref_dir


def load_pairs(ref_dir: Path) -> pd.DataFrame:
    """All relationship pairs as DataFrame(source, gene_a, gene_b) from `ref_dir/pairs/*.tsv`.

    source is the file stem (CORUM, huMAP, Reactome, SIGNOR, StringDB). Reads with
    data.references.tables.load_pairs (the owner of the format).
    """
    return _data_refs.load_pairs(_check_dir(ref_dir))


def load_gmt(path: Path) -> dict[str, list[str]]:
    """A GMT file as {term: [gene, ...]} (data.references.tables.load_gmt)."""
    return _data_refs.load_gmt(path)


def gmt_files(ref_dir: Path) -> dict[str, Path]:
    """{library name: path} for every `ref_dir/gmt/*.gmt`."""
    ref_dir = _check_dir(ref_dir)
    return {p.stem: p for p in sorted((ref_dir / "gmt").glob("*.gmt"))}


def load_gene_aliases(ref_dir: Path) -> pd.DataFrame | None:
    """genes/genes.tsv (symbol, ensembl_id, aliases, previous_symbols) or None when absent."""
    p = Path(ref_dir) / "genes" / "genes.tsv"
    if not p.is_file():
        return None
    return pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False)
