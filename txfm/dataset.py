"""Streaming batches from a Corpus: rows mixed across shards, reweighted by dataset,
split across DDP ranks and DataLoader workers, preprocessed and masked.

Mixing: corpora are written in dataset order, so a stream that cuts batches from one
shard at a time feeds the model one dataset for hundreds of steps (docs/training-recipe.md,
experiment 1). Each epoch, shards are permuted and taken in groups of ``mix_shards``; the
rows of a group are pooled, reweighted and shuffled together, so every batch mixes the
datasets of that group (all of them when the corpus has at most ``mix_shards`` shards).
Memory: a reader holds the shards of one group.

Dataset weights: dataset d is drawn with probability proportional to n_d ** temperature
(1 = as stored, 0 = every dataset equally often); rows of down-weighted datasets are
subsampled and rows of up-weighted ones repeated, so an epoch keeps about N rows.

Determinism: the data order is a function of (seed, epoch) and each sample's reveal set a
function of (seed, epoch, its position in the epoch), so a stream can be resumed at any batch
by skipping (counting rows, without reading the skipped shards).

Host and device: the stream yields ``sparse_batch``es (the batch's preprocessed CSR values, dataset
ids and the encoder's inputs: a few MB); the trainer copies them to its device and ``densify`` builds
the dense target and the measured and revealed masks there. A dense (B, G) batch never crosses a
process or the host-device link (at B = 256 and G = 48,573 that was ~78 MB a batch).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .corpus import Corpus
from .feed import densify
from .masking import reveal_genes
from .preprocessing import preprocess


@dataclass(frozen=True)
class BatchSpec:
    """How samples become a batch."""

    reveal: int = 2048  # K genes shown to the encoder
    preprocessing: str = "libnorm_log1p"
    library_size: float = 1e5
    gene_weights: np.ndarray | None = None  # (G,) reveal sampling weights (tau != 0), else uniform
    library_norm: str = "fixed"  # "fixed": every sample to L; "measured": to L * (measured genes / G)
    reveal_detected: float = 0.0  # share of K drawn first from the sample's detected (non-zero) genes
    reveal_fraction: float = 0.0  # > 0: a sample reveals K_i = min(K, ceil(f x its detected genes)) genes, not K

    def sample_k(self, n_detected: int) -> int:
        """Genes revealed to a sample with ``n_detected`` non-zero measured genes: K, or with
        ``reveal_fraction`` f > 0 a share of its expressed genes, min(K, max(1, ceil(f x n_detected)))."""
        if self.reveal_fraction <= 0:
            return self.reveal
        return min(self.reveal, max(1, math.ceil(self.reveal_fraction * n_detected)))


def encoder_inputs(x: sp.csr_matrix, measured: np.ndarray | list[np.ndarray], rngs: list[np.random.Generator],
                   spec: BatchSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the encoder sees: the revealed genes of each row and their preprocessed values.

    x: (B, G) preprocessed values (CSR, sorted indices); measured: (B, G) bool, (1, G) shared by every
    row, or a list of B sorted index arrays (the genes each row's dataset measures);
    rngs: one generator per row. Returns gene_idx (B, Kb) int64, values (B, Kb) float32 and
    pad_mask (B, Kb) bool (True = padding), Kb = the most genes revealed in a row (<= K).
    Works on the sparse rows only, so a forward-only pass never builds the dense (B, G) target.
    """
    b = x.shape[0]
    if isinstance(measured, np.ndarray):
        shared = np.flatnonzero(measured[0]) if measured.shape[0] == 1 else None
        measured = [shared if shared is not None else np.flatnonzero(measured[i]) for i in range(b)]
    chosen = []
    for i in range(b):
        m = measured[i]
        w = None if spec.gene_weights is None else spec.gene_weights[m]
        det = None
        if spec.reveal_detected > 0 or spec.reveal_fraction > 0:
            cols = x.indices[x.indptr[i]:x.indptr[i + 1]]
            det = np.intersect1d(cols[x.data[x.indptr[i]:x.indptr[i + 1]] != 0], m, assume_unique=True)
        k = spec.sample_k(0 if det is None else det.size)
        chosen.append(reveal_genes(m, k, rngs[i], w, det, spec.reveal_detected))
    kb = max(1, max(len(c) for c in chosen))
    gene_idx = np.zeros((b, kb), dtype=np.int64)
    values = np.zeros((b, kb), dtype=np.float32)
    pad = np.ones((b, kb), dtype=bool)
    for i, c in enumerate(chosen):
        gene_idx[i, :len(c)] = c
        pad[i, :len(c)] = False
        cols, data = x.indices[x.indptr[i]:x.indptr[i + 1]], x.data[x.indptr[i]:x.indptr[i + 1]]
        pos = np.searchsorted(cols, c)                   # CSR columns are sorted (corpus invariant)
        hit = (pos < cols.size) & (cols[np.minimum(pos, max(cols.size - 1, 0))] == c) if cols.size else \
            np.zeros(len(c), dtype=bool)
        values[i, :len(c)][hit] = data[pos[hit]]
    return gene_idx, values, pad


