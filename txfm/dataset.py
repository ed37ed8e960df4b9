"""Streaming batches from a Corpus: shuffled by shard and within shard, split
across DDP ranks and DataLoader workers, preprocessed and masked.

Determinism: the data order is a function of (seed, epoch) and each sample's
reveal set a function of (seed, epoch, global row), so a stream can be resumed
at any batch by skipping (counting rows, without reading the skipped shards).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import scipy.sparse as sp
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .corpus import Corpus
from .masking import reveal_genes
from .preprocessing import preprocess


@dataclass(frozen=True)
class BatchSpec:
    """How samples become a batch."""

    reveal: int = 2048  # K genes shown to the encoder
    preprocessing: str = "libnorm_log1p"
    library_size: float = 1e5
    gene_weights: np.ndarray | None = None  # (G,) reveal sampling weights (tau != 0), else uniform


def collate(counts: sp.csr_matrix, datasets: np.ndarray, rngs: list[np.random.Generator],
            measured_by_dataset: np.ndarray, spec: BatchSpec) -> dict[str, torch.Tensor]:
    """Build one batch.

    counts: (B, G) raw counts; datasets: (B,) dataset index per row; rngs: one generator per row;
    measured_by_dataset: (n_datasets, G) bool.
    Returns gene_idx [B, Kb] long, values [B, Kb] float, pad_mask [B, Kb] bool (True = padding),
    target [B, G] float (preprocessed), measured [B, G] bool, revealed [B, G] bool, where
    Kb = the largest number of genes revealed in this batch (<= K).
    """
    target = np.asarray(preprocess(counts, spec.preprocessing, spec.library_size).todense(), dtype=np.float32)
    measured = measured_by_dataset[datasets]  # [B, G]
    b, g = target.shape
    chosen = []
    for i in range(b):
        m = np.flatnonzero(measured[i])
        w = None if spec.gene_weights is None else spec.gene_weights[m]
        chosen.append(reveal_genes(m, spec.reveal, rngs[i], w))
    kb = max(1, max(len(c) for c in chosen))
    gene_idx = np.zeros((b, kb), dtype=np.int64)
    pad = np.ones((b, kb), dtype=bool)
    revealed = np.zeros((b, g), dtype=bool)
    for i, c in enumerate(chosen):
        gene_idx[i, :len(c)] = c
        pad[i, :len(c)] = False
        revealed[i, c] = True
    values = np.take_along_axis(target, gene_idx, axis=1) * ~pad
    return {
        "gene_idx": torch.from_numpy(gene_idx), "values": torch.from_numpy(values.astype(np.float32)),
        "pad_mask": torch.from_numpy(pad), "target": torch.from_numpy(target),
        "measured": torch.from_numpy(measured.copy()), "revealed": torch.from_numpy(revealed),
    }


VALIDATION_EPOCH = 0xFFFF  # a fixed pseudo-epoch: validation masks never change


def sample_rng(seed: int, epoch: int, row: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, int(row)])


class CorpusStream(IterableDataset):
    """Infinite stream of batches of ``batch_size`` training samples for one DDP rank.

    Shards are permuted per epoch; with at least as many shards as (ranks x workers)
    each slot reads its own shards, otherwise every slot reads all shards and keeps
    every n-th row. ``start_batch`` skips the batches this rank already consumed
    (the DataLoader takes batches from its workers round-robin).
    """

    def __init__(self, corpus_path: str, batch_size: int, spec: BatchSpec, rows: np.ndarray | None = None,
                 seed: int = 0, rank: int = 0, world: int = 1, start_batch: int = 0):
        self.path = str(corpus_path)
        self.batch_size = batch_size
        self.spec = spec
        corpus = Corpus(self.path)
        self.include = np.ones(corpus.n_samples, dtype=bool) if rows is None else rows.astype(bool)
        if not self.include.any():
            raise ValueError(f"{self.path}: no samples left for training after the validation split")
        self.seed, self.rank, self.world, self.start_batch = seed, rank, world, start_batch

    def _plan(self, corpus: Corpus, epoch: int, slot: int, nslots: int) -> list[tuple[int, int, int]]:
        """[(shard, offset, stride)] this slot reads in ``epoch``."""
        perm = np.random.default_rng([self.seed, epoch, 0x5EED]).permutation(len(corpus.shards))
        if len(perm) >= nslots:
            return [(int(s), 0, 1) for s in perm[slot::nslots]]
        return [(int(s), slot, nslots) for s in perm]

    def _shard_rows(self, corpus: Corpus, shard: int, epoch: int) -> np.ndarray:
        """Included global rows of ``shard`` in this epoch's within-shard order."""
        off = corpus.shard_offsets()
        rows = np.arange(off[shard], off[shard + 1])
        rows = rows[self.include[rows]]
        return rows[np.random.default_rng([self.seed, epoch, shard]).permutation(rows.size)]

    def _rows(self, corpus: Corpus, slot: int, nslots: int, skip: int) -> Iterator[tuple[int, int]]:
        """Yield (epoch, global row) forever, skipping the first ``skip`` rows of this slot's stream."""
        epoch = 0
        while True:
            plan = self._plan(corpus, epoch, slot, nslots)
            total = 0
            for shard, offset, stride in plan:
                rows = self._shard_rows(corpus, shard, epoch)[offset::stride]
                total += rows.size
                if skip >= rows.size:
                    skip -= rows.size
                    continue
                for r in rows[skip:]:
                    yield epoch, int(r)
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
        measured = corpus.measured_matrix()
        cache: dict[int, tuple[sp.csr_matrix, np.ndarray]] = {}
        off = corpus.shard_offsets()
        buf: list[tuple[int, int]] = []
        for epoch, row in self._rows(corpus, slot, nslots, done * self.batch_size):
            buf.append((epoch, row))
            if len(buf) < self.batch_size:
                continue
            rows = np.array([r for _, r in buf])
            shards = np.searchsorted(off, rows, side="right") - 1
            needed = {int(s) for s in np.unique(shards)}
            for s in [s for s in cache if s not in needed]:  # bounded memory: drop shards no longer used
                del cache[s]
            for s in needed - cache.keys():
                cache[s] = corpus.load_shard(s)
            x = sp.vstack([cache[int(s)][0][r - off[s]] for s, r in zip(shards, rows)], format="csr")
            d = np.array([cache[int(s)][1][r - off[s]] for s, r in zip(shards, rows)])
            rngs = [sample_rng(self.seed, e, r) for e, r in buf]
            yield collate(x, d, rngs, measured, self.spec)
            buf = []


def validation_batches(corpus: Corpus, rows: np.ndarray, batch_size: int, spec: BatchSpec, n_batches: int,
                       seed: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """Fixed, deterministic validation batches from the held-out ``rows`` (bool mask or indices)."""
    idx = np.flatnonzero(rows) if rows.dtype == bool else np.asarray(rows)
    if idx.size == 0:
        return
    idx = np.random.default_rng([seed, 0xFA1]).permutation(idx)[: n_batches * batch_size]
    measured = corpus.measured_matrix()
    for i in range(0, idx.size, batch_size):
        sel = np.sort(idx[i:i + batch_size])
        x, d = corpus.read_rows(sel)
        yield collate(x, d, [sample_rng(seed, VALIDATION_EPOCH, r) for r in sel], measured, spec)


def detection_counts(corpus: Corpus, rows: np.ndarray | None = None) -> np.ndarray:
    """(G,) number of (included) samples in which each gene has a non-zero count."""
    counts = np.zeros(corpus.n_genes, dtype=np.int64)
    for first, x, _ in corpus.iter_shards():
        if rows is not None:
            x = x[rows[first:first + x.shape[0]]]
        counts += np.bincount(x.indices, minlength=corpus.n_genes)
    return counts
