"""Reference tables from the package registries: relationship pairs, gene sets, provenance.

Sources (nothing is downloaded from any other host):
- PyPI wheel ``efaar-benchmarking==1.0`` (downloaded with ``pip download --no-deps``, read with
  zipfile, never installed): CORUM, hu.MAP, Reactome, SIGNOR and STRING pairs and CORUM complexes.
- PyPI wheel ``pegasuspy==1.10.2``: MSigDB v7.5.1 hallmark and canonical-pathway GMTs.
- Debian ``r-bioc-org.hs.eg.db`` + ``r-bioc-go.db`` (``apt-get download``; SQLite read directly):
  the gene table (see data/genes/table.py) and GO biological process gene sets.

Layout and manifest: "Reference tables" in docs/formats.md, read and written by
data/references/tables.py (the format; import readers from there). Downloads: data/references/registry.py; gene-set
builders (MSigDB, GO, CORUM complexes): data/references/gene_sets.py; `fetch_references` assembles them.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Iterable

import pandas as pd

from data.references import gene_sets as gs
from data.references import registry
from data.references.tables import canonical_pairs, load_manifest, write_gmt, write_manifest, write_pairs
from common.atomic import sha256_file
from data.references.registry import RegistryError

BUILDER_VERSION_REFS = 2  # bump when a table builder changes its output, so caches rebuild (2: CORUM names unescaped)
EFAAR = ("efaar-benchmarking", "1.0")
EFAAR_DIR = "efaar_benchmarking/benchmark_annotations"
# output source name -> file inside the efaar wheel (output names as in docs/formats.md)
PAIR_SOURCES = {"CORUM": "CORUM.txt", "huMAP": "HuMAP.txt", "Reactome": "Reactome.txt",
                "SIGNOR": "SIGNOR.txt", "StringDB": "StringDB.txt"}
CORUM_COMPLEXES = "CORUM_clusters.tsv"


# ---------------------------------------------------------------------- wheel readers
def wheel_licences(licence_text: str) -> dict[str, str]:
    """Parse efaar's benchmark_annotations/LICENSE: {file name: "licence (url)"} as stated."""
    out, current = {}, None
    for line in licence_text.splitlines():
        m = re.match(r"^##\s*(\S+)", line)
        if m:
            current = m.group(1)
            continue
        m = re.search(r"\[([^\]]+)\]\(([^)]+)\)", line)
        if current and m and current not in out:
            out[current] = f"{m.group(1)} ({m.group(2)})"
    return out


def read_efaar_wheel(wheel: str | Path) -> dict:
    """Raw tables from the efaar-benchmarking wheel, read with zipfile (nothing installed).

    Returns {"pairs": {source: DataFrame(entity1, entity2)}, "complexes": [(name, [genes])],
    "licences": {file: licence}}. Raises ValueError naming the wheel when a file is missing.
    """
    import zipfile
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())

        def text(member: str) -> str:
            full = f"{EFAAR_DIR}/{member}"
            if full not in names:
                raise ValueError(f"{wheel}: no {full}; is this efaar-benchmarking "
                                 f"{EFAAR[1]}? (found {len(names)} files)")
            return z.read(full).decode("utf-8")

        pairs = {}
        for source, member in PAIR_SOURCES.items():
            df = pd.read_csv(io.StringIO(text(member)), dtype=str, keep_default_na=False)
            if list(df.columns[:2]) != ["entity1", "entity2"]:
                raise ValueError(f"{wheel}:{member}: header {list(df.columns)}, expected "
                                 f"entity1,entity2")
            pairs[source] = df[["entity1", "entity2"]]
        complexes = []
        for i, line in enumerate(text(CORUM_COMPLEXES).splitlines(), 1):
            if line.strip():
                name, _, genes = line.partition("\t")
                if not genes.strip():
                    raise ValueError(f"{wheel}:{CORUM_COMPLEXES} line {i}: no genes")
                complexes.append((_unescape(name.strip()), list(dict.fromkeys(genes.split()))))
        licences = wheel_licences(text("LICENSE"))
    return {"pairs": pairs, "complexes": complexes, "licences": licences}


def _unescape(name: str) -> str:
    """CORUM_clusters.tsv writes some characters as literal escapes ("BARD1\\u2013BRCA1"): decode them, so a
    complex is shown as BARD1–BRCA1 and not with a backslash sequence."""
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), name)