class MeasuredGenes:
    """The genes each dataset measures, in the forms a batch needs: a (D, G) bool matrix, one sorted
    index array per dataset (the reveal draws from it) and the count per dataset (library targets)."""

    def __init__(self, measured_by_dataset: np.ndarray):
        self.matrix = np.asarray(measured_by_dataset, dtype=bool)
        self.index = [np.flatnonzero(row) for row in self.matrix]
        self.count = self.matrix.sum(axis=1)

    @property
    def n_genes(self) -> int:
        return self.matrix.shape[1]


def sparse_batch(counts: sp.csr_matrix, datasets: np.ndarray, rngs: list[np.random.Generator],
                 measured: MeasuredGenes, spec: BatchSpec) -> dict[str, torch.Tensor]:
    """The host side of one training batch: what crosses to the device (a few MB, never (B, G)).

    counts: (B, G) raw counts (CSR); datasets: (B,) dataset index per row; rngs: one generator per row.
    Returns the preprocessed values as CSR (``indptr`` [B+1] int64, ``indices`` [nnz] int32, ``data``
    [nnz] float32), ``datasets`` [B] int64, and the encoder's inputs (``encoder_inputs``): ``gene_idx``
    [B, Kb] int64, ``values`` [B, Kb] float32 and, only when some row has fewer than Kb revealed genes,
    ``pad_mask`` [B, Kb] bool. Its absence tells the model, without a device sync, that attention needs no
    mask (so the flash kernel is eligible). ``densify`` turns it into the dense batch on the device.
    """
    datasets = np.asarray(datasets, dtype=np.int64)
    x = sp.csr_matrix(preprocess(counts, spec.preprocessing,
                                 _library_target(measured.count[datasets], measured.n_genes, spec)))
    x.sort_indices()
    gene_idx, values, pad = encoder_inputs(x, [measured.index[d] for d in datasets], rngs, spec)
    out = {"indptr": torch.from_numpy(x.indptr.astype(np.int64)), "indices": torch.from_numpy(x.indices.astype(np.int32)),
           "data": torch.from_numpy(np.ascontiguousarray(x.data, dtype=np.float32)),
           "datasets": torch.from_numpy(datasets), "gene_idx": torch.from_numpy(gene_idx),
           "values": torch.from_numpy(values)}
    if pad.any():
        out["pad_mask"] = torch.from_numpy(pad)
    return out


def collate(counts: sp.csr_matrix, datasets: np.ndarray, rngs: list[np.random.Generator],
            measured_by_dataset: np.ndarray, spec: BatchSpec) -> dict[str, torch.Tensor]:
    """One dense training batch on the host: ``densify(sparse_batch(...))``, with ``pad_mask`` always
    present (all False when no row is padded). For tests and small callers; the trainer ships the sparse
    batch and densifies it on its device."""
    measured = MeasuredGenes(measured_by_dataset)
    batch = densify(sparse_batch(counts, datasets, rngs, measured, spec), torch.from_numpy(measured.matrix))
    batch.setdefault("pad_mask", torch.zeros(batch["gene_idx"].shape, dtype=torch.bool))
    return batch


