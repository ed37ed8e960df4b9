"""Gene-identifier harmonisation: symbols, aliases, Ensembl and Entrez ids onto one vocabulary.

The canonical vocabulary is one row per gene (symbol + Ensembl id + Entrez id). The offline
table is built from the SQLite database inside Debian's ``r-bioc-org.hs.eg.db`` package
(NCBI Gene, with Ensembl cross-references); R is not needed. It is written to
``<cache>/genes/genes.tsv`` (columns in docs/formats.md) and recorded in the references
manifest.

Mapping priority (the first level with any hit decides; more than one gene at that level is
reported as "ambiguous", never merged): exact current symbol > Ensembl id (version and
``_PAR_Y`` suffix ignored) > Entrez id > case-insensitive current symbol > previous symbol >
alias. Previous symbols and aliases are matched case-insensitively.
"""
from __future__ import annotations

import io
import re
import sqlite3
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from data.references import tables as refs
from common.atomic import atomic_write_text, sha256_file
from common.gene_ids import LEVELS, IdentifierIndex, human_ensembl_id
from data.references import registry

GENE_COLUMNS = ["symbol", "ensembl_id", "entrez_id", "name", "aliases", "previous_symbols"]
EXTRA_COLUMNS = ["gene_type", "other_ensembl_ids"]
ORGDB_PACKAGE = "r-bioc-org.hs.eg.db"
ORGDB_SQLITE = "org.Hs.eg.db/extdata/org.Hs.eg.sqlite"
ORGDB_DESCRIPTION = "org.Hs.eg.db/DESCRIPTION"
# NCBI records that are not transcribed genes: phenotype-only loci ("unknown", e.g. the
# disease locus "HBD, hypophosphatemic bone disease" that shares a symbol with haemoglobin
# delta) and regulatory/structural regions ("biological-region").
DEFAULT_EXCLUDED_TYPES = ("biological-region", "unknown")
BUILDER_VERSION = 2  # bump when genes_from_orgdb changes its output, so cached tables rebuild
HOW_LEVELS = LEVELS  # the levels of common.gene_ids, in order of precedence
_ENTREZ = re.compile(r"^\d+$")
MIN_TABLE_GENES = 10_000  # a complete human table has ~60,000 rows; fewer means a truncated file
# mouse-style symbols: capital + lower-case letter then letters/digits (Cd74, Actb, Gm12345); human
# symbols are upper case except open reading frames (C1orf112), whose second character is a digit
MOUSE_SYMBOL = re.compile(r"^(?:[A-Z][a-z][a-z0-9]*|mt-[A-Za-z0-9]+)$")


def _split(cell: str) -> list[str]:
    return [x for x in str(cell).split("|") if x] if cell else []


