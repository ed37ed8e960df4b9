"""The reference-table format (read and write): the manifest, relationship pairs and GMT gene sets.

The one reader of every table under a references folder (layout: "Reference tables" in
docs/formats.md), used by every room; `data.references.fetch` builds the tables from the registries and
writes them through this module. Imports no other module of `data`, so the gene table
(`data.genes.table`) and the gene-set builders (`data.references.gene_sets`) can read references without a circle.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path
from typing import Iterable

import pandas as pd

from common.atomic import atomic_write_text
from common.gmt import gmt_sets

FORMAT, FORMAT_VERSION = "txfm-references", 1


# ---------------------------------------------------------------------- manifest
def load_manifest(directory: str | Path) -> dict:
    """The references manifest (`directory`/manifest.json), checked for format and version."""
    path = Path(directory) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no references manifest; run "
                                f"`python -m data fetch-references --out {directory}` first")
    man = json.loads(path.read_text(encoding="utf-8"))
    if man.get("format") != FORMAT or int(man.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{path}: format {man.get('format')!r} version "
                         f"{man.get('format_version')!r}; this reader knows {FORMAT} <= "
                         f"{FORMAT_VERSION}; rerun `python -m data fetch-references --force`")
    return man


def update_manifest(directory: str | Path, entries: list[dict], params: dict | None = None) -> dict:
    """Replace (by name) or add table entries in the manifest and write it atomically."""
    path = Path(directory) / "manifest.json"
    old = load_manifest(directory) if path.exists() else {"tables": []}
    new_names = {e["name"] for e in entries}
    tables = [t for t in old["tables"] if t["name"] not in new_names] + list(entries)
    man = {"format": FORMAT, "format_version": FORMAT_VERSION,
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "params": old.get("params", {}) if params is None else params,
           "tables": sorted(tables, key=lambda t: (t["kind"], t["name"]))}
    atomic_write_text(path, json.dumps(man, indent=1) + "\n")
    return man


# ---------------------------------------------------------------------- pairs
def canonical_pairs(a: Iterable[str], b: Iterable[str]) -> pd.DataFrame:
    """DataFrame(gene_a, gene_b) with gene_a < gene_b, self-pairs dropped, each pair once,
    rows sorted."""
    df = pd.DataFrame({"x": list(a), "y": list(b)}, dtype=str)
    df = df[(df["x"] != "") & (df["y"] != "") & (df["x"] != df["y"])]
    lo = df[["x", "y"]].min(axis=1)
    hi = df[["x", "y"]].max(axis=1)
    out = pd.DataFrame({"gene_a": lo, "gene_b": hi}).drop_duplicates()
    return out.sort_values(["gene_a", "gene_b"]).reset_index(drop=True)


def write_pairs(path: str | Path, pairs: pd.DataFrame) -> Path:
    """Write a pairs TSV (header gene_a, gene_b) atomically."""
    return atomic_write_text(path, pairs[["gene_a", "gene_b"]].to_csv(sep="\t", index=False))


def load_pairs(directory: str | Path, sources: Iterable[str] | None = None) -> pd.DataFrame:
    """All pairs under `directory`/pairs as DataFrame(source, gene_a, gene_b).

    `sources` restricts to those names (e.g. ["CORUM", "StringDB"]); a missing one is an error.
    """
    pdir = Path(directory) / "pairs"
    available = {p.stem: p for p in sorted(pdir.glob("*.tsv"))}
    if not available:
        raise FileNotFoundError(f"{pdir}: no pairs/*.tsv; run "
                                f"`python -m data fetch-references --out {directory}` first")
    names = list(available) if sources is None else list(sources)
    missing = [s for s in names if s not in available]
    if missing:
        raise ValueError(f"{pdir}: no pairs for {missing}; available: {sorted(available)}")
    frames = []
    for name in names:
        df = pd.read_csv(available[name], sep="\t", dtype=str, keep_default_na=False)
        if list(df.columns) != ["gene_a", "gene_b"]:
            raise ValueError(f"{available[name]}: header {list(df.columns)}, expected "
                             f"['gene_a', 'gene_b']")
        frames.append(df.assign(source=name)[["source", "gene_a", "gene_b"]])
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------- GMT
def write_gmt(path: str | Path, sets: dict[str, list[str]],
              descriptions: dict[str, str] | None = None) -> Path:
    """Write gene sets as GMT (name TAB description TAB genes...) atomically, in dict order.

    A missing description is written as "na". Names, descriptions and genes must not contain
    tabs or newlines; empty sets are refused.
    """
    lines = []
    for name, genes in sets.items():
        desc = (descriptions or {}).get(name) or "na"
        fields = [name, desc, *genes]
        if any(re.search(r"[\t\r\n]", f) or f == "" for f in fields) or not genes:
            raise ValueError(f"{path}: gene set {name!r} has an empty field, no genes, or a "
                             f"tab/newline inside a field; GMT cannot represent it")
        lines.append("\t".join(fields))
    return atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def load_gmt(path: str | Path) -> dict[str, list[str]]:
    """GMT file -> {set name: [genes]} (file order)."""
    path = Path(path)
    return gmt_sets(path.read_text(encoding="utf-8"), str(path))


def write_manifest(directory: str | Path, tables: list[dict], params: dict) -> dict:
    """Write a complete manifest (replacing any previous one) atomically."""
    man = {"format": FORMAT, "format_version": FORMAT_VERSION,
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "params": params, "tables": sorted(tables, key=lambda t: (t["kind"], t["name"]))}
    atomic_write_text(Path(directory) / "manifest.json", json.dumps(man, indent=1) + "\n")
    return man
