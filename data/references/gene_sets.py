"""Gene-set libraries for enrichment: MSigDB (from the pegasuspy wheel) and GO biological process
(from Debian's org.Hs.eg.db + GO.db SQLite files).

GO propagation: a gene annotated to a term is also a member of every ancestor of that term
along the chosen relation types of GO.db's `go_bp_parents` table (default: is_a and part_of;
GO.db spells them "isa" and "part of"). GO.db's own precomputed `go_bp_offspring` table also
follows the regulates relations; pass all five types to reproduce it. Evidence codes are kept
as they are (no code is excluded unless asked).
"""
from __future__ import annotations

import re
import sqlite3
import zipfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable

import pandas as pd

PEGASUS = ("pegasuspy", "1.10.2")
PEGASUS_DIR = "pegasus/data_files"
HALLMARK_FILE = "h.all.v7.5.1.symbols.gmt"
CP_FILE = "c2.cp.v7.5.1.symbols.gmt"
CP_PREFIXES = {"REACTOME_": "MSigDB_Reactome", "KEGG_": "MSigDB_KEGG",
               "WP_": "MSigDB_WikiPathways", "BIOCARTA_": "MSigDB_BioCarta", "PID_": "MSigDB_PID"}
CP_OTHER = "MSigDB_CP_other"  # NABA_, SA_, SIG_, WNT_ collections of the same c2.cp file
HALLMARK = "MSigDB_Hallmark"

GODB_PACKAGE = "r-bioc-go.db"
GODB_SQLITE = "GO.db/extdata/GO.sqlite"
GODB_DESCRIPTION = "GO.db/DESCRIPTION"
GO_RELATIONS_ALL = ("isa", "part of", "regulates", "positively regulates", "negatively regulates")
DEFAULT_GO_RELATIONS = ("isa", "part of")


def read_pegasus_wheel(wheel: str | Path) -> dict:
    """MSigDB libraries from the pegasuspy wheel, read with zipfile (nothing installed).

    Returns {"libraries": {library: [(name, description, genes)]}, "files": {library: member},
    "licence": first line of the wheel's licence file}. The c2.cp file is split by collection
    prefix (CP_PREFIXES; the rest goes to CP_OTHER).
    """
    from common.gmt import read_gmt_text
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()

        def gmt(member: str) -> list:
            full = f"{PEGASUS_DIR}/{member}"
            if full not in names:
                raise ValueError(f"{wheel}: no {full}; is this pegasuspy {PEGASUS[1]}?")
            return read_gmt_text(z.read(full).decode("utf-8"), f"{wheel}:{full}")

        libraries = {HALLMARK: gmt(HALLMARK_FILE)}
        files = {HALLMARK: f"{PEGASUS_DIR}/{HALLMARK_FILE}"}
        for record in gmt(CP_FILE):
            lib = next((v for k, v in CP_PREFIXES.items() if record[0].startswith(k)), CP_OTHER)
            libraries.setdefault(lib, []).append(record)
            files[lib] = f"{PEGASUS_DIR}/{CP_FILE}"
        lic = [n for n in names if re.search(r"\.dist-info/(licenses/)?LICEN[SC]E", n)]
        licence = z.read(lic[0]).decode("utf-8").strip().splitlines()[0].strip() if lic else ""
    return {"libraries": libraries, "files": files, "licence": licence}


def go_terms_and_ancestors(godb_sqlite: str | Path, relations: Iterable[str] = DEFAULT_GO_RELATIONS
                           ) -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    """BP term names {go_id: term} and ancestors {go_id: all ancestors, self excluded} over the
    given relation types of GO.db's go_bp_parents."""
    relations = tuple(relations)
    unknown = set(relations) - set(GO_RELATIONS_ALL)
    if unknown:
        raise ValueError(f"unknown GO relation types {sorted(unknown)}; choose from "
                         f"{list(GO_RELATIONS_ALL)}")
    con = sqlite3.connect(f"file:{godb_sqlite}?mode=ro", uri=True)
    try:
        terms = dict(con.execute("SELECT go_id, term FROM go_term WHERE ontology = 'BP'"))
        marks = ",".join("?" * len(relations))
        edges = con.execute(
            "SELECT c.go_id, p.go_id FROM go_bp_parents e JOIN go_term c ON c._id = e._id "
            f"JOIN go_term p ON p._id = e._parent_id WHERE e.relationship_type IN ({marks})",
            relations).fetchall()
    finally:
        con.close()
    parents: dict[str, set[str]] = defaultdict(set)
    for child, parent in edges:
        if parent in terms:  # GO.db links biological_process to a pseudo-root "all"
            parents[child].add(parent)
    ancestors: dict[str, frozenset[str]] = {}

    def visit(term: str) -> frozenset[str]:
        if term not in ancestors:
            acc: set[str] = set()
            for p in parents.get(term, ()):
                acc.add(p)
                acc |= visit(p)
            ancestors[term] = frozenset(acc)
        return ancestors[term]

    for t in terms:
        visit(t)
    return terms, ancestors


def go_bp_sets(orgdb_sqlite: str | Path, godb_sqlite: str | Path, symbol_of_entrez: dict[str, str],
               relations: Iterable[str] = DEFAULT_GO_RELATIONS, min_size: int = 5,
               max_size: int = 2000, evidence: Iterable[str] | None = None
               ) -> tuple[dict[str, list[str]], dict[str, str], dict]:
    """GO biological-process gene sets with propagated annotations.

    `symbol_of_entrez` maps Entrez ids to the canonical symbols (genes.tsv); annotations of
    genes outside it are dropped and counted. `evidence` (None = all) restricts the evidence
    codes. Sets of size outside [min_size, max_size] (after propagation) are left out.
    Returns (sets {"term (GO:id)": sorted symbols}, descriptions {name: GO id}, stats).
    """
    terms, ancestors = go_terms_and_ancestors(godb_sqlite, relations)
    con = sqlite3.connect(f"file:{orgdb_sqlite}?mode=ro", uri=True)
    try:
        ann = pd.read_sql_query("SELECT g.gene_id AS entrez, b.go_id, b.evidence FROM go_bp b "
                                "JOIN genes g USING(_id)", con)
    finally:
        con.close()
    stats = {"direct_annotations": int(len(ann)),
             "evidence_codes": {k: int(v) for k, v in sorted(Counter(ann["evidence"]).items())}}
    if evidence is not None:
        ann = ann[ann["evidence"].isin(set(evidence))]
    ann = ann.assign(symbol=ann["entrez"].astype(str).map(symbol_of_entrez))
    stats["annotations_gene_not_in_table"] = int(ann["symbol"].isna().sum())
    ann = ann.dropna(subset=["symbol"])
    known = ann["go_id"].isin(terms.keys())
    stats["annotations_term_not_in_go_db"] = int((~known).sum())
    ann = ann[known]
    members: dict[str, set[str]] = defaultdict(set)
    for (go_id, symbol) in set(zip(ann["go_id"], ann["symbol"])):
        members[go_id].add(symbol)
        for a in ancestors[go_id]:
            members[a].add(symbol)
    sets, descriptions = {}, {}
    for go_id in sorted(members):
        genes = members[go_id]
        if min_size <= len(genes) <= max_size:
            name = f"{terms[go_id]} ({go_id})"
            sets[name] = sorted(genes)
            descriptions[name] = go_id
    stats.update({"annotations_used": int(len(ann)), "terms_with_genes": len(members),
                  "sets_written": len(sets), "size_range": [min_size, max_size],
                  "relations": list(relations),
                  "evidence": "all" if evidence is None else sorted(set(evidence))})
    return sets, descriptions, stats
