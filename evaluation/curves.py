"""Learning curves of a run, measured honestly (docs/training-recipe.md):

for every saved checkpoint of a run (and the PCA baseline beside it), on the SAME gene population
(genes measured well in >= 2 datasets, ``precompute.bundle.recall.recall_population``, intersected over
the matrices compared):

* relationship recall of each gene matrix at its best rank (mean of the per-source recalls),
  the chance level, and the population size;
* hubness of its neighbourhoods at that rank: how many top-20 lists the most frequent gene is in
  (``hub_max``) and the skewness of the in-degree distribution (``hub_skew``);
* CLS kNN accuracy on a labelled dataset (default: the sorted PBMC reference inside the corpus).

Output: one row per (checkpoint, matrix) with samples seen and wall-clock minutes of training.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

CELLTYPE_DATASET = "pbmc_sorted_reference_mudan"
CELLTYPE_COLUMN = "cell_type"
HUB_K = 20


def hubness(x: np.ndarray, k: int = HUB_K) -> tuple[int, float]:
    """(max in-degree, skewness of in-degrees) of the cosine top-k neighbour lists of rows of x."""
    from scipy.stats import skew

    from precompute.knn import cosine_knn
    idx, _ = cosine_knn(np.ascontiguousarray(x, dtype=np.float32), k=min(k, len(x) - 1))
    deg = np.bincount(idx.ravel(), minlength=len(x))
    return int(deg.max()), float(skew(deg))


def matrix_scores(m: np.ndarray, pairs: dict, standardise: bool, seed: int = 0, n_nulls: int = 2) -> dict:
    """Best-rank recall (mean of sources) and hubness at that rank of a (G, D) matrix (rows = population)."""
    from precompute.bundle.recall import best_rank, recall_sweep
    from precompute.subspaces import pca_scores, rank_sweep

    sub, _ = pca_scores(m, standardise=standardise)
    table = recall_sweep(sub, pairs, rank_sweep(sub.shape[1]), n_nulls=n_nulls, seed=seed)
    best = best_rank(table)
    if best is None:
        raise ValueError("no known pair has both genes in the recall population; check --references")
    r = int(best["rank"])
    hub_max, hub_skew = hubness(sub[:, :r])
    return {"recall": float(best.recall_mean), "rank": r, "chance": float(best.chance), "hub_max": hub_max,
            "hub_skew": hub_skew}


def run_curves(run_dir: str | Path, references: str | Path, pca: str | Path | None = None,
               corpus: str | Path | None = None, dataset: str = CELLTYPE_DATASET,
               label_column: str = CELLTYPE_COLUMN, every: int = 1, seed: int = 0,
               device: str = "auto") -> pd.DataFrame:
    """Rows (checkpoint, step, samples_seen, train_minutes, matrix, recall, rank, chance, n_genes,
    hub_max, hub_skew, knn_accuracy) for the run's checkpoints (every ``every``-th, and the last).
    ``device``: where the CLS embeddings are computed ('auto': a GPU when there is one)."""
    from evaluation.celltype import CellTypeParams, evaluate_celltypes
    from evaluation.embeddings import pca_baseline_embedding, txfm_embedding
    from evaluation.inputs import read_corpus_dataset
    from precompute.params import BundleParams
    from precompute.bundle.recall import recall_population
    from precompute.references import load_pairs
    from precompute.bundle.recall import pairs_to_indices
    from evaluation.results import RunCheckpoints, run_checkpoints
    from txfm.feed import resolve_device
    from txfm.inference import gene_matrices

    device = str(resolve_device(device))
    run_dir = Path(run_dir)
    import filecmp
    cks = run_checkpoints(run_dir)
    if len(cks) > 1 and cks[-1].name == "last.pt" and filecmp.cmp(cks[-1], cks[-2], shallow=False):
        cks = cks[:-1]  # last.pt is a copy of the final step checkpoint
    run = RunCheckpoints(run_dir, cks)
    _, (_, last_genes, last_meta) = run.last()         # the newest readable checkpoint
    cks = run.checkpoints
    cks = [c for i, c in enumerate(cks) if i % every == every - 1 or c == cks[-1]]
    corpus = corpus or last_meta["corpus"].get("path")
    if "support" not in last_genes.columns and corpus:  # a run saved before checkpoints recorded it
        from txfm.corpus import Corpus
        from txfm.dataset import gene_support
        c = Corpus(corpus)
        by_symbol = dict(zip(c.genes, gene_support(c)))
        last_genes = last_genes.assign(support=[by_symbol.get(g, 0) for g in last_genes.symbol])
    pop_idx, label = recall_population(last_genes)
    population = set(last_genes.symbol.to_numpy()[pop_idx])
    if pca is not None:
        population &= set(gene_matrices(pca)[1].symbol)
    shared = sorted(population)
    pairs = pairs_to_indices(load_pairs(references), shared)
    cells = read_corpus_dataset(corpus, dataset) if corpus else None
    labels = cells.column(label_column) if cells is not None else None
    minutes = _train_minutes(run_dir)

    def restrict(mats, genes):
        pos = pd.Series(np.arange(len(genes)), index=genes.symbol.to_numpy())
        rows = pos.loc[shared].to_numpy()
        return {k: np.asarray(v)[rows] for k, v in mats.items()}

    out = []
    jobs = ([("pca", Path(pca))] if pca is not None else []) + [("txfm", c) for c in cks]
    for kind, path in tqdm(jobs, desc="checkpoints"):
        got = gene_matrices(path) if kind == "pca" else run.load(path)
        if got is None:
            continue
        mats, genes, meta = got
        knn = float("nan")
        if cells is not None:
            z, _ = (pca_baseline_embedding(path, cells) if kind == "pca"
                    else txfm_embedding(path, cells, seed=seed, device=device, progress=False))
            knn = evaluate_celltypes(z, labels, CellTypeParams(resolutions=()))["knn_accuracy"]
        step = int(meta.get("step", 0))
        for name, m in restrict(mats, genes).items():
            s = matrix_scores(m, pairs, BundleParams().standardises(name), seed=seed)
            out.append({"checkpoint": str(path), "kind": kind, "step": step,
                        "samples_seen": int(meta.get("samples_seen", 0)),
                        "train_minutes": minutes.get(step, float("nan")), "matrix": name, **s,
                        "n_genes": len(shared), "population": label, "knn_accuracy": knn})
    return pd.DataFrame(out)


def _train_minutes(run_dir: Path) -> dict[int, float]:
    """{step: wall minutes of training up to it} from the run's metrics.jsonl (empty if absent)."""
    p = run_dir / "metrics.jsonl"
    if not p.is_file():
        return {}
    rows = [json.loads(r) for r in p.read_text().splitlines() if r.strip()]
    return {int(r["step"]): float(r.get("elapsed_s", float("nan"))) / 60 for r in rows}


