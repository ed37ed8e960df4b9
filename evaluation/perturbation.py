"""Perturbation representation metrics on aligned cell embeddings (../shared/docs/txfm-method.md):

* consistency: fraction of perturbations whose mean leave-one-out cosine beats a null of random
  cells (empirical p < alpha); the statistic itself is ``data.corpus.curation.embedding_consistency``,
  shared with phenoprint curation;
* relationship recall of perturbation mean embeddings, with precompute's ``relationship_recall``
  (the perturbation targets play the genes);
* kNN retrieval of the perturbation label ACROSS batches: every labelled cell looks for its
  nearest labelled cells in the other batches only; top-k hit = its own label among them;
* linear probe: multinomial logistic regression trained on all batches but one and tested on
  the held-out one (leave-one-batch-out).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from data.corpus.curation import align_embeddings


@dataclass(frozen=True)
class PerturbationParams:
    control: str = "non-targeting"  # label of the non-targeting control cells
    ignore: tuple[str, ...] = ("unassigned", "", "nan")  # labels left out of every metric
    n_components: int = 50  # components of the control PCA used to align the embeddings
    n_null: int = 10000  # random cells in each perturbation's consistency null
    alpha: float = 0.01  # a perturbation is consistent when its empirical p < alpha
    knn_k: tuple[int, ...] = (1, 5)  # top-k of the cross-batch kNN retrieval
    probe_c: float = 1.0  # inverse L2 strength of the linear probe
    probe_max_iter: int = 300  # lbfgs iterations of the linear probe
    recall_nulls: int = 3  # sampled nulls of the mean-embedding recall
    seed: int = 0  # seed of the nulls, subsampling and probes

    def __post_init__(self) -> None:
        from common.options import check_range
        check_range("n_components", self.n_components, lo=1, integer=True, what="control-PCA components")
        check_range("n_null", self.n_null, lo=1, integer=True, what="random cells per consistency null")
        check_range("alpha", self.alpha, lo=0, hi=1, lo_open=True)
        for k in self.knn_k:
            check_range("knn_k", k, lo=1, integer=True)
        check_range("probe_c", self.probe_c, lo=0, lo_open=True)
        check_range("probe_max_iter", self.probe_max_iter, lo=1, integer=True)
        check_range("recall_nulls", self.recall_nulls, lo=1, integer=True)
        check_range("seed", self.seed, lo=0, integer=True)


def consistency(z: np.ndarray, labels: np.ndarray, params: PerturbationParams) -> tuple[float, pd.DataFrame]:
    """Fraction of perturbations (with >= 2 cells) that are consistent, and the per-perturbation table."""
    from data.corpus.curation import embedding_consistency

    table = embedding_consistency(z, labels, params.control, params.ignore, params.n_null, params.seed)
    table["consistent"] = table["p_value"].lt(params.alpha)
    scored = table.dropna(subset=["p_value"])
    return (float(scored["consistent"].mean()) if len(scored) else float("nan")), table


def perturbation_means(z: np.ndarray, labels: np.ndarray, exclude: set[str]) -> tuple[list[str], np.ndarray]:
    """Sorted perturbation names and their (P, D) mean embeddings (``exclude`` labels left out)."""
    names = sorted(set(map(str, labels)) - exclude)
    return names, np.stack([z[labels == n].mean(0) for n in names]) if names else np.zeros((0, z.shape[1]))


def mean_embedding_recall(z: np.ndarray, labels: np.ndarray, pairs: pd.DataFrame,
                          params: PerturbationParams) -> pd.DataFrame:
    """Recall of known pairs among perturbation targets, on their mean embeddings.

    pairs: DataFrame(source, gene_a, gene_b) (``data.references.tables.load_pairs``). Returns
    precompute's table: source, recall_mean, recall_std, n_pairs, chance.
    """
    from precompute.bundle.recall import relationship_recall
    from precompute.bundle.recall import pairs_to_indices

    names, means = perturbation_means(z, labels, set(params.ignore) | {params.control})
    if len(names) < 3:
        raise ValueError(f"only {len(names)} perturbations; recall of mean embeddings needs at least 3")
    return relationship_recall(means, pairs_to_indices(pairs, names), n_nulls=params.recall_nulls,
                               seed=params.seed)


def knn_cross_batch(z: np.ndarray, labels: np.ndarray, batch: np.ndarray, ks: tuple[int, ...] = (1, 5),
                    block: int = 2048) -> dict[str, float]:
    """Top-k label retrieval where each cell's neighbours come from OTHER batches only (cosine).

    Returns {"knn_top{k}": macro mean over labels of the per-label hit rate, "knn_top{k}_micro":
    mean over cells}. Cells in a batch alone (no other batch) raise.
    """
    batch = np.asarray(batch).astype(str)
    codes, lab = np.unique(labels, return_inverse=True)
    _, bcode = np.unique(batch, return_inverse=True)
    if bcode.max() < 1:
        raise ValueError("kNN retrieval across batches needs at least two batches")
    kmax = max(ks)
    x = torch.from_numpy(np.asarray(z, dtype=np.float32))
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    bt = torch.from_numpy(bcode)
    hits = {k: np.zeros(len(z), dtype=bool) for k in ks}
    for s in range(0, len(z), block):
        sim = x[s:s + block] @ x.T                                         # (b, n)
        sim[bt[s:s + block, None] == bt[None, :]] = -torch.inf             # same batch (and self) excluded
        nn = torch.topk(sim, kmax, dim=1).indices.numpy()                  # (b, kmax)
        same = lab[nn] == lab[s:s + block, None]
        for k in ks:
            hits[k][s:s + block] = same[:, :k].any(axis=1)
    out = {}
    for k in ks:
        per_label = np.bincount(lab, weights=hits[k], minlength=len(codes)) / np.bincount(lab, minlength=len(codes))
        out[f"knn_top{k}"] = float(per_label.mean())
        out[f"knn_top{k}_micro"] = float(hits[k].mean())
    return out


def linear_probe(z: np.ndarray, labels: np.ndarray, batch: np.ndarray, c: float = 1.0,
                 max_iter: int = 300, seed: int = 0) -> dict[str, float]:
    """Leave-one-batch-out logistic regression of the label: mean balanced accuracy and macro F1
    over held-out batches (labels absent from a fold's training batches count as misses)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, f1_score

    batch = np.asarray(batch).astype(str)
    bal, f1 = [], []
    for b in np.unique(batch):
        test = batch == b
        clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(z[~test], labels[~test])
        pred = clf.predict(z[test])
        bal.append(balanced_accuracy_score(labels[test], pred))
        f1.append(f1_score(labels[test], pred, average="macro", zero_division=0))
    return {"probe_balanced_accuracy": float(np.mean(bal)), "probe_macro_f1": float(np.mean(f1))}


def evaluate_embedding(z: np.ndarray, labels: np.ndarray, batch: np.ndarray, params: PerturbationParams,
                       pairs: pd.DataFrame | None = None, shuffle_labels: bool = False
                       ) -> tuple[dict, pd.DataFrame, pd.DataFrame | None]:
    """All perturbation metrics for one (n, D) embedding.

    labels: (n,) perturbation per cell (control and ``ignore`` labels included); batch: (n,).
    shuffle_labels: after alignment, permute the labels of the labelled cells within each batch
    (the label-shuffled control: every metric should fall to chance).
    Returns (row of metrics, per-perturbation consistency table, recall table or None).
    """
    labels = np.asarray(labels).astype(str)
    batch = np.asarray(batch).astype(str)
    al = align_embeddings(z, batch, labels == params.control, params.n_components, seed=params.seed)
    keep = ~np.isin(labels, list(params.ignore))
    if shuffle_labels:
        rng = np.random.default_rng(params.seed)
        labels = labels.copy()
        for b in np.unique(batch):
            rows = np.flatnonzero(keep & (batch == b))
            labels[rows] = labels[rng.permutation(rows)]
    frac, table = consistency(al.z, labels, params)
    row = {"dims_in": int(z.shape[1]), "dims_aligned": al.n_components,
           "control_pca_variance": al.explained_variance_ratio,
           "consistency": frac, "n_consistent": int(table["consistent"].sum()), "n_perturbations": int(len(table)),
           # softer readings of the same table: the paper's curation threshold, and the statistic itself
           "consistency_p10": float(table["p_value"].dropna().lt(0.1).mean()),
           "loo_cosine": float(table["statistic"].mean())}
    row.update(knn_cross_batch(al.z[keep], labels[keep], batch[keep], params.knn_k))
    row.update(linear_probe(al.z[keep], labels[keep], batch[keep], params.probe_c, params.probe_max_iter,
                            params.seed))
    recall = None
    if pairs is not None:
        recall = mean_embedding_recall(al.z, labels, pairs, params)
        comb = recall.set_index("source").loc["combined"]
        row.update({"mean_recall": float(comb["recall_mean"]), "mean_recall_pairs": int(comb["n_pairs"]),
                    "mean_recall_chance": float(comb["chance"])})
    return row, table, recall


def params_dict(params: PerturbationParams) -> dict:
    d = asdict(params)
    d["ignore"], d["knn_k"] = list(params.ignore), list(params.knn_k)
    return d
