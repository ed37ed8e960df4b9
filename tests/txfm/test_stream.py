"""The streaming reader: every row once per epoch across ranks x workers, shuffled, exact skipping."""
import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from txfm.corpus import Corpus
from txfm.dataset import BatchSpec, CorpusStream


def _epoch_rows(stream, corpus, slot, nslots):
    """Rows of epoch 0 for one slot."""
    out = []
    for epoch, row in stream._rows(corpus, slot, nslots, 0):
        if epoch > 0:
            break
        out.append(row)
    return out


@pytest.mark.parametrize("nslots", [1, 2, 3, 4])  # 3 shards: 4 slots exercise row striping
def test_slots_partition_the_training_rows(tiny_corpus, nslots):
    corpus = Corpus(tiny_corpus)
    include = np.ones(corpus.n_samples, dtype=bool)
    include[::7] = False  # a held-out split
    stream = CorpusStream(tiny_corpus, 4, BatchSpec(reveal=8), include, seed=3)
    per_slot = [_epoch_rows(stream, corpus, s, nslots) for s in range(nslots)]
    rows = list(itertools.chain(*per_slot))
    assert sorted(rows) == np.flatnonzero(include).tolist()  # each training row exactly once
    assert rows != sorted(rows)  # shuffled
    nxt = [r for e, r in itertools.islice(stream._rows(corpus, 0, 1, 0), 2 * len(rows)) if e == 1]
    assert nxt != per_slot[0] or nslots > 1  # a new order next epoch


def _batches(stream, n, workers=0):
    loader = DataLoader(stream, batch_size=None, num_workers=workers, generator=torch.Generator().manual_seed(0))
    return [b for b, _ in zip(loader, range(n))]


@pytest.mark.parametrize("workers", [0, 2])
def test_start_batch_resumes_the_exact_stream(tiny_corpus, workers):
    spec = BatchSpec(reveal=8)
    full = _batches(CorpusStream(tiny_corpus, 8, spec, seed=1), 20, workers)  # > 1 epoch of 96 rows
    tail = _batches(CorpusStream(tiny_corpus, 8, spec, seed=1, start_batch=13), 7, workers)
    for a, b in zip(full[13:], tail):
        for k in a:
            assert torch.equal(a[k], b[k]), k
