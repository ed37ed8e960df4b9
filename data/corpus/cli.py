"""Argument parsers for ``python -m data build-corpus``, ``build-demo`` and ``bench``.

Each ``register_*`` adds one subcommand to the ``python -m data`` parser
(see data/__main__.py) and sets ``func``.
"""
from __future__ import annotations

import argparse
import sys



def _kinds(rules: list[str] | None) -> dict:
    out = {}
    for r in rules or []:
        name, _, kind = r.partition("=")
        if kind not in ("bulk", "single-cell") or not name:
            raise ValueError(f"--kind {r!r}: expected DATASET=bulk or DATASET=single-cell")
        out[name] = kind
    return out


GENE_TABLE_HELP = ("'default' (cache/references/genes/genes.tsv, built by fetch-references on first use), a genes.tsv "
                   "path or references folder, or 'none' to keep ids as given (offline; sources using different id "
                   "kinds then do not align)")

# BuildConfig and CurationConfig fields whose options are typed by hand below: file options, and
# switches whose command-line form is the negation of the field (--keep-duplicates = deduplicate False).
_BUILD_BY_HAND = {"drop_spike_ins", "genes_file", "curation", "overwrite"}
# options of one kind of source, shown in their own groups
_SOMA = {"soma_measurement", "soma_layer", "soma_filter", "soma_split_by", "soma_organism", "soma_config"}
_ARCHS4 = {"archs4_samples"}
_CURATION_BY_HAND = {"deduplicate", "kinds"}


def run_build_corpus(args: argparse.Namespace) -> int:
    from common.cli_args import collect
    from data.corpus.build import BuildConfig, build_corpus
    from data.corpus.curation import CurationConfig

    cur = CurationConfig(**{k: v for k, v in collect(args, CurationConfig).items() if k not in _CURATION_BY_HAND},
                         deduplicate=not args.keep_duplicates, kinds=_kinds(args.kind))
    given = {k: v for k, v in collect(args, BuildConfig).items() if k not in _BUILD_BY_HAND}
    cfg = BuildConfig(**given, drop_spike_ins=not args.keep_spike_ins, genes_file=args.genes, curation=cur,
                      overwrite=args.overwrite)
    build_corpus(args.source, args.out, cfg, gene_table=args.gene_table,
                 log=lambda m: print(m, file=sys.stdout, flush=True))
    print(f"\nwrote {args.out} (details: {args.out}/report.md, {args.out}/report.json)")
    return 0


def register_build_corpus(sub) -> None:
    from dataclasses import fields

    from common.cli_args import add_dataclass_args
    from data.corpus.build import BuildConfig
    from data.corpus.curation import CurationConfig

    p = sub.add_parser("build-corpus", help="turn count files into a TxFM corpus",
                       description="Read count data (h5ad, 10x folder or .h5, ARCHS4 .h5, CSV/TSV[.gz], "
                       "TileDB-SOMA experiments such as a CELLxGENE Census copy or URI, or folders of them), "
                       "validate raw counts, map gene ids, filter, and write a corpus (docs/formats.md) with "
                       "report.json/report.md inside. Two streaming passes; nothing is left behind on error.")
    p.add_argument("--source", nargs="+", required=True, metavar="FILE_DIR_OR_URI",
                   help="input files, folders (searched recursively) or TileDB-SOMA experiments (a folder or a "
                   "URI such as s3://...); dataset names come from file names, and for SOMA from the values of "
                   "--soma-split-by")
    p.add_argument("--out", required=True, help="corpus folder to create, e.g. corpora/NAME")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_dataclass_args(p, BuildConfig, skip=_BUILD_BY_HAND | _SOMA | _ARCHS4, title="reading, genes and perturbations")
    add_dataclass_args(p, BuildConfig, skip={f.name for f in fields(BuildConfig)} - _SOMA,
                       title="TileDB-SOMA sources (CELLxGENE Census; docs/data.md, public corpora)")
    add_dataclass_args(p, BuildConfig, skip={f.name for f in fields(BuildConfig)} - _ARCHS4,
                       title="ARCHS4 sources (.h5 gene-count files)")
    g = p.add_argument_group("genes (gene table and vocabulary)")
    g.add_argument("--gene-table", default="default", help=GENE_TABLE_HELP)
    g.add_argument("--keep-spike-ins", action="store_true", help="keep ERCC spike-in features (dropped by default)")
    g.add_argument("--genes", default=None, help="file with one gene per line: use it as the vocabulary instead "
                   "of the union of the sources' genes")
    add_dataclass_args(p, CurationConfig, skip=_CURATION_BY_HAND,
                       title="curation (defaults scale with each dataset; see docs/data.md)")
    g = p.add_argument_group("curation switches")
    g.add_argument("--keep-duplicates", action="store_true",
                   help="keep exact duplicate samples within a dataset (dropped by default)")
    g.add_argument("--kind", nargs="+", metavar="DATASET=KIND",
                   help="override bulk/single-cell detection (bulk: median library >= 1e6 or < 100 samples)")
    p.set_defaults(func=run_build_corpus)


