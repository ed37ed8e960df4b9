"""PCA baseline on the same corpus: gene loadings as a gene matrix, sample scores as embeddings.

Input: library-normalised log1p counts (as TxFM's targets), genes detected in at
least ``min_cells`` samples, optionally standardised per gene. The centred and
scaled matrix is never densified: randomized SVD runs on a scipy LinearOperator
over the sparse counts.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import LinearOperator

from common.errors import reading
from common.options import OptionError, check_range

from . import __version__
from .checkpoint import FORMAT_VERSION, CheckpointError, atomic_torch_save
from .corpus import Corpus
from .preprocessing import preprocess

FORMAT = "txfm-pca-baseline"


@dataclass(frozen=True)
class PCAConfig:
    n_components: int = 256  # principal components kept (capped by the data's rank)
    min_cells: int = 10  # genes detected in fewer samples are left out
    scale: bool = True  # standardise each gene (unit variance) before PCA
    max_samples: int = 100_000  # random subsample of samples used to fit
    preprocessing: str = "libnorm_log1p"
    library_size: float = 1e5
    seed: int = 0
    n_iter: int = 6  # power iterations of the randomized SVD

    def __post_init__(self) -> None:
        check_range("n_components", self.n_components, lo=1, integer=True, what="principal components kept")
        check_range("min_cells", self.min_cells, lo=0, integer=True, what="samples a gene must be detected in")
        check_range("max_samples", self.max_samples, lo=2, integer=True)
        check_range("library_size", self.library_size, lo=0, lo_open=True)
        check_range("seed", self.seed, lo=0, integer=True)
        check_range("n_iter", self.n_iter, lo=0, integer=True)
        if self.preprocessing not in ("libnorm_log1p", "log1p"):
            raise OptionError(f"--preprocessing {self.preprocessing!r}: choose libnorm_log1p or log1p")


@dataclass
class PCABaseline:
    genes: list[str]  # (G',) genes used, in vocabulary order
    gene_ids: list[str]
    gene_index: np.ndarray  # (G',) their vocabulary indices
    mean: np.ndarray  # (G',) per-gene mean of the preprocessed values
    scale: np.ndarray  # (G',) per-gene standard deviation (ones when not scaling)
    components: np.ndarray  # (k, G') principal axes
    explained_variance: np.ndarray  # (k,) eigenvalues
    config: PCAConfig
    n_samples_fit: int = 0

    def gene_loadings(self) -> np.ndarray:
        """(G', k) gene matrix: principal axes weighted by sqrt(eigenvalue)."""
        return (self.components.T * np.sqrt(self.explained_variance)).astype(np.float32)

    def transform(self, x_vocab: sp.csr_matrix) -> np.ndarray:
        """(n, G) raw counts in vocabulary order -> (n, k) sample scores."""
        z = preprocess(x_vocab, self.config.preprocessing, self.config.library_size)[:, self.gene_index]
        z = np.asarray(z.todense() if sp.issparse(z) else z, dtype=np.float64)
        return (((z - self.mean) / self.scale) @ self.components.T).astype(np.float32)

    def to_dict(self, corpus: dict | None = None) -> dict:
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "txfm_version": __version__,
                "config": asdict(self.config), "genes": list(self.genes), "gene_ids": list(self.gene_ids),
                "gene_index": t(self.gene_index), "mean": t(self.mean), "scale": t(self.scale),
                "components": t(self.components), "explained_variance": t(self.explained_variance),
                "n_samples_fit": int(self.n_samples_fit), "corpus": corpus or {}}

    @classmethod
    def from_dict(cls, d: dict, where: str | os.PathLike = "PCA baseline") -> "PCABaseline":
        """The baseline stored in a loaded PCA file `d`; a file whose arrays are missing, of the wrong
        shape or empty (zero components, zero genes) is refused naming `where` (CheckpointError)."""
        fix = f"fit it again with `python -m txfm baseline-pca --corpus CORPUS --out {where} --overwrite`"
        with reading(where, fix, "PCA baseline file", CheckpointError):
            arrays = {k: np.asarray(d[k]) for k in ("gene_index", "mean", "scale", "components",
                                                               "explained_variance")}
            genes, gene_ids = list(d["genes"]), list(d["gene_ids"])
            config, n_fit = PCAConfig(**d["config"]), int(d["n_samples_fit"])
        comp = arrays["components"]
        g = len(genes)
        if comp.ndim != 2 or comp.shape[0] < 1 or comp.shape[1] < 1:
            raise CheckpointError(f"{where}: the PCA baseline has components of shape {comp.shape}, no usable "
                                  f"component; {fix}")
        shapes = {k: arrays[k].shape for k in ("gene_index", "mean", "scale")}
        if comp.shape[1] != g or len(gene_ids) != g or any(s != (g,) for s in shapes.values()) or \
                arrays["explained_variance"].shape != (comp.shape[0],):
            raise CheckpointError(f"{where}: the PCA baseline's arrays disagree ({g} genes, components "
                                  f"{comp.shape}, {', '.join(f'{k} {v}' for k, v in shapes.items())}, explained "
                                  f"variance {arrays['explained_variance'].shape}); {fix}")
        if not (np.isfinite(comp).all() and np.isfinite(arrays["mean"]).all() and np.isfinite(arrays["scale"]).all()):
            raise CheckpointError(f"{where}: the PCA baseline holds NaN or infinite values; {fix}")
        return cls(genes, gene_ids, arrays["gene_index"], arrays["mean"], arrays["scale"], comp,
                   arrays["explained_variance"], config, n_fit)

    def save(self, path: str | os.PathLike, corpus: dict | None = None) -> None:
        atomic_torch_save(self.to_dict(corpus), path)