class GeneTable:
    """One row per gene; `map` turns any identifiers into (symbol, ensembl_id) with a status."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame.reset_index(drop=True)
        f = self.frame
        self._ids = IdentifierIndex(f["symbol"].tolist(), f["ensembl_id"].tolist(), f["entrez_id"].tolist(),
                                    f["previous_symbols"].tolist(), f["aliases"].tolist(),
                                    f["other_ensembl_ids"].tolist())

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(cls, df: pd.DataFrame, source: str = "DataFrame") -> "GeneTable":
        """Table from a DataFrame with the genes.tsv columns; only `symbol` is required.

        Missing optional columns are filled with "". Ensembl ids are stored unversioned.
        Raises ValueError naming `source` when symbols are missing/empty or ids malformed.
        """
        if "symbol" not in df.columns:
            raise ValueError(f"{source}: no 'symbol' column (found {list(df.columns)}); "
                             f"a gene table needs the columns {GENE_COLUMNS}")
        f = df.copy()
        for col in GENE_COLUMNS + EXTRA_COLUMNS:
            f[col] = f[col].fillna("").astype(str).str.strip() if col in f.columns else ""
        empty = f["symbol"] == ""
        if empty.any():
            raise ValueError(f"{source}: {int(empty.sum())} rows have an empty symbol "
                             f"(first at row {int(empty.idxmax())}); every gene needs a symbol")
        for col in ("ensembl_id",):
            bad = [x for x in f[col] if x and human_ensembl_id(x) is None]
            if bad:
                raise ValueError(f"{source}: column {col} has values that are not Ensembl gene "
                                 f"ids, e.g. {bad[:3]}; expected 'ENSG' + 11 digits")
            f[col] = [human_ensembl_id(x) or "" for x in f[col]]
        f["other_ensembl_ids"] = ["|".join(human_ensembl_id(x) or x for x in _split(c))
                                  for c in f["other_ensembl_ids"]]
        bad = [x for x in f["entrez_id"] if x and not _ENTREZ.match(x)]
        if bad:
            raise ValueError(f"{source}: entrez_id must be digits, found e.g. {bad[:3]}")
        return cls(f[GENE_COLUMNS + EXTRA_COLUMNS])

    @classmethod
    def read_tsv(cls, path: str | Path, min_genes: int = 0) -> "GeneTable":
        """Table from a genes.tsv file (as written by `build_gene_table`).

        Checked on load, each problem one line naming the file: not UTF-8 text (binary), no
        header with a `symbol` column, ragged or truncated lines, fewer than `min_genes` genes.
        """
        path = Path(path)
        fix = "rebuild it with `python -m data fetch-references --force` or point --gene-table to a complete genes.tsv"
        try:
            raw = path.read_bytes()
        except IsADirectoryError:
            raise ValueError(f"{path}: is a folder; pass a genes.tsv file or a references folder") from None
        if b"\x00" in raw[:65536]:
            raise ValueError(f"{path}: not a text table (binary data); a gene table is a UTF-8 tab-separated "
                             f"genes.tsv; {fix}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text (undecodable byte at offset {e.start}); a gene table is a "
                             f"UTF-8 tab-separated genes.tsv; {fix}") from None
        lines = text.split("\n")
        header = lines[0].rstrip("\r").split("\t") if lines else []
        if "symbol" not in header:
            raise ValueError(f"{path}: no 'symbol' column in the header (found {header[:8]}); a gene table has the "
                             f"tab-separated columns {GENE_COLUMNS}; {fix}")
        width = len(header)
        for i, line in enumerate(lines[1:], start=2):
            if line.strip() and line.count("\t") != width - 1:
                raise ValueError(f"{path}: line {i} has {line.count(chr(9)) + 1} fields, expected {width}; the "
                                 f"table is truncated or damaged; {fix}")
        n = sum(1 for line in lines[1:] if line.strip())
        if n < min_genes:
            raise ValueError(f"{path}: only {n} genes (a complete human table has about 60,000; at least "
                             f"{min_genes} are expected); the table is truncated; {fix}")
        df = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)
        return cls.from_frame(df, source=str(path))

    @classmethod
    def load(cls, cache_dir: str | Path = "cache/references", log=print) -> "GeneTable":
        """The offline gene table in `cache_dir`/genes/genes.tsv, building it on first use.

        Building runs `apt-get download r-bioc-org.hs.eg.db` (cached in `cache_dir`/downloads)
        and raises `references.RegistryError` with the failed command when offline and uncached.
        """
        path = Path(cache_dir) / "genes" / "genes.tsv"
        if not path.exists() or not _built_by_this_version(cache_dir):
            build_gene_table(cache_dir, log=log)
        _check_against_manifest(cache_dir, path)
        return cls.read_tsv(path, min_genes=MIN_TABLE_GENES)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def species(self) -> str:
        """"mouse" when most symbols are mouse-case (Cd74) or Ensembl ids are ENSMUSG, else "human"."""
        if getattr(self, "_species", None) is None:
            syms = self.frame["symbol"].head(5000)
            self._species = "mouse" if len(syms) and float(np.mean([bool(MOUSE_SYMBOL.match(x)) for x in syms])) > 0.5 \
                else "human"
        return self._species

    # ------------------------------------------------------------------ mapping
    def _lookup(self, identifier: str) -> tuple[str, list[int]]:
        """(how, rows) at the best level with any hit; ("", []) when nothing matches."""
        return self._ids.resolve(identifier)

    def _candidates(self, rows: list[int]) -> str:
        """'|'-joined sorted symbols; a symbol shared by several rows gets [entrez id]."""
        syms = [self.frame.at[r, "symbol"] for r in rows]
        labels = [s if syms.count(s) == 1 else f"{s}[{self.frame.at[r, 'entrez_id'] or r}]"
                  for s, r in zip(syms, rows)]
        return "|".join(sorted(set(labels)))

    def map(self, identifiers: Iterable) -> pd.DataFrame:
        """Map identifiers (symbols, Ensembl ids with or without version, Entrez ids).

        Returns a DataFrame with one row per input, in input order: input, symbol, ensembl_id,
        status ("mapped" | "ambiguous" | "unmapped"), how (the level that matched, see
        HOW_LEVELS; "" when unmapped), candidates ("|"-joined sorted symbols when ambiguous,
        a symbol held by several genes written SYMBOL[entrez id]; else "").
        Symbol and ensembl_id are "" unless status is "mapped".
        """
        rows_out = []
        cache: dict[str, tuple] = {}
        sym, ens = self.frame["symbol"].to_numpy(), self.frame["ensembl_id"].to_numpy()
        for raw in identifiers:
            key = "" if raw is None or (isinstance(raw, float) and raw != raw) else str(raw)
            if key not in cache:
                how, rows = self._lookup(key)
                if not rows:
                    cache[key] = ("", "", "unmapped", "", "")
                elif len(rows) == 1:
                    cache[key] = (sym[rows[0]], ens[rows[0]], "mapped", how, "")
                else:
                    cache[key] = ("", "", "ambiguous", how, self._candidates(rows))
            rows_out.append((key,) + cache[key])
        return pd.DataFrame(rows_out, columns=["input", "symbol", "ensembl_id", "status", "how",
                                               "candidates"])


def _check_against_manifest(cache_dir: str | Path, path: Path) -> None:
    """Refuse a genes.tsv that differs from what the references manifest recorded (edited, truncated)."""
    try:
        entries = refs.load_manifest(cache_dir)["tables"]
    except (FileNotFoundError, ValueError):
        return
    entry = next((t for t in entries if t["name"] == "genes"), {})
    if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
        raise ValueError(f"{path}: differs from the table recorded in {Path(cache_dir) / 'manifest.json'} (sha256 "
                         f"mismatch: edited, truncated or damaged); rebuild it with "
                         f"`python -m data fetch-references --force`")


def _built_by_this_version(cache_dir: str | Path) -> bool:
    """True when the manifest says genes.tsv was built by this BUILDER_VERSION with the
    default options (an older table is rebuilt from the cached download)."""
    try:
        entries = refs.load_manifest(cache_dir)["tables"]
    except (FileNotFoundError, ValueError):
        return False
    entry = next((t for t in entries if t["name"] == "genes"), {})
    return entry.get("params") == _build_params(DEFAULT_EXCLUDED_TYPES)


def _build_params(exclude_types: Iterable[str]) -> dict:
    return {"builder_version": BUILDER_VERSION, "exclude_types": sorted(set(exclude_types))}


def mapping_summary(res: pd.DataFrame) -> dict:
    """Counts from `GeneTable.map` output.

    Returns {"n", "mapped", "ambiguous", "unmapped", "by_how": {level: n mapped},
    "duplicate_targets": number of genes that two or more mapped inputs land on}.
    """
    status = res["status"].value_counts()
    mapped = res[res["status"] == "mapped"]
    by_how = {h: int(n) for h, n in mapped["how"].value_counts().items()}
    dup = int((mapped["symbol"].value_counts() > 1).sum())
    return {"n": int(len(res)), "mapped": int(status.get("mapped", 0)),
            "ambiguous": int(status.get("ambiguous", 0)),
            "unmapped": int(status.get("unmapped", 0)),
            "by_how": {h: by_how[h] for h in HOW_LEVELS if h in by_how},
            "duplicate_targets": dup}


# ---------------------------------------------------------------------- building from org.Hs.eg.db
def hgnc_mito_symbol(ncbi_symbol: str, aliases: Iterable[str]) -> str:
    """HGNC symbol of a mitochondrially encoded gene from NCBI's symbol and synonyms.

    NCBI names them ND1, COX1, CYTB, TRNF...; HGNC (and 10x/Ensembl feature names) use MT-ND1,
    MT-CO1, MT-CYB, MT-TF. NCBI's synonyms carry HGNC's symbol without the hyphen (MTND1,
    MTCO1, MTCYB), so the hyphen is put back; a tRNA without such a synonym (TRNF) follows
    HGNC's MT-T<amino acid> pattern. Anything else keeps the NCBI symbol.
    """
    for a in aliases:
        m = re.fullmatch(r"MT([A-Z][A-Z0-9]*)", a)
        if m:
            return f"MT-{m.group(1)}"
    m = re.fullmatch(r"TRN([A-Z]\d?)", ncbi_symbol)
    return f"MT-T{m.group(1)}" if m else ncbi_symbol


def sqlite_metadata(sqlite_path: str | Path) -> dict[str, str]:
    """The `metadata` table (name -> value) of an AnnotationDbi SQLite (source dates, URLs)."""
    con = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        return dict(con.execute("SELECT name, value FROM metadata").fetchall())
    finally:
        con.close()


def genes_from_orgdb(sqlite_path: str | Path,
                     exclude_types: Iterable[str] = DEFAULT_EXCLUDED_TYPES) -> pd.DataFrame:
    """Normalised genes.tsv frame from org.Hs.eg.db's SQLite (tables genes, gene_info, alias,
    ensembl, ncbi2ensembl, genetype).

    One row per Entrez gene whose NCBI type is not in `exclude_types`. ensembl_id is NCBI's
    own gene2ensembl link (table ncbi2ensembl; the lowest id when it lists several), else the
    lowest Ensembl-side link (table ensembl) that NCBI does not link to another gene, else "";
    the remaining links go to other_ensembl_ids (matched after primary ids). Mitochondrial
    genes take HGNC's MT- symbols (see `hgnc_mito_symbol`). NCBI's
    synonym list does not separate previous HGNC symbols from other aliases, so all synonyms
    are in `aliases` and `previous_symbols` is empty for this source.
    """
    con = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        q = lambda sql: pd.read_sql_query(sql, con)  # noqa: E731
        base = q("SELECT g._id, g.gene_id AS entrez_id, i.symbol, i.gene_name AS name, "
                 "t.gene_type FROM genes g JOIN gene_info i USING(_id) "
                 "LEFT JOIN genetype t USING(_id)")
        alias = q("SELECT _id, alias_symbol FROM alias")
        ens_all = q("SELECT _id, ensembl_id FROM ensembl")
        ens_ncbi = q("SELECT _id, ensembl_id FROM ncbi2ensembl")
        mito = set(q("SELECT _id FROM chromosomes WHERE chromosome = 'MT'")["_id"])
    finally:
        con.close()
    excluded = set(exclude_types)
    base = base[~base["gene_type"].fillna("").isin(excluded)].copy()
    base["symbol"] = [hgnc_mito_symbol(sym, alias.loc[alias["_id"] == gid, "alias_symbol"])
                      if gid in mito else sym for gid, sym in zip(base["_id"], base["symbol"])]
    sym_of = dict(zip(base["_id"], base["symbol"]))
    alias = alias[alias["_id"].isin(sym_of.keys())]
    alias = alias[alias["alias_symbol"] != alias["_id"].map(sym_of)]
    aliases = alias.groupby("_id")["alias_symbol"].agg(lambda s: "|".join(sorted(set(s))))
    all_links = ens_all.groupby("_id")["ensembl_id"].agg(lambda s: sorted(set(s)))
    ncbi_links = ens_ncbi.groupby("_id")["ensembl_id"].agg(lambda s: sorted(set(s)))
    claimed = set(ens_ncbi.loc[ens_ncbi["_id"].isin(sym_of.keys()), "ensembl_id"])
    primary, others = [], []
    for gid in base["_id"]:
        links = sorted(set(all_links.get(gid, [])) | set(ncbi_links.get(gid, [])))
        # NCBI's own gene2ensembl link first; an Ensembl-side link that NCBI gives to another
        # gene (e.g. a LOC record sharing TMPRSS2's id) is only kept as a secondary link.
        first = (ncbi_links.get(gid) or [x for x in links if x not in claimed] or [""])[0]
        primary.append(first)
        others.append("|".join(x for x in links if x != first))
    base["ensembl_id"] = primary
    base["other_ensembl_ids"] = others
    base["aliases"] = base["_id"].map(aliases).fillna("")
    base["previous_symbols"] = ""
    base["entrez_id"] = base["entrez_id"].astype(str)
    base = base.sort_values("symbol", kind="stable")
    return base[GENE_COLUMNS + EXTRA_COLUMNS].reset_index(drop=True)


def build_gene_table(cache_dir: str | Path = "cache/references",
                     exclude_types: Iterable[str] = DEFAULT_EXCLUDED_TYPES, log=print,
                     dest_dir: str | Path | None = None) -> dict:
    """Download org.Hs.eg.db (apt, cached in `cache_dir`/downloads) and write genes/genes.tsv.

    The table goes to `dest_dir` (default `cache_dir`) atomically. Without `dest_dir` the entry
    is also recorded in `cache_dir`/manifest.json; with it the caller records it. Returns the
    manifest entry (name "genes", kind "genes").
    """
    cache_dir = Path(cache_dir)
    downloads = cache_dir / "downloads"
    deb = registry.apt_download(ORGDB_PACKAGE, downloads, log=log)
    files = registry.extract_from_deb(deb, [ORGDB_SQLITE, ORGDB_DESCRIPTION], downloads, log=log)
    log(f"  building the gene table from {files[ORGDB_SQLITE].name}")
    frame = genes_from_orgdb(files[ORGDB_SQLITE], exclude_types)
    meta = sqlite_metadata(files[ORGDB_SQLITE])
    out = Path(dest_dir or cache_dir) / "genes" / "genes.tsv"
    atomic_write_text(out, frame.to_csv(sep="\t", index=False))
    entry = {
        "name": "genes", "kind": "genes", "file": "genes/genes.tsv",
        "source_package": ORGDB_PACKAGE, "version": registry.deb_info(deb)["Version"],
        "licence": registry.r_description_licence(files[ORGDB_DESCRIPTION])
        + " (License field of org.Hs.eg.db's DESCRIPTION)",
        "n_records": int(len(frame)), "n_genes": int(frame["symbol"].nunique()),
        "sha256": sha256_file(out),
        "source_file": ORGDB_SQLITE, "package_file": deb.name,
        "package_sha256": sha256_file(deb),
        "params": _build_params(exclude_types),
        "source_dates": {k: meta.get(k, "") for k in ("EGSOURCEDATE", "ENSOURCEDATE")},
        "notes": "NCBI Gene with NCBI/Ensembl gene links; previous symbols are listed among "
                 "aliases because NCBI's synonym list does not separate them",
    }
    if dest_dir is None:
        refs.update_manifest(cache_dir, [entry])
    log(f"  genes.tsv: {len(frame)} genes, {int((frame['ensembl_id'] != '').sum())} with an "
        f"Ensembl id")
    return entry