def markdown(df: pd.DataFrame) -> str:
    """The curves as a compact markdown table (one row per checkpoint, matrices side by side)."""
    lines = ["| checkpoint | samples seen | train min | matrix | recall (rank) | chance | hub max / skew | CLS kNN |",
             "|---|---:|---:|---|---|---:|---|---:|"]
    for _, r in df.iterrows():
        name = "PCA baseline" if r.kind == "pca" else f"step {r.step}"
        lines.append(f"| {name} | {r.samples_seen:,} | {r.train_minutes:.1f} | {r.matrix} | {r.recall:.3f} ({r['rank']}) | "
                     f"{r.chance:.3f} | {r.hub_max} / {r.hub_skew:.1f} | {r.knn_accuracy:.3f} |")
    n = int(df.n_genes.iloc[0]) if len(df) else 0
    lines.append("")
    lines.append(f"Population: {df.population.iloc[0] if len(df) else ''}, {n:,} genes (shared by every matrix).")
    return "\n".join(lines)


def time_to_quality(df: pd.DataFrame) -> pd.DataFrame:
    """For each TxFM matrix of a learning-curve table (``run_curves``): the first checkpoint whose honest
    recall reaches the PCA baseline's, with samples seen and training minutes; when none does, the
    extrapolation of the slope over the last half of the run (recall per training minute), or no
    estimate when that slope is flat or falling. One row per matrix."""
    pca = df[df.kind == "pca"]
    if pca.empty:
        raise ValueError("the learning curves have no PCA baseline row; rerun `evaluation curves` with --pca")
    target = float(pca.recall.iloc[0])
    out = []
    for name, g in df[df.kind == "txfm"].sort_values("step").groupby("matrix", sort=True):
        hit = g[g.recall >= target]
        row = {"matrix": name, "pca_recall": target, "final_recall": float(g.recall.iloc[-1]),
               "final_step": int(g.step.iloc[-1]), "final_minutes": float(g.train_minutes.iloc[-1])}
        if len(hit):
            h = hit.iloc[0]
            row |= {"reached": True, "step": int(h.step), "samples_seen": int(h.samples_seen),
                    "minutes": float(h.train_minutes), "estimate": "measured"}
        else:
            half = g[g.step >= g.step.iloc[-1] / 2]
            dm = float(half.train_minutes.iloc[-1] - half.train_minutes.iloc[0]) if len(half) > 1 else 0.0
            slope = float(half.recall.iloc[-1] - half.recall.iloc[0]) / dm if dm > 0 else 0.0
            minutes = (float(g.train_minutes.iloc[-1]) + (target - float(g.recall.iloc[-1])) / slope
                       if slope > 1e-6 else float("nan"))
            row |= {"reached": False, "step": None, "samples_seen": None, "minutes": minutes,
                    "estimate": "linear extrapolation of the last half" if slope > 1e-6
                    else "none: flat or falling over the last half"}
        out.append(row)
    return pd.DataFrame(out)