def remap_symbols(symbols: Iterable[str], table) -> tuple[dict[str, str], dict]:
    """Map each distinct symbol to its current symbol with a GeneTable.

    Mapped ones are replaced (when different); ambiguous and unmapped ones are kept as given
    and counted. Returns ({old: new}, {"n_ids", "renamed", "ambiguous", "unmapped"}).
    """
    from data.genes.table import mapping_summary
    uniq = sorted(set(symbols))
    res = table.map(uniq)
    mapped = res[res["status"] == "mapped"]
    renames = {i: s for i, s in zip(mapped["input"], mapped["symbol"]) if i != s}
    summ = mapping_summary(res)
    return renames, {"n_ids": summ["n"], "renamed": len(renames),
                     "ambiguous": summ["ambiguous"], "unmapped": summ["unmapped"]}


def remap_sets(sets: dict[str, list[str]], table) -> tuple[dict[str, list[str]], dict]:
    """Apply `remap_symbols` to every gene of every set (order kept, duplicates dropped)."""
    renames, stats = remap_symbols((g for gs in sets.values() for g in gs), table)
    return {n: list(dict.fromkeys(renames.get(g, g) for g in gs)) for n, gs in sets.items()}, stats


# ---------------------------------------------------------------------- fetch-references
def expected_tables() -> list[str]:
    """Names of every table `fetch_references` writes."""
    return (["genes"] + list(PAIR_SOURCES) + ["CORUM_complexes", gs.HALLMARK]
            + list(gs.CP_PREFIXES.values()) + [gs.CP_OTHER, "GO_BP"])


def up_to_date(directory: str | Path, params: dict) -> bool:
    """True when the manifest lists every expected table, was built with `params`, and every
    file still has its recorded sha256."""
    try:
        man = load_manifest(directory)
    except (FileNotFoundError, ValueError):
        return False
    tables = {t["name"]: t for t in man.get("tables", [])}
    if man.get("params") != params or set(tables) != set(expected_tables()):
        return False
    return all((Path(directory) / t["file"]).exists()
               and sha256_file(Path(directory) / t["file"]) == t["sha256"] for t in tables.values())


def _entry(name: str, kind: str, root: Path, file: str, package: tuple[str, str], licence: str,
           n_records: int, n_genes: int, **extra) -> dict:
    return {"name": name, "kind": kind, "file": file, "source_package": package[0],
            "version": package[1], "licence": licence, "n_records": int(n_records),
            "n_genes": int(n_genes), "sha256": sha256_file(root / file), **extra}