def library_targets(measured: np.ndarray, spec: BatchSpec) -> float | np.ndarray:
    """Library-size target per sample: L, or L * (genes measured / vocabulary size) with
    ``library_norm="measured"``, so a 300-gene panel is not scaled as if it held a whole
    transcriptome (its genes would get values ~50x those of a full-transcriptome sample).

    measured: (B, G) bool. Returns a float or (B,) float64.
    """
    return _library_target(measured.sum(axis=1), measured.shape[1], spec)


def _library_target(n_measured: np.ndarray, n_genes: int, spec: BatchSpec) -> float | np.ndarray:
    """library_targets from the number of genes each row measures (B,) and the vocabulary size."""
    if spec.library_norm == "fixed":
        return spec.library_size
    if spec.library_norm == "measured":
        return spec.library_size * n_measured / n_genes
    raise ValueError(f"unknown library_norm {spec.library_norm!r}; use 'fixed' or 'measured'")


VALIDATION_EPOCH = 0xFFFF  # a fixed pseudo-epoch: validation masks never change


def sample_rng(seed: int, epoch: int, row: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, int(row)])


def dataset_multiplicity(n_per_dataset: np.ndarray, temperature: float) -> np.ndarray:
    """(D,) expected draws per row of each dataset so that dataset d makes up a share
    n_d**T / sum(n**T) of an epoch of sum(n) rows (T=1: every row once)."""
    n = np.asarray(n_per_dataset, dtype=np.float64)
    if temperature == 1.0:
        return (n > 0).astype(np.float64)
    w = np.where(n > 0, n, 0.0) ** temperature
    w[n == 0] = 0.0
    share = w / w.sum()
    return np.divide(share * n.sum(), n, out=np.zeros_like(n), where=n > 0)