def fit_pca_matrix(x: sp.csr_matrix, cfg: PCAConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PCA of preprocessed values x (n, g) sparse: returns mean, scale, components (k, g), eigenvalues (k,)."""
    n, g = x.shape
    x = sp.csr_matrix(x, dtype=np.float64)
    mean = np.asarray(x.mean(axis=0)).ravel()
    var = np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean ** 2
    scale = np.sqrt(np.maximum(var * n / max(n - 1, 1), 0)) if cfg.scale else np.ones(g)
    scale[scale == 0] = 1.0
    inv = 1.0 / scale

    def matmat(v):  # ((X - 1 mean^T) / scale) @ v
        v = np.asarray(v).reshape(g, -1) * inv[:, None]
        return x @ v - np.outer(np.ones(n), mean @ v)

    def rmatmat(u):  # ((X - 1 mean^T) / scale)^T @ u
        u = np.asarray(u).reshape(n, -1)
        return (x.T @ u - np.outer(mean, u.sum(axis=0))) * inv[:, None]

    op = LinearOperator((n, g), matvec=matmat, rmatvec=rmatmat, matmat=matmat, rmatmat=rmatmat, dtype=np.float64)
    k = min(cfg.n_components, n - 1, g)
    if k < 1:
        raise ValueError(f"PCA needs at least 2 samples and 1 gene, got {n} sample(s) and {g} gene(s); "
                         "fit it on a corpus with more samples")
    _, s, vt = randomized_svd_operator(op, k, cfg.n_iter, cfg.seed)
    return mean, scale, vt, s ** 2 / max(n - 1, 1)


def randomized_svd_operator(op: LinearOperator, k: int, n_iter: int, seed: int, oversample: int = 10):
    """Truncated SVD of a LinearOperator (Halko, Martinsson & Tropp 2011, Alg. 4.4 with QR-stabilised
    power iterations; sklearn's randomized_svd needs an array). Returns U (n, k), s (k,), Vt (k, g),
    signs fixed so that each row of Vt has its largest-magnitude entry positive."""
    n, g = op.shape
    q = np.random.default_rng(seed).standard_normal((g, min(k + oversample, min(n, g))))
    q, _ = np.linalg.qr(op.matmat(q))
    for _ in range(n_iter):
        q, _ = np.linalg.qr(op.rmatmat(q))
        q, _ = np.linalg.qr(op.matmat(q))
    ub, s, vt = np.linalg.svd(op.rmatmat(q).T, full_matrices=False)  # (Q^T A) = Ub S Vt
    u = q @ ub
    sign = np.sign(vt[np.arange(vt.shape[0]), np.argmax(np.abs(vt), axis=1)])
    return u[:, :k] * sign[:k], s[:k], vt[:k] * sign[:k, None]


def fit_pca(corpus: Corpus, cfg: PCAConfig, rows: np.ndarray | None = None) -> PCABaseline:
    """Fit the PCA baseline on (a subsample of) the corpus' samples (``rows``: bool mask, default all)."""
    idx = np.arange(corpus.n_samples) if rows is None else np.flatnonzero(rows)
    rng = np.random.default_rng(cfg.seed)
    if idx.size > cfg.max_samples:
        idx = np.sort(rng.choice(idx, cfg.max_samples, replace=False))
    x, _ = corpus.read_rows(idx)
    z = preprocess(x, cfg.preprocessing, cfg.library_size)
    detected = np.bincount(x.indices, minlength=corpus.n_genes)
    keep = np.flatnonzero(detected >= cfg.min_cells)
    if x.nnz == 0:
        raise ValueError(f"{corpus.path}: every count of the {idx.size} samples read is zero; the corpus holds no "
                         f"data, rebuild it from raw counts")
    if keep.size < 2:
        best = int(np.sort(detected)[-2]) if detected.size >= 2 else 0
        raise ValueError(f"{corpus.path}: only {keep.size} genes are detected in >= {cfg.min_cells} samples, PCA "
                         f"needs 2; " + (f"lower --min-cells to {best} or less" if best >= 1 else
                                         "fewer than 2 genes have any count, so the corpus cannot be fitted"))
    mean, scale, comps, ev = fit_pca_matrix(z[:, keep], cfg)
    return PCABaseline([corpus.genes[i] for i in keep], [corpus.gene_ids[i] for i in keep], keep, mean, scale,
                       comps, ev, cfg, int(idx.size))


def run_baseline(corpus_path: str, out: str | os.PathLike, cfg: PCAConfig) -> Path:
    """Fit on the corpus and write ``out`` (a .pt file readable with weights_only=True)."""
    corpus = Corpus(corpus_path)
    corpus.verify()
    pca = fit_pca(corpus, cfg)
    out = Path(out)
    from .dataset import gene_support
    pca.save(out, {"path": str(corpus_path), "fingerprint": corpus.fingerprint, "n_samples": corpus.n_samples,
                   "n_genes": corpus.n_genes, "gene_support": gene_support(corpus).tolist()})
    return out
