"""Cell embeddings to compare: TxFM CLS, the PCA baseline file, library-normalised log1p counts,
and an in-dataset PCA of those. Each returns (z (n, D) float32, info dict)."""
from __future__ import annotations

import os
import warnings

import numpy as np
import scipy.sparse as sp

from .inputs import LabelledCounts


def txfm_embedding(checkpoint: str | os.PathLike, data: LabelledCounts, max_genes: int | None = None,
                   batch_size: int | None = None, seed: int = 0, device: str = "cpu",
                   progress: bool = True) -> tuple[np.ndarray, dict]:
    """(n, d) final CLS embeddings from ``txfm.inference.embed``.

    The data's genes are mapped onto the checkpoint vocabulary (symbols, Ensembl ids); every
    mapped gene counts as measured, so a screen of a few hundred genes shows the encoder only
    those. max_genes: cap on revealed genes (default: the run's training K).
    """
    from txfm.inference import embed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the mapping summary is returned in info instead
        res = embed(checkpoint, data.counts, data.genes, max_genes=max_genes, seed=seed, batch_size=batch_size,
                    device=device, progress=progress)
    return res.cls.astype(np.float32), {"genes_mapped": res.mapping.n_mapped, "genes_given": len(data.genes),
                                        "mapping": res.mapping.summary()}


def pca_baseline_embedding(path: str | os.PathLike, data: LabelledCounts) -> tuple[np.ndarray, dict]:
    """(n, k) sample scores of a PCA baseline file (``python -m txfm baseline-pca``).

    The data's genes are mapped onto the baseline's genes; counts of genes it does not use
    still enter each cell's library size (one extra column), as they would in the corpus.
    """
    from txfm.baseline import PCABaseline
    from txfm.checkpoint import load_file
    from txfm.inference import map_to_vocabulary

    pca = PCABaseline.from_dict(load_file(path, "txfm-pca-baseline"), path)
    mapping = map_to_vocabulary(data.genes, pca.genes, pca.gene_ids)
    if mapping.n_mapped == 0:
        raise ValueError(f"{path}: none of the {len(data.genes)} genes of {data.name} is among the baseline's "
                         f"{len(pca.genes)} genes; harmonise gene ids first")
    width = int(pca.gene_index.max()) + 2            # vocabulary positions used by the baseline, + "other"
    other = width - 1
    cols = np.where(mapping.index >= 0, pca.gene_index[np.maximum(mapping.index, 0)], other)
    proj = sp.csr_matrix((np.ones(len(cols)), (np.arange(len(cols)), cols)), shape=(len(cols), width))
    x_vocab = (sp.csr_matrix(data.counts, dtype=np.float64) @ proj).tocsr()
    z = pca.transform(x_vocab)
    return z.astype(np.float32), {"genes_mapped": mapping.n_mapped, "genes_given": len(data.genes),
                                  "baseline_genes": len(pca.genes), "components": int(z.shape[1])}


def log1p_embedding(data: LabelledCounts, library_size: float = 1e5) -> tuple[np.ndarray, dict]:
    """(n, g) library-normalised log1p counts (dense), the model-free reference."""
    from txfm.preprocessing import library_normalize_log1p

    z = library_normalize_log1p(data.counts, library_size)
    return np.asarray(z.toarray(), dtype=np.float32), {"genes": len(data.genes)}


def dataset_pca_embedding(data: LabelledCounts, n_components: int = 50, min_cells: int = 3,
                          seed: int = 0) -> tuple[np.ndarray, dict]:
    """(n, k) PCA of library-normalised log1p counts fitted on this dataset itself (the usual
    single-cell workflow; genes detected in fewer than ``min_cells`` cells dropped, genes scaled)."""
    from txfm.baseline import PCAConfig, fit_pca_matrix
    from txfm.preprocessing import library_normalize_log1p

    z = library_normalize_log1p(data.counts)
    keep = np.flatnonzero(np.bincount(sp.csr_matrix(data.counts).indices, minlength=data.counts.shape[1]) >= min_cells)
    cfg = PCAConfig(n_components=n_components, seed=seed)
    mean, scale, comps, _ = fit_pca_matrix(z[:, keep], cfg)
    dense = np.asarray(z[:, keep].toarray(), dtype=np.float64)
    scores = ((dense - mean) / scale) @ comps.T
    return scores.astype(np.float32), {"genes": int(keep.size), "components": int(comps.shape[0])}
