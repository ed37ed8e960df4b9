"""`python -m data embed`: CLS embeddings of a user's count file, read and checked like build-corpus.

The file goes through the same readers (h5ad, 10x, CSV/TSV), the same count validation (NaN,
negative, non-integer, empty, all-zero refused), and the same gene harmonisation (GeneTable
mapping with aliases, previous symbols, Ensembl and Entrez ids; species, orientation and
mapped-fraction checks) as `python -m data build-corpus`; the harmonised counts then go to
`txfm.inference.embed`. (`python -m txfm embed` takes only a corpus, which was checked when built.)
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from data.genes.harmonise import MIN_MAPPED_FRACTION, GeneMapping, check_gene_ids, ids_with_name_fallback, map_genes
from data.readers import DataError, check_counts, check_not_empty, check_sample_ids, close_readers, \
    open_sources, transpose_fix


@dataclass
class UserCounts:
    """A user's count file after reading, validation and gene harmonisation."""

    counts: sp.csr_matrix        # (n, g') raw integer counts over the harmonised genes
    genes: list[str]             # (g',) canonical symbols (unmapped ids kept as given)
    ensembl: list[str]           # (g',) Ensembl ids ("" when unknown)
    obs: pd.DataFrame            # n rows, the source's sample ids as index, its metadata columns
    mapping: GeneMapping
    path: Path
    kind: str                    # what was read (reader description)
    rounded: int = 0


def read_user_counts(path: str | Path, gene_table="default", layer: str = "auto", orientation: str = "auto",
                     allow_non_integer: bool = False, unmapped: str = "keep", drop_spike_ins: bool = True,
                     min_mapped_fraction: float = MIN_MAPPED_FRACTION, chunk_size: int = 4096,
                     log=None) -> UserCounts:
    """Read one dataset (file or 10x folder) with build-corpus' readers, checks and gene mapping.

    ``gene_table``: as for build-corpus ("default", "none", a genes.tsv path, a references folder,
    or a GeneTable). Raises ``DataError``/``ValueError`` with a one-line message naming the file.
    """
    from common.options import check_range
    from data.corpus.build import _load_table

    check_range("min_mapped_fraction", min_mapped_fraction, lo=0, hi=1)
    check_range("chunk_size", chunk_size, lo=1, integer=True)
    table = _load_table(gene_table) if gene_table is None or isinstance(gene_table, str) else gene_table
    readers = open_sources([Path(path)], layer=layer, orientation=orientation)
    try:
        return _read(readers, path, table, allow_non_integer, unmapped, drop_spike_ins, min_mapped_fraction,
                     chunk_size, log)
    finally:
        close_readers(readers)


def _read(readers, path, table, allow_non_integer, unmapped, drop_spike_ins, min_mapped_fraction, chunk_size,
          log) -> UserCounts:
    if len(readers) != 1:
        raise DataError(f"{path}: holds {len(readers)} datasets ({', '.join(r.name for r in readers)}); pass one "
                        f"file (or build a corpus from the folder with `python -m data build-corpus`)")
    reader = readers[0]
    check_not_empty(reader.n_samples, len(reader.genes), str(reader.path))
    sample_ids = reader.sample_ids_head(reader.n_samples)
    check_sample_ids(pd.Index(sample_ids), str(reader.path))
    ids = ids_with_name_fallback(reader.genes, reader.gene_names, table)
    mapping = map_genes(ids, table, unmapped, drop_spike_ins)
    check_gene_ids(ids, sample_ids, table, str(reader.path), mapping.summary, min_mapped_fraction,
                   transpose_fix(reader), log=log)
    if not mapping.symbols:
        raise DataError(f"{reader.path}: none of its {len(reader.genes)} gene ids is kept after mapping "
                        f"({mapping.summary['unmapped']} unmapped); check the ids or pass --unmapped keep")
    parts, obs, rounded = [], [], 0
    for chunk in reader.iter_chunks(chunk_size):
        obs.append(chunk.obs)
        where = f"{reader.path} (samples {chunk.start}-{chunk.start + chunk.counts.shape[0] - 1})"
        x, r = check_counts(chunk.counts, where, allow_non_integer, hint=reader.hint)
        rounded += r
        parts.append(mapping.apply(x))
    y = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, len(mapping.symbols)), dtype=np.int64)
    y.eliminate_zeros()
    if y.nnz == 0:
        raise DataError(f"{reader.path}: every count is zero ({reader.n_samples} samples x {len(reader.genes)} "
                        f"genes); the matrix holds no data. Export the raw counts again"
                        + (f" ({reader.hint})" if reader.hint else ""))
    return UserCounts(y, list(mapping.symbols), list(mapping.ensembl), pd.concat(obs), mapping, reader.path,
                      reader.kind, rounded)


