"""Step 1 from a file: gene matrices + gene table + provenance from a TxFM checkpoint or PCA baseline.

Delegates to txfm.inference (imported lazily so precompute's tests run without a checkpoint).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .bundle.files import sha256_file


def load_gene_matrices(path: Path | str, contextual: bool = False, corpus: Path | str | None = None,
                       contextual_samples: int = 2048, seed: int = 0
                       ) -> tuple[dict[str, np.ndarray], pd.DataFrame, dict[str, Any]]:
    """Gene matrices, genes table and manifest.source for a checkpoint or PCA-baseline file.

    Returns:
        matrices {"codebook": (G, d-1), "decoder": (G, h)} or {"pca": (G, k)} (plus
        "contextual": (G, d) when requested), genes (symbol, ensembl_id), source dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found; train one with `python -m txfm train` "
                                "or pass the right --checkpoint")
    from txfm.inference import gene_matrices

    mats, genes, meta = gene_matrices(path)
    mats = {k: np.asarray(v, dtype=np.float32) for k, v in mats.items()}
    if contextual:
        if meta.get("kind") != "txfm":
            raise ValueError(f"{path}: contextual gene embeddings need a TxFM checkpoint, not a "
                             f"{meta.get('kind')!r} file; drop --contextual")
        if corpus is None:
            corpus = (meta.get("corpus") or {}).get("path")
        if not corpus:
            raise ValueError("contextual gene embeddings need a corpus; pass --corpus DIR")
        from txfm.inference import contextual_gene_embeddings
        mats["contextual"] = np.asarray(
            contextual_gene_embeddings(path, corpus, n_samples=contextual_samples, seed=seed),
            dtype=np.float32)
    source = {"kind": meta.get("kind", "txfm"), "checkpoint": str(path), "sha256": sha256_file(path),
              "model_config": meta.get("model_config", {}), "train_config": meta.get("train_config", {}),
              "corpus": meta.get("corpus", {}), "n_parameters": int(meta.get("n_parameters", 0) or 0),
              "samples_seen": int(meta.get("samples_seen", 0) or 0), "step": int(meta.get("step", 0) or 0)}
    out = pd.DataFrame({"symbol": genes["symbol"].astype(str),
                        "ensembl_id": genes["ensembl_id"].fillna("").astype(str)})
    if "support" in genes.columns:  # datasets measuring each gene well: the honest recall population
        out["support"] = genes["support"].astype(int)
    genes = out
    return mats, genes, source


def find_training_metrics(checkpoint: Path | str) -> pd.DataFrame | None:
    """The run's metrics log beside the checkpoint (metrics.parquet / .csv / .jsonl), or None."""
    folder = Path(checkpoint).parent
    for name, reader in (("metrics.parquet", pd.read_parquet), ("metrics.csv", pd.read_csv),
                         ("metrics.jsonl", lambda p: pd.read_json(p, lines=True))):
        p = folder / name
        if p.is_file():
            return reader(p)
    return None