class CorpusStream(IterableDataset):
    """Infinite stream of batches of ``batch_size`` training samples for one DDP rank.

    Each epoch the shards are permuted and grouped ``mix_shards`` at a time; a group's rows are
    reweighted by dataset (``temperature``) and shuffled together, and slot s of the
    ranks x workers slots takes every n-th of them. ``start_batch`` skips the batches this rank
    already consumed (the DataLoader takes batches from its workers round-robin).
    """

    def __init__(self, corpus_path: str, batch_size: int, spec: BatchSpec, rows: np.ndarray | None = None,
                 seed: int = 0, rank: int = 0, world: int = 1, start_batch: int = 0,
                 mix_shards: int = 16, temperature: float = 1.0):
        self.path = str(corpus_path)
        self.batch_size = batch_size
        self.spec = spec
        corpus = Corpus(self.path)
        self.include = np.ones(corpus.n_samples, dtype=bool) if rows is None else rows.astype(bool)
        if not self.include.any():
            raise ValueError(f"{self.path}: no samples left for training after the validation split")
        if mix_shards < 0:
            raise ValueError(f"mix_shards must be >= 0 (0 = all shards), got {mix_shards}")
        if not 0.0 <= temperature <= 1.0:
            raise ValueError(f"dataset temperature must lie in [0, 1], got {temperature}")
        self.seed, self.rank, self.world, self.start_batch = seed, rank, world, start_batch
        self.mix_shards, self.temperature = mix_shards, temperature
        self.row_dataset = row_datasets(corpus)
        n_d = np.bincount(self.row_dataset[self.include], minlength=len(corpus.datasets))
        self.multiplicity = dataset_multiplicity(n_d, temperature)

    def _groups(self, corpus: Corpus, epoch: int) -> list[np.ndarray]:
        """This epoch's shard groups (shard indices), in reading order."""
        perm = np.random.default_rng([self.seed, epoch, 0x5EED]).permutation(len(corpus.shards))
        size = self.mix_shards or len(perm)
        return [perm[i:i + size] for i in range(0, len(perm), size)]

    def _group_rows(self, corpus: Corpus, shards: np.ndarray, epoch: int, group: int) -> np.ndarray:
        """Global rows of one shard group in this epoch's order, repeated or dropped by dataset weight."""
        off = corpus.shard_offsets()
        rows = np.concatenate([np.arange(off[s], off[s + 1]) for s in np.sort(shards)])
        rows = rows[self.include[rows]]
        rng = np.random.default_rng([self.seed, epoch, 0xDA7A, group])
        if self.temperature != 1.0:
            m = self.multiplicity[self.row_dataset[rows]]
            reps = np.floor(m).astype(np.int64) + (rng.random(rows.size) < m - np.floor(m))
            rows = np.repeat(rows, reps)
        return rows[rng.permutation(rows.size)]

    def _rows(self, corpus: Corpus, slot: int, nslots: int, skip: int) -> Iterator[tuple[int, int, int]]:
        """Yield (epoch, global row, draw key) forever, skipping the first ``skip`` rows of this slot.

        The draw key (group, position in the group) is unique within an epoch, so a repeated row gets
        a fresh reveal set each time it is drawn."""
        epoch = 0
        while True:
            total = 0
            for g, shards in enumerate(self._groups(corpus, epoch)):
                rows = self._group_rows(corpus, shards, epoch, g)
                pos = np.arange(slot, rows.size, nslots)
                total += pos.size
                if skip >= pos.size:
                    skip -= pos.size
                    continue
                for p in pos[skip:]:
                    yield epoch, int(rows[p]), (g << 32) | int(p)
                skip = 0
            if total == 0:
                raise ValueError(f"{self.path}: data slot {slot}/{nslots} has no training rows; "
                                 f"use fewer DataLoader workers or ranks")
            epoch += 1

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        w, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        # The DataLoader returns its j-th batch from worker j % nw; batch j is this rank's batch
        # start_batch + j, which the uninterrupted stream made in the role (start_batch + j) % nw.
        role = (w + self.start_batch) % nw
        slot, nslots = self.rank * nw + role, self.world * nw
        done = len(range(role, self.start_batch, nw))  # batches this role made before start_batch
        corpus = Corpus(self.path)
        measured = MeasuredGenes(corpus.measured_matrix())
        cache: dict[int, tuple[sp.csr_matrix, np.ndarray]] = {}
        off = corpus.shard_offsets()
        buf: list[tuple[int, int, int]] = []
        for item in self._rows(corpus, slot, nslots, done * self.batch_size):
            buf.append(item)
            if len(buf) < self.batch_size:
                continue
            rows = np.array([r for _, r, _ in buf])
            shards = np.searchsorted(off, rows, side="right") - 1
            needed = {int(s) for s in np.unique(shards)}
            for s in [s for s in cache if s not in needed]:  # bounded memory: drop shards no longer used
                del cache[s]
            for s in needed - cache.keys():
                cache[s] = corpus.load_shard(s)
            x, d = _gather_rows(cache, shards, rows - off[shards])
            rngs = [sample_rng(self.seed, e, k) for e, _, k in buf]
            yield sparse_batch(x, d, rngs, measured, self.spec)
            buf = []


