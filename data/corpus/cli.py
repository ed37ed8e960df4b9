"""Argument parsers for ``python -m data build-corpus``, ``build-demo`` and ``bench``.

Each ``register_*`` adds one subcommand to the ``python -m data`` parser
(see data/__main__.py) and sets ``func``.
"""
from __future__ import annotations

import argparse
import sys

from data.readers import ORIENTATIONS


def _kinds(rules: list[str] | None) -> dict:
    out = {}
    for r in rules or []:
        name, _, kind = r.partition("=")
        if kind not in ("bulk", "single-cell") or not name:
            raise ValueError(f"--kind {r!r}: expected DATASET=bulk or DATASET=single-cell")
        out[name] = kind
    return out


def run_build_corpus(args: argparse.Namespace) -> int:
    from data.corpus.build import BuildConfig, build_corpus
    from data.corpus.curation import CurationConfig

    cur = CurationConfig(min_cells=args.min_cells, min_genes=args.min_genes, min_counts=args.min_counts,
                         max_mito_fraction=args.max_mito_fraction, deduplicate=not args.keep_duplicates,
                         kinds=_kinds(args.kind))
    cfg = BuildConfig(layer=args.layer, orientation=args.orientation, allow_non_integer=args.allow_non_integer,
                      unmapped=args.unmapped, drop_spike_ins=not args.keep_spike_ins, genes_file=args.genes,
                      chunk_size=args.chunk_size, shard_size=args.shard_size, max_memory_gb=args.max_memory_gb,
                      curation=cur, obs_map=tuple(args.obs_map or ()), phenoprint=args.phenoprint,
                      phenoprint_alpha=args.phenoprint_alpha, control_label=args.control_label,
                      overwrite=args.overwrite, min_mapped_fraction=args.min_mapped_fraction)
    build_corpus(args.source, args.out, cfg, gene_table=args.gene_table,
                 log=lambda m: print(m, file=sys.stdout, flush=True))
    print(f"\nwrote {args.out} (details: {args.out}/report.md, {args.out}/report.json)")
    return 0


