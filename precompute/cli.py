"""Command line: run, import, compare, validate, synthetic, bench (results and crosscheck live in `python -m evaluation`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.errors import EXIT_CODES_HELP, UserError

DEFAULT_REFERENCES = "cache/references"


# Fields of BundleParams whose command-line form is MATRIX=VALUE (added by hand below).
_BY_MATRIX = {"chosen_ranks", "standardise"}


def _add_params(p: argparse.ArgumentParser) -> None:
    """The step parameters, generated from precompute.pipeline.BundleParams (help = its field comments)."""
    from common.cli_args import add_dataclass_args

    from .params import BundleParams
    add_dataclass_args(p, BundleParams, skip=_BY_MATRIX, title="step parameters (recorded in the manifest)")
    g = p.add_argument_group("per-matrix step parameters")
    g.add_argument("--rank", action="append", default=[], metavar="MATRIX=R",
                   help="explicit rank for one matrix, e.g. --rank decoder=128 (repeatable; overrides --rank-policy)")
    g.add_argument("--standardise", action="append", default=[], metavar="MATRIX=yes|no",
                   help="z-score a matrix's columns before its PCA (default yes, except pca=no: the PCA "
                        "loadings keep their eigenvalue weighting); repeatable")


def params_from_args(a: argparse.Namespace):
    """BundleParams from parsed options (the dataclass checks every range)."""
    from common.cli_args import collect

    from .params import DEFAULT_STANDARDISE, BundleParams
    chosen = []
    for item in a.rank:
        name, _, r = item.partition("=")
        if not r.isdigit():
            raise UserError(f"--rank {item!r}: expected MATRIX=R with an integer R, e.g. decoder=256")
        chosen.append((name, int(r)))
    std = dict(DEFAULT_STANDARDISE)
    for item in a.standardise:
        name, _, v = item.partition("=")
        if v not in ("yes", "no"):
            raise UserError(f"--standardise {item!r}: expected MATRIX=yes or MATRIX=no")
        std[name] = v == "yes"
    given = {k: v for k, v in collect(a, BundleParams).items() if k not in _BY_MATRIX}
    return BundleParams(**given, chosen_ranks=tuple(chosen), standardise=tuple(std.items()))


def cmd_run(a: argparse.Namespace) -> int:
    from .checkpoint_source import find_training_metrics, load_gene_matrices
    params = params_from_args(a)  # option ranges checked before any file is read
    mats, genes, source = load_gene_matrices(a.checkpoint, contextual=a.contextual, corpus=a.corpus,
                                             contextual_samples=a.contextual_samples, seed=params.seed)
    if a.baseline == "pca" and source["kind"] != "pca":
        raise UserError(f"{a.checkpoint}: --baseline pca given but the file is a {source['kind']!r} "
                         "checkpoint; pass the PCA baseline file written by txfm")
    return _build(a, mats, genes, _references(a), source, params, "checkpoint",
                  protect=[a.checkpoint] + ([a.corpus] if a.corpus else []),
                  training_metrics=find_training_metrics(a.checkpoint))


def _references(a: argparse.Namespace) -> Path:
    ref = Path(a.references)
    if not ref.is_dir():
        raise UserError(f"{ref}: reference folder not found; run `python -m data fetch-references` "
                        "or pass --references DIR")
    return ref


def _build(a: argparse.Namespace, mats, genes, ref: Path, source: dict, params, what: str, protect: list,
           training_metrics=None) -> int:
    """build_bundle for `run` and `import`, and the one line saying what happened."""
    from .pipeline import build_bundle
    status: dict = {}
    out = build_bundle(mats, genes, ref, a.out, source, params, force=a.force, training_metrics=training_metrics,
                       progress=not a.quiet, overwrite=a.overwrite, status=status, protect=tuple(protect))
    if status.get("status") == "up to date":
        print(f"bundle up to date (same {what} and parameters), nothing written: {out}")
    else:
        print(f"bundle {status.get('status', 'written')}: {out}")
    return 0


def cmd_import(a: argparse.Namespace) -> int:
    from .embedding_source import load_embedding
    params = params_from_args(a)  # option ranges checked before any file is read
    if not a.name.replace("_", "").isalnum():
        raise UserError(f"--name {a.name!r}: use letters, digits and _ only (it becomes a file name)")
    ref = _references(a)
    mats, genes, source = load_embedding(a.embeddings, ref, name=a.name, gene_column=a.gene_column,
                                         genes=a.genes, varm=a.varm, key=a.key,
                                         support_from=a.support_from, log=print, allow_counts=a.allow_counts)
    return _build(a, mats, genes, ref, source, params, "embedding",
                  protect=[a.embeddings] + [x for x in (a.genes, a.support_from) if x])


def cmd_series(a: argparse.Namespace) -> int:
    from .series import build_series
    run = Path(a.run)
    out = Path(a.out) if a.out else Path("bundles") / f"{run.name}-series"
    res = build_series(run, out, a.references, pca=a.pca, overwrite=a.overwrite, progress=not a.quiet)
    print(f"run series written: {res}")
    return 0


def cmd_validate(a: argparse.Namespace) -> int:
    from .bundle.validate import validate_bundle
    problems = validate_bundle(a.bundle, verify_hashes=not a.fast)
    if problems:
        print(f"{a.bundle}: INVALID ({len(problems)} problem(s))")
        for q in problems:
            print(f"  - {q}")
        return 1
    print(f"{a.bundle}: valid")
    return 0


def cmd_synthetic(a: argparse.Namespace) -> int:
    from common.outputs import check_output_target

    from .bundle.files import is_bundle
    from .bundle.synthetic import make_planted_bundle, make_synthetic_bundle
    check_output_target(a.out, "bundle", is_bundle, a.overwrite)   # synthetic always rebuilds every step
    given = params_from_args(a)
    if a.planted:
        out = make_planted_bundle(a.out, n_genes=a.n_genes, n_programs=a.programs, k=given.k, seed=given.seed,
                                  variant=a.variant)
        print(f"planted-programs bundle written: {out}")
        return 0
    dims = {}
    for item in a.dims:
        name, _, d = item.partition("=")
        if not d.isdigit() or not name:
            raise UserError(f"--dims {item!r}: expected NAME=D with an integer width D, e.g. codebook=63")
        dims[name] = int(d)
    params = given if a.full_params else None
    out = make_synthetic_bundle(a.out, n_genes=a.n_genes, dims=dims, seed=given.seed, params=params,
                                progress=not a.quiet, overwrite=a.overwrite)
    print(f"synthetic bundle written: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m precompute",
                                description="Turn a TxFM checkpoint or PCA baseline into a Bundle for the app.", epilog=EXIT_CODES_HELP)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="checkpoint -> bundle (an up-to-date bundle is kept; --overwrite replaces "
                                   "an outdated one)")
    r.add_argument("--checkpoint", required=True, help="TxFM checkpoint (.pt) or PCA baseline file")
    r.add_argument("--baseline", choices=["pca"], default=None,
                   help="declare that --checkpoint is the PCA baseline file (checked against the file)")
    r.add_argument("--references", default=DEFAULT_REFERENCES,
                   help=f"reference folder from `python -m data fetch-references` (default {DEFAULT_REFERENCES})")
    r.add_argument("--out", required=True, help="bundle folder to write, e.g. bundles/NAME")
    r.add_argument("--contextual", action="store_true",
                   help="also compute contextual gene embeddings (mean encoder output per gene)")
    r.add_argument("--corpus", default=None, help="corpus for --contextual (default: the checkpoint's corpus)")
    r.add_argument("--contextual-samples", type=int, default=2048, help="samples for --contextual (default 2048)")
    r.add_argument("--overwrite", action="store_true",
                   help="replace an existing bundle at --out that was built from another checkpoint or with "
                        "other parameters (an up-to-date bundle is kept without it; a folder that is not a "
                        "bundle is never replaced)")
    r.add_argument("--force", action="store_true",
                   help="recompute every step (with an existing bundle at --out, also pass --overwrite)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_params(r)
    r.set_defaults(func=cmd_run)

    i = sub.add_parser("import", help="another model's gene embedding -> bundle (TSV/CSV, .npy + gene list, "
                                      ".h5ad, .pt)",
                       description="Turn a gene x dimension matrix from any model into a bundle with the same "
                                   "subspaces, recall, kNN, UMAP, modules and enrichment as a TxFM checkpoint; "
                                   "identifiers are mapped to current symbols with the reference gene table.")
    i.add_argument("--embeddings", required=True,
                   help="the embedding file: .tsv/.csv (first column = gene), .npy (with --genes), .h5ad (genes "
                        "as rows, or --varm KEY), .pt (dict of tensors)")
    i.add_argument("--out", required=True, help="bundle folder to write, e.g. bundles/NAME")
    i.add_argument("--name", default="embedding", help="name of the gene matrix in the bundle (default embedding)")
    i.add_argument("--gene-column", default=None, help="TSV/CSV: the gene column (default: the first)")
    i.add_argument("--genes", default=None, help=".npy/.pt: text file with one gene identifier per line, in row order")
    i.add_argument("--varm", default=None, help=".h5ad: read the genes' embedding from varm[KEY] (e.g. PCs)")
    i.add_argument("--key", default=None, help=".pt: the tensor to read (default: the dict's only 2-D tensor)")
    i.add_argument("--support-from", default=None, metavar="BUNDLE",
                   help="score recall on this bundle's honest population (its genes measured well in >= 2 "
                        "datasets) instead of the embedding's whole vocabulary, e.g. the TxFM bundle it is "
                        "compared with")
    i.add_argument("--references", default=DEFAULT_REFERENCES,
                   help=f"reference folder from `python -m data fetch-references` (default {DEFAULT_REFERENCES})")
    i.add_argument("--allow-counts", action="store_true",
                   help="import a matrix that looks like counts (integer or boolean values, only non-negative "
                        "whole numbers, or more columns than genes) with a warning; refused by default")
    i.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    i.add_argument("--force", action="store_true", help="recompute every step (with --overwrite)")
    i.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_params(i)
    i.set_defaults(func=cmd_import)

    se = sub.add_parser("series", help="a training run -> one light bundle per saved checkpoint (the app's "
                                       "Training run page)")
    se.add_argument("--run", required=True, help="run folder written by `txfm train` (step-*.pt, last.pt)")
    se.add_argument("--out", default=None, help="series folder (default bundles/RUN-series)")
    se.add_argument("--references", default=DEFAULT_REFERENCES,
                    help=f"reference folder from `python -m data fetch-references` (default {DEFAULT_REFERENCES})")
    se.add_argument("--pca", default=None, metavar="BUNDLE",
                    help="the PCA bundle of the same corpus, drawn as the reference line on the page")
    se.add_argument("--overwrite", action="store_true",
                    help="replace an existing series at --out (its still-valid bundles are reused)")
    se.add_argument("--quiet", action="store_true", help="no progress bars")
    se.set_defaults(func=cmd_series)

    v = sub.add_parser("validate", help="check a bundle against the contract")
    v.add_argument("bundle", help="bundle folder")
    v.add_argument("--fast", action="store_true", help="check sizes only, skip sha256 of every file")
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("synthetic", help="write a bundle from planted-structure random matrices")
    s.add_argument("--out", required=True, help="bundle folder to write")
    s.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    s.add_argument("--n-genes", type=int, default=2000, help="number of genes (default 2000)")
    s.add_argument("--dims", nargs="+", default=["codebook=63", "decoder=128"], metavar="NAME=D",
                   help="matrices and widths (default codebook=63 decoder=128)")
    s.add_argument("--full-params", action="store_true",
                   help="use the step parameters below instead of the fast synthetic defaults")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument("--planted", action="store_true",
                   help="write named gene programs (p53, ribosome, interferon, with aliases) directly, with planted "
                        "maps and modules: seconds for 45,000 genes (the app's tests and benchmark); uses --n-genes, "
                        "--programs, --k, --seed, --variant")
    s.add_argument("--programs", type=int, default=12, help="--planted: gene programs (default 12)")
    s.add_argument("--variant", type=int, default=0,
                   help="--planted: same genes and programs, other matrix noise and maps (another 'checkpoint')")
    _add_params(s)
    s.set_defaults(func=cmd_synthetic)

    from . import cli_extra
    cli_extra.add_commands(sub, _add_params)
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the subcommand; errors propagate to `common.errors.run_main`."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    from common.errors import run_main
    sys.exit(run_main(main))
