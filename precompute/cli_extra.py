"""Sub-commands beyond run/validate/synthetic: compare, bench, crosscheck, results."""
from __future__ import annotations

import argparse
from pathlib import Path

from common.spreadsheet import safe_frame


def cmd_compare(a: argparse.Namespace) -> int:
    from .compare import compare_bundles
    out = Path(a.out) if a.out else Path(a.a).parent / "comparisons" / f"{Path(a.a).name}__{Path(a.b).name}"
    res = compare_bundles(a.a, a.b, out, verify_hashes=a.verify, overwrite=a.overwrite)
    import json
    c = json.loads((res / "comparison.json").read_text())
    print(f"comparison written: {res}")
    print(f"genes: A {c['genes']['a']:,}, B {c['genes']['b']:,}, shared {c['genes']['shared']:,}")
    for k, v in c["summary"].items():
        print(f"  {k}: median neighbour Jaccard {v['median_jaccard']:.3f}")
    for side in ("a", "b"):
        print(f"  best recall {side.upper()}: " + ", ".join(
            f"{m} {d['recall']:.3f}@{d['rank']}" for m, d in c["best"][side].items() if d["recall"] is not None))
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    from .bench import format_table, run_bench, write_into_doc
    r = run_bench(n_genes=a.n_genes, width=a.width, umap_epochs=a.umap_epochs,
                  pairs_per_source=a.pairs_per_source)
    text = format_table(r)
    print(text)
    if a.doc:
        write_into_doc(Path(a.doc), text)
        print(f"written into {a.doc}")
    return 0 if r["valid"] else 1


def cmd_crosscheck(a: argparse.Namespace) -> int:
    from .crosscheck import crosscheck
    if a.project_baseline:
        from .crosscheck import project_baseline_recall
        table, info = project_baseline_recall(a.data, a.references, a.project_baseline,
                                              n_components=a.components, seed=a.seed)
        info["library_over"] = "corpus vocabulary (txfm preprocessing)"
    else:
        table, info = crosscheck(a.data, a.references, n_components=a.components, library_over=a.library_over,
                                 seed=a.seed)
    print(f"{info['cells']:,} cells x {info['genes']:,} genes, {info['components']} components, "
          f"library size over {info['library_over']} genes")
    piv = table.pivot(index="source", columns="variant", values="recall_mean")
    piv["n_pairs"] = table.groupby("source").n_pairs.first()
    piv.loc["chance"] = [table[table.variant == v].chance.iloc[0] for v in piv.columns[:-1]] + [0]
    print(piv.round(3).to_string())
    if a.out:
        from common.atomic import atomic_write_text
        atomic_write_text(a.out, safe_frame(table.assign(**{k: v for k, v in info.items()})).to_csv(index=False))
    return 0


def cmd_results(a: argparse.Namespace) -> int:
    from .results import evaluate, write_results_doc
    table, info = evaluate(Path(a.run), Path(a.pca), Path(a.references), n_nulls=a.n_nulls,
                           null_size=a.null_size, seed=a.seed)
    pair_table, pair_info = evaluate(Path(a.run), Path(a.pca), Path(a.references), n_nulls=a.n_nulls,
                                     null_size=a.null_size, seed=a.seed, whole_vocabulary=True, final_only=True)
    cmd = (f"python -m precompute results --run {a.run} --pca {a.pca} --references {a.references} "
           f"--doc {a.doc}")
    write_results_doc(Path(a.doc), table, info, cmd, pair_table, pair_info)
    if a.table:
        from common.atomic import atomic_write_text
        atomic_write_text(a.table, safe_frame(table).to_csv(index=False))
    print(f"written {a.doc}")
    return 0


def add_commands(sub, add_params) -> None:
    """Register compare, bench, crosscheck and results on the argparse sub-parser `sub`."""
    c = sub.add_parser("compare", help="compare two bundles (shared genes, neighbour overlap, aligned UMAP, recall)")
    c.add_argument("a", help="first bundle folder")
    c.add_argument("b", help="second bundle folder")
    c.add_argument("--out", default=None, help="output folder (default: <parent of A>/comparisons/A__B)")
    c.add_argument("--verify", action="store_true", help="verify every file's sha256 before comparing")
    c.add_argument("--overwrite", action="store_true",
                   help="replace an existing comparison at --out (any other existing folder is refused)")
    c.set_defaults(func=cmd_compare)

    b = sub.add_parser("bench", help="time a full precompute of two 45,000 x 768 random matrices")
    b.add_argument("--n-genes", type=int, default=45_000, help="genes (default 45000)")
    b.add_argument("--width", type=int, default=768, help="matrix width (default 768)")
    b.add_argument("--umap-epochs", type=int, default=100, help="UMAP epochs (default 100, as `run`)")
    b.add_argument("--pairs-per-source", type=int, default=40_000, help="synthetic reference pairs per source")
    b.add_argument("--doc", default=None, help="write the timing table into this markdown file (between markers)")
    b.set_defaults(func=cmd_bench)

    x = sub.add_parser("crosscheck", help="independent PCA recall on the five PBMC sets of ../shared/data")
    x.add_argument("--data", default="../shared/data", help="real data folder (default ../shared/data)")
    x.add_argument("--references", default="cache/references", help="reference folder (default cache/references)")
    x.add_argument("--components", type=int, default=256, help="PCA components (default 256)")
    x.add_argument("--library-over", choices=["all", "common"], default="all",
                   help="library size over all genes of a cell, or only the kept common genes")
    x.add_argument("--seed", type=int, default=0, help="seed of the nulls (default 0)")
    x.add_argument("--out", default=None, help="also write the full table as CSV here")
    x.add_argument("--project-baseline", default=None, metavar="WORK_DIR",
                   help="instead, run the project's path on the same input (data build-corpus -> txfm "
                        "baseline-pca -> recall) with its files in WORK_DIR")
    x.set_defaults(func=cmd_crosscheck)

    r = sub.add_parser("results", help="recall of a run's checkpoints vs the PCA baseline -> docs/results.md")
    r.add_argument("--run", required=True, help="run folder with step checkpoints and last.pt")
    r.add_argument("--pca", required=True, help="PCA baseline file fit on the same corpus")
    r.add_argument("--references", default="cache/references", help="reference folder (default cache/references)")
    r.add_argument("--doc", default="docs/results.md", help="markdown file to write (PNGs go beside it)")
    r.add_argument("--table", default=None, help="also write the full recall table as CSV here")
    r.add_argument("--n-nulls", type=int, default=3, help="nulls per recall (default 3)")
    r.add_argument("--null-size", type=int, default=5000, help="genes per null sample (default 5000)")
    r.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    r.set_defaults(func=cmd_results)