def fetch_references(out: str | Path = "cache/references", force: bool = False,
                     go_min_size: int = 5, go_max_size: int = 2000,
                     go_relations: Iterable[str] | None = None,
                     go_evidence: Iterable[str] | None = None, log=print) -> dict:
    """Download (cached) and build every reference table into `out`; returns the manifest.

    A second call with the same parameters is a no-op. Tables are built in a staging folder
    inside `out` and moved into place only when all succeeded; the manifest is written last.
    Raises registry.RegistryError naming the package and command when a download fails.
    """
    import shutil
    import tempfile

    from data.genes.table import GeneTable, build_gene_table  # genes imports this module

    out = Path(out)
    relations = list(go_relations or gs.DEFAULT_GO_RELATIONS)
    from data.genes.table import BUILDER_VERSION
    params = {"builder_version": BUILDER_VERSION_REFS, "gene_table_builder_version": BUILDER_VERSION,
              "go_min_size": go_min_size, "go_max_size": go_max_size, "go_relations": relations,
              "go_evidence": None if go_evidence is None else sorted(set(go_evidence))}
    if not force and up_to_date(out, params):
        log(f"{out}: all {len(expected_tables())} reference tables are present and unchanged; "
            f"nothing to do (--force rebuilds from the cached downloads)")
        return load_manifest(out)
    downloads = out / "downloads"
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".building-", dir=out))
    tables: list[dict] = []
    try:
        log("[1/6] registry packages")
        efaar_whl = registry.pip_download(*EFAAR, downloads, log=log)
        peg_whl = registry.pip_download(*gs.PEGASUS, downloads, log=log)
        log("[2/6] gene table (org.Hs.eg.db)")
        tables.append(build_gene_table(out, log=log, dest_dir=stage))
        table = GeneTable.read_tsv(stage / "genes" / "genes.tsv")
        log("[3/6] relationship pairs (efaar-benchmarking)")
        efaar = read_efaar_wheel(efaar_whl)
        prov = {"package_file": efaar_whl.name, "package_sha256": sha256_file(efaar_whl)}
        for source, raw in efaar["pairs"].items():
            renames, stats = remap_symbols(pd.concat([raw["entity1"], raw["entity2"]]), table)
            pairs = canonical_pairs(raw["entity1"].map(lambda g: renames.get(g, g)),
                                    raw["entity2"].map(lambda g: renames.get(g, g)))
            write_pairs(stage / "pairs" / f"{source}.tsv", pairs)
            member = PAIR_SOURCES[source]
            tables.append(_entry(source, "pairs", stage, f"pairs/{source}.tsv", EFAAR,
                                 efaar["licences"].get(member, "not stated in the wheel"),
                                 len(pairs), pd.unique(pairs.values.ravel()).size,
                                 source_file=f"{EFAAR_DIR}/{member}", raw_rows=int(len(raw)),
                                 gene_mapping=stats, **prov))
            log(f"  {source}: {len(raw)} rows -> {len(pairs)} unordered pairs "
                f"({stats['renamed']} symbols renamed, {stats['unmapped']} unmapped kept)")
        log("[4/6] CORUM complexes (efaar-benchmarking)")
        complexes, stats = remap_sets(dict(efaar["complexes"]), table)
        write_gmt(stage / "gmt" / "CORUM_complexes.gmt", complexes,
                  {n: "CORUM complex" for n in complexes})
        tables.append(_entry(
            "CORUM_complexes", "gmt", stage, "gmt/CORUM_complexes.gmt", EFAAR,
            efaar["licences"].get("CORUM.txt", "not stated in the wheel")
            + " (stated for CORUM.txt; the LICENSE does not list CORUM_clusters.tsv)",
            len(complexes), len({g for s in complexes.values() for g in s}),
            source_file=f"{EFAAR_DIR}/{CORUM_COMPLEXES}", gene_mapping=stats, **prov))
        log("[5/6] MSigDB libraries (pegasuspy)")
        peg = gs.read_pegasus_wheel(peg_whl)
        prov = {"package_file": peg_whl.name, "package_sha256": sha256_file(peg_whl)}
        for lib, records in peg["libraries"].items():
            sets, stats = remap_sets({n: g for n, _, g in records}, table)
            write_gmt(stage / "gmt" / f"{lib}.gmt", sets, {n: d for n, d, _ in records})
            tables.append(_entry(lib, "gmt", stage, f"gmt/{lib}.gmt", gs.PEGASUS,
                                 f"{peg['licence']} (pegasuspy's licence; the wheel states no "
                                 f"separate licence for the MSigDB v7.5.1 files)",
                                 len(sets), len({g for s in sets.values() for g in s}),
                                 source_file=peg["files"][lib], gene_mapping=stats, **prov))
            log(f"  {lib}: {len(sets)} sets")
        log("[6/6] GO biological process (org.Hs.eg.db + GO.db)")
        tables.append(_build_go(out, stage, table, params, log))
        for sub in ("genes", "pairs", "gmt"):
            old = out / sub
            if old.exists():
                os.replace(old, stage / f"old-{sub}")
            os.replace(stage / sub, old)
        man = write_manifest(out, tables, params)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log(f"wrote {len(tables)} tables to {out} (manifest.json)")
    return man


def _build_go(out: Path, stage: Path, table, params: dict, log) -> dict:
    from data.genes.table import ORGDB_PACKAGE, ORGDB_SQLITE
    downloads = out / "downloads"
    org_deb = registry.apt_download(ORGDB_PACKAGE, downloads, log=log)
    org = registry.extract_from_deb(org_deb, [ORGDB_SQLITE], downloads, log=log)[ORGDB_SQLITE]
    go_deb = registry.apt_download(gs.GODB_PACKAGE, downloads, log=log)
    go_files = registry.extract_from_deb(go_deb, [gs.GODB_SQLITE, gs.GODB_DESCRIPTION],
                                         downloads, log=log)
    f = table.frame
    entrez = dict(zip(f["entrez_id"], f["symbol"]))
    entrez.pop("", None)
    sets, desc, stats = gs.go_bp_sets(org, go_files[gs.GODB_SQLITE], entrez,
                                      params["go_relations"], params["go_min_size"],
                                      params["go_max_size"], params["go_evidence"])
    write_gmt(stage / "gmt" / "GO_BP.gmt", sets, desc)
    log(f"  GO_BP: {len(sets)} sets ({stats['annotations_used']} direct annotations propagated)")
    go_version = registry.deb_info(go_deb)["Version"]
    org_version = registry.deb_info(org_deb)["Version"]
    licence = (f"{registry.r_description_licence(go_files[gs.GODB_DESCRIPTION])} (License field of "
               f"GO.db's and org.Hs.eg.db's DESCRIPTION)")
    return _entry("GO_BP", "gmt", stage, "gmt/GO_BP.gmt",
                  (f"{gs.GODB_PACKAGE}+{ORGDB_PACKAGE}", f"{go_version}+{org_version}"), licence,
                  len(sets), len({g for s in sets.values() for g in s}),
                  source_file=f"{gs.GODB_SQLITE} + {ORGDB_SQLITE}",
                  package_file=f"{go_deb.name} + {org_deb.name}",
                  package_sha256=f"{sha256_file(go_deb)} + {sha256_file(org_deb)}",
                  go_stats=stats)