# The build-corpus parameters that also govern reading a count file here (the same options, generated).
READING = {"layer", "orientation", "allow_non_integer", "unmapped", "min_mapped_fraction"}


def run_embed(args: argparse.Namespace) -> int:
    from common.atomic import atomic_path
    from common.cli_args import collect
    from data.corpus.build import BuildConfig
    from common.options import check_range
    from common.outputs import check_output_file
    from txfm.inference import embed, is_embeddings_file

    check_range("batch_size", args.batch_size, lo=1, integer=True, none_ok=True, what="samples per forward pass")
    check_range("max_genes", args.max_genes, lo=1, integer=True, none_ok=True, what="genes shown to the encoder")
    out = Path(args.out)
    check_output_file(out, "TxFM embeddings file (.npz written by txfm embed)", is_embeddings_file, args.overwrite,
                      protect=[args.checkpoint, args.input])
    if not Path(args.checkpoint).is_file():
        raise DataError(f"{args.checkpoint}: no such checkpoint file; pass a .pt written by `python -m txfm train`")
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    r = BuildConfig(**{k: v for k, v in collect(args, BuildConfig).items() if k in READING})  # checks the ranges
    data = read_user_counts(args.input, args.gene_table, r.layer, r.orientation, r.allow_non_integer,
                            r.unmapped, min_mapped_fraction=r.min_mapped_fraction, log=log)
    s = data.mapping.summary
    log(f"{data.path}: {data.counts.shape[0]} samples, {s['input_ids']} gene ids -> {len(data.genes)} genes "
        f"({s['mapped']} mapped, {s['ambiguous']} ambiguous, {s['unmapped']} unmapped; {data.kind})")
    res = embed(args.checkpoint, data.counts, data.genes, max_genes=args.max_genes, seed=args.seed,
                batch_size=args.batch_size, all_layers=args.all_layers, device=args.device)
    print(res.mapping.summary())
    arrays = {"cls": res.cls, "sample_id": np.asarray([str(i) for i in data.obs.index], dtype=str)}
    if res.layers is not None:
        arrays["layers"] = res.layers
    with atomic_path(out, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)
    print(f"embeddings {res.cls.shape} -> {out}")
    return 0


def register_embed(sub) -> None:
    p = sub.add_parser("embed", help="CLS embeddings of a count file (read and harmonised like build-corpus)",
                       description="Read a count file (h5ad, 10x folder or .h5, CSV/TSV[.gz]) with build-corpus' "
                       "readers, validate raw counts, map gene ids with the same gene table, and write the TxFM CLS "
                       "embeddings of its samples. For a corpus folder use `python -m txfm embed`.")
    p.add_argument("--checkpoint", required=True, help="a TxFM checkpoint (.pt)")
    p.add_argument("--input", required=True, help="count file or 10x folder (raw counts)")
    p.add_argument("--out", required=True, help="output .npz with 'cls' (n, d), 'sample_id' and optionally 'layers'")
    p.add_argument("--overwrite", action="store_true", help="replace an existing embeddings file at --out")
    p.add_argument("--max-genes", type=int, default=None, help="cap on genes shown to the encoder (default: training K)")
    p.add_argument("--all-layers", action="store_true", help="also save the CLS state after each block")
    p.add_argument("--batch-size", type=int, default=None,
                   help="samples per forward pass (default: 16 on CPU, 256 on GPU)")
    p.add_argument("--seed", type=int, default=0, help="seed of the gene selection when capped (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: cpu)")
    from common.cli_args import add_dataclass_args
    from data.corpus.build import BuildConfig
    from data.corpus.cli import GENE_TABLE_HELP
    add_dataclass_args(p, BuildConfig, skip={f.name for f in fields(BuildConfig)} - READING,
                       title="reading and gene mapping (as build-corpus)")
    p.add_argument("--gene-table", default="default", help=GENE_TABLE_HELP)
    p.set_defaults(func=run_embed)
