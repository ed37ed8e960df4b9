"""Step 1 from another model's gene embedding (`python -m precompute import --embeddings FILE`).

The file is read by `data.readers.embeddings` (TSV/CSV, .npy + gene list, .h5ad, .pt), its identifiers
mapped like every other gene list of the project (`data.genes.table.GeneTable.map`: symbols, aliases,
previous symbols, Ensembl and Entrez ids onto current symbols), and the matrix handed to the same
bundle pipeline as a checkpoint: subspaces, recall, kNN, UMAP, modules and enrichment.

Identifiers the gene table cannot place (unmapped, or ambiguous between several genes) keep their own
name, so no row is lost; they just cannot match known pairs or gene sets. When two rows land on one
gene, the first is kept. An imported embedding has no per-gene measurement support, so its recall is
scored over its whole vocabulary, labelled so; the Compare page scores it on the genes it shares with a
TxFM or PCA bundle's honest population.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.errors import UserError

from .bundle.files import sha256_file

MATRIX_NAME = "embedding"


def load_embedding(path: Path | str, references_dir: Path | str, name: str = MATRIX_NAME,
                   gene_column: str | None = None, genes: Path | str | None = None, varm: str | None = None,
                   key: str | None = None, support_from: Path | str | None = None, log=print,
                   allow_counts: bool = False) -> tuple[dict[str, np.ndarray], pd.DataFrame, dict[str, Any]]:
    """(matrices {name: (G, D)}, genes table (symbol, ensembl_id), manifest.source) for an embedding file.

    ``support_from``: a bundle whose genes' measurement support (datasets measuring each gene well) is
    copied by symbol (0 for genes it lacks), so the embedding's recall is scored on that bundle's honest
    population instead of its whole vocabulary.
    ``allow_counts``: import a matrix that looks like counts (``data.readers.embeddings.count_like``) with a
    warning on stderr instead of refusing it.
    """
    from data.genes.table import GeneTable, mapping_summary
    from data.readers.embeddings import read_gene_embedding
    path = Path(path)
    x, ids = read_gene_embedding(path, gene_column=gene_column, genes=genes, varm=varm, key=key,
                                 allow_counts=allow_counts, warn=lambda m: print(m, file=sys.stderr))
    table_path = Path(references_dir) / "genes" / "genes.tsv"
    if not table_path.is_file():
        raise UserError(f"{table_path}: gene table not found, needed to map the embedding's identifiers; run "
                        "`python -m data fetch-references` or pass --references DIR")
    res = GeneTable.read_tsv(table_path).map(ids)
    summary = mapping_summary(res)
    if summary["mapped"] == 0:
        raise UserError(f"{path}: none of its {len(ids):,} gene identifiers (e.g. {', '.join(ids[:3])}) is a "
                        f"known human gene symbol, alias or Ensembl/Entrez id in {table_path}; check the gene "
                        "column (--gene-column) or the species")
    mapped = res["status"].to_numpy() == "mapped"
    symbol = np.where(mapped, res["symbol"].to_numpy(object), np.asarray(ids, dtype=object))
    ensembl = np.where(mapped, res["ensembl_id"].to_numpy(object), "")
    keep = ~pd.Series(symbol).duplicated().to_numpy()
    n_dup = int((~keep).sum())
    frame = pd.DataFrame({"symbol": symbol[keep].astype(str), "ensembl_id": ensembl[keep].astype(str)})
    if support_from is not None:
        frame["support"] = _support_from(Path(support_from), frame["symbol"])
    source = {"kind": "imported", "checkpoint": str(path), "sha256": sha256_file(path),
              "format": path.name.split(".", 1)[-1].lower(), "matrix": name,
              "support_from": str(support_from) if support_from is not None else None,
              "mapping": {**summary, "rows_in_file": len(ids), "kept": int(keep.sum()),
                          "dropped_duplicates": n_dup},
              "model_config": {}, "train_config": {}, "corpus": {}, "n_parameters": 0, "samples_seen": 0}
    log(f"{path}: {len(ids):,} genes x {x.shape[1]} dimensions; {summary['mapped']:,} identifiers mapped to "
        f"current symbols, {summary['unmapped']:,} unmapped and {summary['ambiguous']:,} ambiguous kept under "
        f"their own name, {n_dup:,} rows dropped as a second row of the same gene")
    if summary["mapped"] < 0.5 * len(ids):
        log(f"warning: only {summary['mapped'] / len(ids):.0%} of the identifiers are known genes; known "
            "pairs and gene sets will cover few of them")
    return {name: x[keep]}, frame, source


def _support_from(bundle: Path, symbols: pd.Series) -> np.ndarray:
    from .bundle import files as bundle_files
    p = bundle / bundle_files.GENES
    try:
        g = pd.read_parquet(p)
    except FileNotFoundError:
        raise UserError(f"{p}: not found; --support-from takes a bundle folder built by `precompute run`") from None
    except Exception as e:  # noqa: BLE001 -- pyarrow raises several types for a damaged file
        raise UserError(f"{p}: cannot be read ({e}); rebuild that bundle") from None
    if "support" not in g.columns:
        raise UserError(f"{p}: has no support column (a bundle of an old checkpoint or another import); "
                        "pass a bundle built from a current TxFM checkpoint or PCA baseline")
    sup = g.drop_duplicates("symbol").set_index("symbol")["support"]
    return symbols.map(sup).fillna(0).astype(int).to_numpy()
