"""`python -m data SUBCOMMAND ...`: the data room's command line.

Each subcommand is registered by one small `register_*` function that adds its parser and sets
`func`; to add a subcommand, write such a function and append it to SUBCOMMANDS.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common.atomic import atomic_write_text
from common.errors import EXIT_CODES_HELP, UserError


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- fetch-references
def _is_references(path: Path) -> bool:
    """A reference folder (or the download cache of an interrupted first fetch): fetch-references' own."""
    return (path / "manifest.json").is_file() or (path / "downloads").is_dir()


def run_fetch_references(args: argparse.Namespace) -> int:
    from common.outputs import check_output_target
    from data.references.fetch import fetch_references
    # fetch-references updates its own folder in place (tables staged and moved in when all succeeded);
    # it never writes into a folder that is not a reference folder.
    check_output_target(args.out, "reference folder", _is_references, replace=True)
    man = fetch_references(args.out, force=args.force, go_min_size=args.go_min_size,
                           go_max_size=args.go_max_size, go_relations=args.go_relations,
                           go_evidence=args.go_evidence, log=_log)
    for t in man["tables"]:
        print(f"{t['kind']:6s} {t['name']:22s} {t['n_records']:>8d} records "
              f"{t['n_genes']:>7d} genes  {t['source_package']} {t['version']}")
    return 0


def register_fetch_references(sub) -> None:
    p = sub.add_parser("fetch-references", help="download and build the reference tables",
                       description="Download (cached) the registry packages and write gene "
                       "table, relationship pairs and GMT gene-set libraries with a manifest "
                       "(layout: docs/formats.md). A second run is a no-op; works offline once "
                       "the downloads are cached in OUT/downloads.")
    p.add_argument("--out", default="cache/references",
                   help="output folder (default: %(default)s)")
    p.add_argument("--force", action="store_true",
                   help="rebuild every table even when the manifest says it is up to date "
                   "(the cached downloads are reused)")
    p.add_argument("--go-min-size", type=int, default=5,
                   help="smallest GO BP gene set written, after propagation (default: %(default)s)")
    p.add_argument("--go-max-size", type=int, default=2000,
                   help="largest GO BP gene set written (default: %(default)s)")
    p.add_argument("--go-relations", nargs="+", default=None, metavar="REL",
                   help="GO.db relation types to propagate along: any of 'isa', 'part of', "
                   "'regulates', 'positively regulates', 'negatively regulates' "
                   "(default: isa, part of)")
    p.add_argument("--go-evidence", nargs="+", default=None, metavar="CODE",
                   help="keep only these GO evidence codes, e.g. EXP IDA IPI (default: all)")
    p.set_defaults(func=run_fetch_references)