def cls_anatomy(checkpoint: str | Path, corpus: str | Path, dataset: str = CELLTYPE_DATASET,
                label_column: str = CELLTYPE_COLUMN, n_components: int = 5, seed: int = 0) -> pd.DataFrame:
    """What the CLS of a checkpoint encodes on a labelled dataset of its corpus, one row per principal
    component of the cells' CLS embeddings: the share of variance it explains, its correlation with
    log library size and log detected genes, the share of its variance between labels (eta squared,
    1 - within / total), and (the same on every row) the mean correlation of a cell's centred CLS
    under two reveal seeds (1 = the CLS is fixed by the cell; 0 = fixed by which genes were revealed)."""
    from sklearn.decomposition import PCA

    from evaluation.embeddings import txfm_embedding
    from evaluation.inputs import read_corpus_dataset

    cells = read_corpus_dataset(corpus, dataset)
    labels = cells.column(label_column)
    z, _ = txfm_embedding(checkpoint, cells, seed=seed, progress=False)
    z2, _ = txfm_embedding(checkpoint, cells, seed=seed + 1, progress=False)
    mu = z.mean(0)
    a, b = z - mu, z2 - mu
    stability = float(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)))
    lib = np.log1p(np.asarray(cells.counts.sum(1)).ravel())
    ndet = np.log1p(np.asarray((cells.counts > 0).sum(1)).ravel())
    pca = PCA(min(n_components, z.shape[1]), random_state=seed).fit(z)
    scores = pca.transform(z)
    rows = []
    for i in range(scores.shape[1]):
        s = scores[:, i]
        within = sum(((s[labels == v] - s[labels == v].mean()) ** 2).sum() for v in np.unique(labels))
        rows.append({"component": i + 1, "variance_share": float(pca.explained_variance_ratio_[i]),
                     "corr_log_library": float(np.corrcoef(s, lib)[0, 1]),
                     "corr_log_detected": float(np.corrcoef(s, ndet)[0, 1]),
                     "between_label_share": float(1 - within / ((s - s.mean()) ** 2).sum()),
                     "reveal_seed_stability": stability})
    return pd.DataFrame(rows)