def _gather_rows(cache: dict[int, tuple[sp.csr_matrix, np.ndarray]], shards: np.ndarray,
                 local: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """Rows ``local[i]`` of shard ``shards[i]``, in that order: one fancy index per shard (not one
    slice per row), then the stacked rows put back in batch order."""
    parts, dparts, order = [], [], []
    for s in np.unique(shards):
        sel = np.flatnonzero(shards == s)
        x, d = cache[int(s)]
        parts.append(x[local[sel]])
        dparts.append(d[local[sel]])
        order.append(sel)
    back = np.argsort(np.concatenate(order), kind="stable")
    return sp.vstack(parts, format="csr")[back], np.concatenate(dparts)[back]


def row_datasets(corpus: Corpus) -> np.ndarray:
    """(N,) dataset index (position in the manifest) of every corpus row, from obs (no shard read)."""
    index = {d.name: i for i, d in enumerate(corpus.datasets)}
    names = corpus.obs["dataset"].astype(str).to_numpy()
    try:
        return np.fromiter((index[n] for n in names), dtype=np.int64, count=names.size)
    except KeyError as e:
        raise ValueError(f"{corpus.path}: obs.parquet names dataset {e.args[0]!r}, which the manifest "
                         "does not list; the corpus is inconsistent, rebuild it") from e


def validation_batches(corpus: Corpus, rows: np.ndarray, batch_size: int, spec: BatchSpec, n_batches: int,
                       seed: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """Fixed, deterministic validation batches (``sparse_batch``) from the held-out ``rows`` (bool mask or
    indices)."""
    idx = np.flatnonzero(rows) if rows.dtype == bool else np.asarray(rows)
    if idx.size == 0:
        return
    idx = np.random.default_rng([seed, 0xFA1]).permutation(idx)[: n_batches * batch_size]
    measured = MeasuredGenes(corpus.measured_matrix())
    for i in range(0, idx.size, batch_size):
        sel = np.sort(idx[i:i + batch_size])
        x, d = corpus.read_rows(sel)
        yield sparse_batch(x, d, [sample_rng(seed, VALIDATION_EPOCH, r) for r in sel], measured, spec)


def detection_counts(corpus: Corpus, rows: np.ndarray | None = None) -> np.ndarray:
    """(G,) number of (included) samples in which each gene has a non-zero count."""
    counts = np.zeros(corpus.n_genes, dtype=np.int64)
    for first, x, _ in corpus.iter_shards():
        if rows is not None:
            x = x[rows[first:first + x.shape[0]]]
        counts += np.bincount(x.indices, minlength=corpus.n_genes)
    return counts


def gene_statistics(corpus: Corpus, rows: np.ndarray | None = None, spec: BatchSpec | None = None,
                    min_fraction: float = 0.01, min_samples: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the corpus: (support (G,) int32, log_mean (G,) float32).

    support: number of datasets in which a gene is *well measured*, i.e. detected (count > 0) in at
    least max(min_samples, min_fraction * n_d) of the dataset's (included) samples. It defines the
    honest recall population (genes with support >= 2, precompute.bundle.recall): a gene seen in one
    dataset only, or in a handful of cells, keeps a vector the model barely trained.

    log_mean: log(mean(1 + x)) of each gene's preprocessed value x (``spec``; default BatchSpec())
    over the samples whose dataset measures it -- the constant prediction that minimises the
    Poisson loss, used to initialise the decoder's output bias (0 for unmeasured genes).
    """
    spec = spec or BatchSpec()
    n_d, g = len(corpus.datasets), corpus.n_genes
    measured = corpus.measured_matrix()
    detected = np.zeros((n_d, g), dtype=np.int64)
    n_samples = np.zeros(n_d, dtype=np.int64)
    sum_expm1 = np.zeros(g, dtype=np.float64)      # sum of exp(t) - 1 = normalised value, over samples
    n_measuring = np.zeros(g, dtype=np.float64)    # samples whose dataset measures the gene
    for first, x, d in corpus.iter_shards():
        if rows is not None:
            keep = rows[first:first + x.shape[0]]
            x, d = x[keep], d[keep]
        for k in np.unique(d):
            sub = x[d == k]
            n_samples[k] += sub.shape[0]
            detected[k] += np.bincount(sub.indices, minlength=g)
            t = preprocess(sub, spec.preprocessing, library_targets(measured[np.full(sub.shape[0], k)], spec))
            vals = np.expm1(t.data.astype(np.float64))
            sum_expm1 += np.bincount(t.indices, weights=vals, minlength=g)
            n_measuring += sub.shape[0] * measured[k]
    need = np.maximum(min_samples, np.ceil(min_fraction * n_samples))[:, None]
    support = ((detected >= need) & (n_samples[:, None] > 0)).sum(axis=0).astype(np.int32)
    log_mean = np.log1p(np.divide(sum_expm1, n_measuring, out=np.zeros(g), where=n_measuring > 0))
    return support, log_mean.astype(np.float32)


def gene_support(corpus: Corpus, rows: np.ndarray | None = None) -> np.ndarray:
    """(G,) datasets measuring each gene well (see gene_statistics)."""
    return gene_statistics(corpus, rows)[0]