def run_build_demo(args: argparse.Namespace) -> int:
    from data.corpus.demo import build_demo
    build_demo(out=args.out, cache=args.cache, with_shared=args.with_shared, shared=args.shared,
               overwrite=args.overwrite)
    return 0


def register_build_demo(sub) -> None:
    p = sub.add_parser("build-demo", help="build a small corpus of real data from the package registries",
                       description="Download (cached) scanpy's pbmc68k_reduced (PyPI wheel) and DEGreport's "
                       "humanGender bulk counts (Debian package), recover raw counts and build a corpus. "
                       "With --with-shared, the datasets of ../shared/data are added.")
    p.add_argument("--out", default="corpora/demo", help="corpus folder (default: %(default)s)")
    p.add_argument("--cache", default="cache/demo", help="download cache (default: %(default)s)")
    p.add_argument("--with-shared", action="store_true", help="also add every dataset in --shared")
    p.add_argument("--shared", default="../shared/data", help="shared data folder (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=run_build_demo)


def run_bench(args: argparse.Namespace) -> int:
    from data.bench import run_benchmarks, run_public_benchmarks
    if args.public:
        run_public_benchmarks(work=args.work or "bench-out/data-public", soma_cells=tuple(args.soma_cells), archs4_samples=args.archs4_samples,
                              out=args.out)
        return 0
    run_benchmarks(shared=args.shared, work=args.work or "bench-out/data", budget_gb=args.max_memory_gb, target_gb=args.target_gb,
                   out=args.out)
    return 0


def register_bench(sub) -> None:
    p = sub.add_parser("bench", help="reading / corpus-building throughput and peak memory",
                       description="Measure reading and corpus-building throughput (samples/s) on the largest "
                       "file in --shared, then build a corpus larger than --max-memory-gb from replicated real "
                       "data in a child process and report its peak RSS.")
    p.add_argument("--shared", default="../shared/data", help="real data folder (default: %(default)s)")
    p.add_argument("--work", default=None, help="scratch folder, removed afterwards (default: bench-out/data, with "
                   "--public bench-out/data-public)")
    p.add_argument("--max-memory-gb", type=float, default=0.75, help="memory budget for the large build "
                   "(default: %(default)s)")
    p.add_argument("--target-gb", type=float, default=1.5, help="size of the replicated input's counts "
                   "(data + indices bytes) for the large build (default: %(default)s)")
    p.add_argument("--out", default=None, help="also write the results table (Markdown) to this file")
    g = p.add_argument_group("public corpora (--public)")
    g.add_argument("--public", action="store_true", help="instead: build corpora from synthetic TileDB-SOMA "
                   "experiments (Census layout, 20,000 genes, ~1,000 non-zeros a cell) and a synthetic ARCHS4 file, "
                   "each in a child process, and report samples/s and peak RSS (docs/data.md, public corpora)")
    g.add_argument("--soma-cells", type=int, nargs="+", default=[50_000, 200_000],
                   help="cells of each synthetic SOMA experiment (default: %(default)s)")
    g.add_argument("--archs4-samples", type=int, default=20_000,
                   help="samples of the synthetic ARCHS4 file (default: %(default)s)")
    p.set_defaults(func=run_bench)


SUBCOMMANDS = [register_build_corpus, register_build_demo, register_bench]