def reveal_ceiling(corpus: str | Path, dataset: str = CELLTYPE_DATASET, label_column: str = CELLTYPE_COLUMN,
                   reveals: tuple[int, ...] = (256, 512, 1024), detected_shares: tuple[float, ...] = (0.0, 0.5, 1.0),
                   n_components: int = 50, seed: int = 0) -> pd.DataFrame:
    """How much cell type the revealed genes alone carry, whatever the encoder does with them.

    For each K and share of K drawn first from a cell's non-zero genes (``txfm.masking.reveal_genes``,
    the law training uses), every cell keeps its log-normalised values (library 1e4, log1p) at its
    revealed genes only, zeros elsewhere; a PCA of those partial profiles (``n_components``) is scored
    with the same leave-one-out 15-NN accuracy as the CLS. A first row scores every gene (nothing
    hidden). The figure is a linear read-out of the visible values, so it bounds what a CLS trained
    on that reveal can be expected to show at this data size, not what a perfect encoder could infer.
    Rows: reveal, detected_share, nonzero_revealed (median per cell), knn_accuracy.
    """
    import scipy.sparse as sp
    from sklearn.decomposition import PCA

    from evaluation.celltype import CellTypeParams, evaluate_celltypes
    from evaluation.inputs import read_corpus_dataset
    from txfm.masking import reveal_genes
    from txfm.preprocessing import preprocess
    from common.options import check_range

    for k in reveals:
        check_range("reveal", k, lo=1, integer=True, what="genes revealed per cell")
    for share in detected_shares:
        check_range("detected_share", share, lo=0, hi=1, what="share of K from non-zero genes")
    cells = read_corpus_dataset(corpus, dataset)
    labels = cells.column(label_column)
    x = sp.csr_matrix(preprocess(sp.csr_matrix(cells.counts, dtype=np.float32), "libnorm_log1p", 1e4))
    x.eliminate_zeros()
    x.sort_indices()
    n, g = x.shape
    params = CellTypeParams(resolutions=())

    def score(m: sp.csr_matrix) -> float:
        z = PCA(min(n_components, n - 1, g), random_state=seed).fit_transform(m.toarray())
        return float(evaluate_celltypes(z, labels, params)["knn_accuracy"])

    table = [{"reveal": g, "detected_share": float("nan"),
              "nonzero_revealed": float(np.median(np.diff(x.indptr))), "knn_accuracy": score(x)}]
    every = np.arange(g)
    detected = np.split(x.indices, x.indptr[1:-1])  # each cell's non-zero genes
    for k in tqdm(reveals, desc="reveal"):
        for share in detected_shares:
            rng = np.random.default_rng(seed)
            chosen = [reveal_genes(every, k, rng, None, det, share) for det in detected]
            rows = np.repeat(np.arange(n), [c.size for c in chosen])
            cols = np.concatenate(chosen)
            mask = sp.csr_matrix((np.ones(cols.size, dtype=np.float32), (rows, cols)), shape=(n, g))
            seen = x.multiply(mask).tocsr()
            seen.eliminate_zeros()
            table.append({"reveal": k, "detected_share": share,
                          "nonzero_revealed": float(np.median(np.diff(seen.indptr))), "knn_accuracy": score(seen)})
    return pd.DataFrame(table)


def stream_mix(corpus: str | Path, dataset: str, n_batches: int = 1000, batch_size: int = 32, seed: int = 0,
               settings: tuple[tuple[str, int, float], ...] = (("one shard at a time, T = 1", 1, 1.0),
                                                                ("16 shards pooled, T = 1", 16, 1.0),
                                                                ("16 shards pooled, T = 0.5", 16, 0.5))
               ) -> pd.DataFrame:
    """Composition of the first ``n_batches`` training batches the stream draws (rows only, no shard is
    read) under each (label, mix_shards, temperature): share of ``dataset``'s samples, batches made
    >= 98% of it, batches without it, and the median number of datasets per batch."""
    import itertools

    from txfm.corpus import Corpus
    from txfm.dataset import BatchSpec, CorpusStream, row_datasets

    c = Corpus(corpus)
    names = [d.name for d in c.datasets]
    if dataset not in names:
        raise ValueError(f"{corpus}: no dataset {dataset!r} (has {names}); pass one of them with --dataset")
    target, rd = names.index(dataset), row_datasets(c)
    train_rows = ~c.split("stratified", 0.05, seed)
    out = []
    for label, mix, temperature in settings:
        s = CorpusStream(str(corpus), batch_size, BatchSpec(), train_rows, seed=seed, mix_shards=mix,
                         temperature=temperature)
        rows = np.array([r for _, r, _ in itertools.islice(s._rows(c, 0, 1, 0), batch_size * n_batches)])
        ds = rd[rows].reshape(n_batches, batch_size)
        share = (ds == target).mean(1)
        out.append({"stream": label, "share": float(share.mean()), "batches_ge_98pct": int((share >= 0.98).sum()),
                    "batches_without": int((share == 0).sum()),
                    "median_datasets_per_batch": float(np.median([len(set(b)) for b in ds]))})
    return pd.DataFrame(out)
