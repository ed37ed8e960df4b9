"""Independent PCA cross-check on the five PBMC sets in ../shared/data (figures in docs/precompute.md).

Cells of kang2018, pbmc4k_soupx, pbmc_donorA_mudan, pbmc_sorted_reference_mudan and
pbmc1k_pisces; genes measured in all five and detected in >= 50 cells; library size 1e5 and
log1p; genes standardised; PCA with scikit-learn; gene vectors = loadings weighted by the
square root of the eigenvalues. Recall is then computed three ways (see docs/precompute.md):
  weighted    cosine of the weighted loadings as they are (the issue's reference ~0.24)
  whitened    unweighted principal axes (every component weight 1)
  pipeline    what a bundle does with a pca matrix: centre the columns, PCA, all scores
  pipeline_zscored  the same with the columns z-scored first (the codebook/decoder recipe),
              which whitens the weighted loadings
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

PBMC_SETS = ("kang2018_pbmc_stim", "pbmc4k_soupx", "pbmc_donorA_mudan",
             "pbmc_sorted_reference_mudan", "pbmc1k_pisces")


def load_pbmc_matrix(data_dir: Path | str, min_cells: int = 50, library_size: float = 1e5,
                     library_over: str = "all") -> tuple[sp.csr_matrix, list[str]]:
    """(cells, genes) log1p(library-normalised) matrix and the gene symbols.

    Args:
        library_over: "all" = library size over all genes of each cell (what a corpus row holds);
            "common" = over the genes kept (common to all five and detected).
    """
    import anndata

    data_dir = Path(data_dir)
    ads = []
    for name in PBMC_SETS:
        p = data_dir / f"{name}.h5ad"
        if not p.is_file():
            raise FileNotFoundError(f"{p}: missing; the cross-check needs the five PBMC sets of ../shared/data")
        ads.append(anndata.read_h5ad(p))
    common = set(ads[0].var_names)
    for a in ads[1:]:
        common &= set(a.var_names)
    genes = sorted(common)
    blocks, totals = [], []
    for a in ads:
        x = sp.csr_matrix(a.X)
        totals.append(np.asarray(x.sum(axis=1)).ravel())
        col = pd.Index(a.var_names).get_indexer(genes)
        blocks.append(x[:, col])
    x = sp.vstack(blocks).tocsr().astype(np.float64)
    detected = np.asarray((x > 0).sum(axis=0)).ravel()
    keep = np.nonzero(detected >= min_cells)[0]
    x = x[:, keep]
    genes = [genes[i] for i in keep]
    tot = np.concatenate(totals) if library_over == "all" else np.asarray(x.sum(axis=1)).ravel()
    tot[tot == 0] = 1.0
    x = sp.diags(library_size / tot) @ x
    x.data = np.log1p(x.data)
    return x.tocsr(), genes


def pca_gene_loadings(x: sp.csr_matrix, n_components: int = 256, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Standardise genes (dense), PCA (sklearn, exact eigendecomposition of the covariance); returns (G, k) unweighted axes and (k,) eigenvalues."""
    from sklearn.decomposition import PCA

    z = x.toarray()
    z -= z.mean(0)
    sd = z.std(0, ddof=1)
    sd[sd == 0] = 1.0
    z /= sd
    pca = PCA(n_components=n_components, svd_solver="covariance_eigh", random_state=seed).fit(z)
    return pca.components_.T.astype(np.float64), pca.explained_variance_


def crosscheck(data_dir: Path | str, references_dir: Path | str, n_components: int = 256,
               library_over: str = "all", seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Recall per source for the three gene-vector variants; returns (table, info)."""
    from precompute.bundle.recall import relationship_recall
    from precompute.references import load_pairs
    from precompute.bundle.recall import pairs_to_indices
    from precompute.subspaces import pca_scores

    x, genes = load_pbmc_matrix(data_dir, library_over=library_over)
    axes, ev = pca_gene_loadings(x, n_components, seed)
    pairs = pairs_to_indices(load_pairs(references_dir), genes)
    variants = {"weighted": axes * np.sqrt(ev), "whitened": axes,
                "pipeline_zscored": pca_scores(axes * np.sqrt(ev), standardise=True)[0],
                "pipeline": pca_scores(axes * np.sqrt(ev), standardise=False)[0]}
    frames = []
    for name, v in variants.items():
        df = relationship_recall(v, pairs, n_nulls=3, null_size=5000, seed=seed)
        frames.append(df.assign(variant=name))
    info = {"cells": int(x.shape[0]), "genes": len(genes), "components": int(axes.shape[1]),
            "library_over": library_over}
    return pd.concat(frames, ignore_index=True), info


def project_baseline_recall(data_dir: Path | str, references_dir: Path | str, work: Path | str,
                            n_components: int = 256, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """The project's own path on the same input: `data build-corpus` -> `txfm baseline-pca` -> recall.

    The corpus vocabulary is the cross-check's gene list (common to the five sets, detected in
    >= 50 cells), with no further curation, so both computations see the same 10,206 x 7,666
    matrix; txfm normalises the library over the corpus vocabulary (the "common" variant here).
    Runs the two CLIs as subprocesses (their outputs go under `work`).
    """
    import subprocess
    import sys

    from txfm.inference import gene_matrices

    from precompute.bundle.recall import relationship_recall
    from precompute.references import load_pairs
    from precompute.bundle.recall import pairs_to_indices
    from precompute.subspaces import pca_scores

    from common.outputs import check_output_target
    work = Path(work)
    # its own work folder (genes.txt, corpus/, pca.pt) is reused; any other non-empty folder is refused
    check_output_target(work, "crosscheck work folder", lambda p: (p / "genes.txt").is_file(), replace=True)
    work.mkdir(parents=True, exist_ok=True)
    _, genes = load_pbmc_matrix(data_dir)
    (work / "genes.txt").write_text("\n".join(genes) + "\n")
    corpus, pca_file = work / "corpus", work / "pca.pt"
    sources = [str(Path(data_dir) / f"{n}.h5ad") for n in PBMC_SETS]
    subprocess.run([sys.executable, "-m", "data", "build-corpus", "--source", *sources, "--out", str(corpus),
                    "--overwrite", "--genes", str(work / "genes.txt"), "--gene-table", "none",
                    "--min-cells", "0", "--min-genes", "0", "--keep-duplicates"], check=True)
    subprocess.run([sys.executable, "-m", "txfm", "baseline-pca", "--corpus", str(corpus), "--out", str(pca_file),
                    "--overwrite", "--n-components", str(n_components), "--min-cells", "50", "--seed", str(seed)], check=True)
    mats, gtab, meta = gene_matrices(pca_file)
    loadings = mats["pca"]
    sym = gtab.symbol.tolist()
    pairs = pairs_to_indices(load_pairs(references_dir), sym)
    frames = []
    for name, v in {"project_weighted": loadings,
                    "project_pipeline": pca_scores(loadings, standardise=False)[0],
                    "project_pipeline_zscored": pca_scores(loadings, standardise=True)[0]}.items():
        frames.append(relationship_recall(v, pairs, n_nulls=3, null_size=5000, seed=seed).assign(variant=name))
    info = {"cells": int(meta.get("samples_seen", 0)), "genes": len(sym), "components": int(loadings.shape[1])}
    return pd.concat(frames, ignore_index=True), info