# ---------------------------------------------------------------------- map-genes
def read_identifiers(path: Path, column: str | None = None) -> list[str]:
    """Gene identifiers of a data file: .h5ad var_names, the first (or named) column of a
    genes x samples CSV/TSV (optionally .gz), or one identifier per line of any other file."""
    name = path.name.lower()
    if name.endswith(".h5ad"):
        import anndata
        adata = anndata.read_h5ad(path, backed="r")
        try:
            return [str(x) for x in (adata.var[column] if column else adata.var_names)]
        finally:
            adata.file.close()
    if any(name.endswith(s) for s in (".csv", ".csv.gz", ".tsv", ".tsv.gz")):
        import csv
        import gzip
        sep = "\t" if ".tsv" in name else ","
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", newline="") as fh:
            rows = csv.reader(fh, delimiter=sep)
            header = next(rows, [])
            # R's write.csv leaves the row-name column unnamed, so the header may be one
            # field short; either way the identifiers are a field of every data row.
            pos = header.index(column) if column else 0
            return [r[pos] for r in rows if r]
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_map_genes(args: argparse.Namespace) -> int:
    from data.genes.table import GeneTable, mapping_summary
    table = GeneTable.load(args.references, log=_log)
    rows = []
    for path in args.files:
        path = Path(path)
        if not path.exists():
            raise UserError(f"{path}: no such file; check the path")
        res = table.map(read_identifiers(path, args.column))
        s = mapping_summary(res)
        rows.append((path, s, res))
        if args.out:
            out = Path(args.out) / f"{path.name}.mapping.tsv"
            if out.exists() and not args.overwrite:
                raise UserError(f"{out}: already exists; pass --overwrite to replace the mapping files, or "
                                "choose another --out")
            from common.spreadsheet import safe_frame  # user identifiers: no spreadsheet formulas
            atomic_write_text(out, safe_frame(res).to_csv(sep="\t", index=False))
    if args.json:
        print(json.dumps({str(p): s for p, s, _ in rows}, indent=1))
        return 0
    print("| file | genes | mapped | ambiguous | unmapped | mapped % | by level |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for path, s, res in rows:
        levels = ", ".join(f"{k} {v}" for k, v in s["by_how"].items())
        print(f"| {path.name} | {s['n']} | {s['mapped']} | {s['ambiguous']} | {s['unmapped']} | "
              f"{100 * s['mapped'] / max(s['n'], 1):.1f} | {levels} |")
        if args.examples:
            miss = res.loc[res["status"] == "unmapped", "input"].head(args.examples).tolist()
            amb = res[res["status"] == "ambiguous"].head(args.examples)
            _log(f"{path.name}: unmapped e.g. {miss}; ambiguous e.g. "
                 f"{[f'{i}->{c}' for i, c in zip(amb['input'], amb['candidates'])]}")
    return 0


def register_map_genes(sub) -> None:
    p = sub.add_parser("map-genes", help="map a file's gene identifiers to the gene table",
                       description="Map the gene identifiers of data files (h5ad var_names, "
                       "first column of a genes x samples CSV/TSV, or one id per line) to "
                       "canonical symbols and print mapped / ambiguous / unmapped counts as a "
                       "Markdown table.")
    p.add_argument("files", nargs="+", help="data files (.h5ad, .csv[.gz], .tsv[.gz], .txt)")
    p.add_argument("--references", default="cache/references",
                   help="reference folder holding genes/genes.tsv; built there on first use "
                   "(default: %(default)s)")
    p.add_argument("--column", default=None,
                   help="var column (h5ad) or CSV column holding the identifiers "
                   "(default: var_names / first column)")
    p.add_argument("--out", default=None,
                   help="folder to write FILE.mapping.tsv with one row per identifier (only those files are "
                   "written; an existing one is replaced only with --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace existing FILE.mapping.tsv files in --out")
    p.add_argument("--examples", type=int, default=0,
                   help="print this many unmapped and ambiguous examples per file to stderr")
    p.add_argument("--json", action="store_true", help="print the summaries as JSON instead")
    p.set_defaults(func=run_map_genes)


# ---------------------------------------------------------------------- dispatcher
from data.corpus.cli import SUBCOMMANDS as BUILD_SUBCOMMANDS  # noqa: E402  build-corpus, build-demo, bench
from data.embed import register_embed  # noqa: E402

SUBCOMMANDS = [register_fetch_references, register_map_genes, *BUILD_SUBCOMMANDS, register_embed]


def build_parser() -> argparse.ArgumentParser:
    """The `python -m data` parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="python -m data", description="TxFM data room: "
                                     "reference tables, gene identifiers, corpora.", epilog=EXIT_CODES_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in SUBCOMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen subcommand; errors propagate to `common.errors.run_main`
    (registry, input and output errors: one line on stderr, exit 2)."""
    args = build_parser().parse_args(argv)
    return args.func(args)


def expected_errors() -> tuple[type[BaseException], ...]:
    from data.references.registry import RegistryError
    return (RegistryError,)


if __name__ == "__main__":
    from common.errors import run_main
    sys.exit(run_main(main, expected=expected_errors()))