def register_build_corpus(sub) -> None:
    p = sub.add_parser("build-corpus", help="turn count files into a TxFM corpus",
                       description="Read count data (h5ad, 10x folder or .h5, CSV/TSV[.gz], or folders of them), "
                       "validate raw counts, map gene ids, filter, and write a corpus (docs/formats.md) with "
                       "report.json/report.md inside. Two streaming passes; nothing is left behind on error.")
    p.add_argument("--source", nargs="+", required=True, metavar="FILE_OR_DIR",
                   help="input files or folders (folders are searched recursively); dataset names come from "
                   "file names")
    p.add_argument("--out", required=True, help="corpus folder to create, e.g. corpora/NAME")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    g = p.add_argument_group("reading")
    g.add_argument("--layer", default="auto", help="h5ad matrix: auto (layers['counts'], else X if integer, else "
                   "raw.X if integer), X, raw, or a layer name (default: %(default)s)")
    g.add_argument("--orientation", default="auto", choices=ORIENTATIONS,
                   help="text tables: which axis holds genes; auto uses gene-id patterns, then the longer axis")
    g.add_argument("--allow-non-integer", action="store_true",
                   help="round non-integer values instead of refusing them. Fine for estimated counts (salmon, "
                   "RSEM); rounding TPM/FPKM or log values gives numbers that are not counts")
    g.add_argument("--chunk-size", type=int, default=4096, help="samples per read chunk (default: %(default)s)")
    g.add_argument("--shard-size", type=int, default=8192, help="samples per corpus shard (default: %(default)s)")
    g.add_argument("--max-memory-gb", type=float, default=None,
                   help="memory budget: chunk and shard sizes are lowered so buffers fit in it")
    g = p.add_argument_group("genes")
    g.add_argument("--gene-table", default="default",
                   help="'default' (cache/references/genes/genes.tsv, built by fetch-references on first use), "
                   "a genes.tsv path or references folder, or 'none' to keep ids as given (offline; sources "
                   "using different id kinds then do not align)")
    g.add_argument("--unmapped", default="keep", choices=("keep", "drop"),
                   help="genes the table cannot map (or maps ambiguously): keep under their original id, or "
                   "drop; counted in the report either way (default: %(default)s)")
    g.add_argument("--min-mapped-fraction", type=float, default=0.5,
                   help="refuse a source when fewer of its gene ids map to the gene table (wrong id column, "
                   "transposed matrix, truncated table); 0 accepts any (default: %(default)s)")
    g.add_argument("--keep-spike-ins", action="store_true", help="keep ERCC spike-in features (dropped by default)")
    g.add_argument("--genes", default=None, help="file with one gene per line: use it as the vocabulary instead "
                   "of the union of the sources' genes")
    g = p.add_argument_group("curation (defaults scale with each dataset; see docs/data.md)")
    g.add_argument("--min-cells", type=int, default=None,
                   help="keep a gene when some single-cell dataset detects it in >= N cells "
                   "(default: min(1000, 1%% of the dataset's cells); bulk datasets use 1)")
    g.add_argument("--min-genes", type=int, default=None,
                   help="keep a single-cell sample with >= M detected genes "
                   "(default: min(2000, 1%% of the genes the dataset detects); bulk samples are not filtered)")
    g.add_argument("--min-counts", type=int, default=1, help="drop samples with fewer total counts "
                   "(default: %(default)s, i.e. empty samples)")
    g.add_argument("--max-mito-fraction", type=float, default=None,
                   help="drop samples whose MT- genes hold more than this fraction of counts (default: off)")
    g.add_argument("--keep-duplicates", action="store_true",
                   help="keep exact duplicate samples within a dataset (dropped by default)")
    g.add_argument("--kind", nargs="+", metavar="DATASET=KIND",
                   help="override bulk/single-cell detection (bulk: median library >= 1e6 or < 100 samples)")
    g = p.add_argument_group("metadata and perturbations")
    g.add_argument("--obs-map", nargs="+", metavar="[DATASET:]COLUMN=TARGET",
                   help="extra metadata renames, e.g. hba1c_class=condition or kang2018_pbmc_stim:stim=condition; "
                   "built-in: bio_rep->batch, grna_target->perturbation, Annotation/cell_line->cell_type, ...")
    g.add_argument("--phenoprint", default=None,
                   help="perturbation curation: 'pca' (PCA consistency computed here) or a CSV with columns "
                   "perturbation,p_value; cells of inconsistent perturbations are dropped (default: off)")
    g.add_argument("--phenoprint-alpha", type=float, default=0.1,
                   help="keep perturbations with consistency p < alpha (default: %(default)s, as in the paper)")
    g.add_argument("--control-label", default="non-targeting",
                   help="perturbation label of control cells (always kept; default: %(default)s)")
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
    from data.bench import run_benchmarks
    run_benchmarks(shared=args.shared, work=args.work, budget_gb=args.max_memory_gb, target_gb=args.target_gb,
                   out=args.out)
    return 0


def register_bench(sub) -> None:
    p = sub.add_parser("bench", help="reading / corpus-building throughput and peak memory",
                       description="Measure reading and corpus-building throughput (samples/s) on the largest "
                       "file in --shared, then build a corpus larger than --max-memory-gb from replicated real "
                       "data in a child process and report its peak RSS.")
    p.add_argument("--shared", default="../shared/data", help="real data folder (default: %(default)s)")
    p.add_argument("--work", default="bench-out/data", help="scratch folder, removed afterwards "
                   "(default: %(default)s)")
    p.add_argument("--max-memory-gb", type=float, default=0.75, help="memory budget for the large build "
                   "(default: %(default)s)")
    p.add_argument("--target-gb", type=float, default=1.5, help="size of the replicated input's counts "
                   "(data + indices bytes) for the large build (default: %(default)s)")
    p.add_argument("--out", default=None, help="also write the results table (Markdown) to this file")
    p.set_defaults(func=run_bench)


SUBCOMMANDS = [register_build_corpus, register_build_demo, register_bench]
