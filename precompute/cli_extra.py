"""Sub-commands beyond run/import/validate/synthetic: compare and bench."""
from __future__ import annotations

import argparse
from pathlib import Path


def cmd_compare(a: argparse.Namespace) -> int:
    from .bundle.compare import compare_bundles
    out = Path(a.out) if a.out else Path(a.a).parent / "comparisons" / f"{Path(a.a).name}__{Path(a.b).name}"
    res = compare_bundles(a.a, a.b, out, verify_hashes=a.verify, overwrite=a.overwrite)
    import json
    c = json.loads((res / "comparison.json").read_text())
    print(f"comparison written: {res}")
    print(f"genes: A {c['genes']['a']:,}, B {c['genes']['b']:,}, shared {c['genes']['shared']:,}")
    for k, v in c["summary"].items():
        print(f"  {k}: median neighbour Jaccard {v['median_jaccard']:.3f}")
    import pandas as pd
    rec = pd.read_parquet(res / "recall.parquet")
    for (pair, side), grp in rec[rec.source == "mean_of_sources"].groupby(["pair", "side"]):
        n = c["summary"][pair]["recall_n_genes"]
        print(f"  {pair} {side}: recall {grp.recall_mean.iloc[0]:.3f} at rank {int(grp['rank'].iloc[0])} "
              f"on the {n:,} genes both share")
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


def add_commands(sub, add_params) -> None:
    """Register compare and bench on the argparse sub-parser `sub`."""

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
