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
    for epoch, row, _ in stream._rows(corpus, slot, nslots, 0):
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
    nxt = [r for e, r, _ in itertools.islice(stream._rows(corpus, 0, 1, 0), 2 * len(rows)) if e == 1]
    assert nxt != per_slot[0] or nslots > 1  # a new order next epoch


def _batches(stream, n, workers=0):
    loader = DataLoader(stream, batch_size=None, num_workers=workers, generator=torch.Generator().manual_seed(0))
    return [b for b, _ in zip(loader, range(n))]


@pytest.mark.parametrize("workers,temperature,mix", [(0, 1.0, 16), (2, 1.0, 16), (2, 0.3, 2), (0, 0.0, 1)])
def test_start_batch_resumes_the_exact_stream(tiny_corpus, workers, temperature, mix):
    spec = BatchSpec(reveal=8)
    kw = dict(seed=1, temperature=temperature, mix_shards=mix)
    full = _batches(CorpusStream(tiny_corpus, 8, spec, **kw), 20, workers)  # > 1 epoch of 96 rows
    tail = _batches(CorpusStream(tiny_corpus, 8, spec, start_batch=13, **kw), 7, workers)
    for a, b in zip(full[13:], tail):
        for k in a:
            assert torch.equal(a[k], b[k]), k


def test_batches_mix_datasets_across_shards(tiny_corpus):
    """Shards hold one dataset each (a, a+b, b): pooled shards give mixed batches, one shard at a time does not."""
    corpus = Corpus(tiny_corpus)
    ds = np.array([0] * 48 + [1] * 48)

    def mixed_fraction(mix):
        stream = CorpusStream(tiny_corpus, 8, BatchSpec(reveal=8), seed=0, mix_shards=mix)
        rows = [r for _, r in zip(range(96 * 5), (r for _, r, _ in stream._rows(corpus, 0, 1, 0)))]
        batches = np.array(rows).reshape(-1, 8)
        return np.mean([len(set(ds[b])) == 2 for b in batches])

    assert mixed_fraction(0) > 0.9
    assert mixed_fraction(1) < 0.5


def test_dataset_multiplicity_by_hand():
    from txfm.dataset import dataset_multiplicity
    # n = (100, 25), T = 0.5: weights 10 and 5 -> shares 2/3 and 1/3 of 125 draws
    np.testing.assert_allclose(dataset_multiplicity(np.array([100, 25]), 0.5), [125 * 2 / 3 / 100, 125 / 3 / 25])
    np.testing.assert_allclose(dataset_multiplicity(np.array([100, 25, 0]), 1.0), [1, 1, 0])
    np.testing.assert_allclose(dataset_multiplicity(np.array([100, 25]), 0.0), [62.5 / 100, 62.5 / 25])


def test_temperature_zero_draws_datasets_equally(tiny_corpus):
    corpus = Corpus(tiny_corpus)
    include = np.ones(96, dtype=bool)
    include[60:] = False  # dataset a: 48 rows, b: 12 rows
    stream = CorpusStream(tiny_corpus, 4, BatchSpec(reveal=8), include, seed=0, temperature=0.0)
    rows = [r for e, r, _ in itertools.islice(stream._rows(corpus, 0, 1, 0), 60 * 30) if e < 25]
    share_b = np.mean(np.array(rows) >= 48)
    assert abs(share_b - 0.5) < 0.05, share_b
    assert set(rows) <= set(np.flatnonzero(include))


def test_library_targets_scale_with_measured_genes():
    from txfm.dataset import library_targets
    measured = np.zeros((2, 10), dtype=bool)
    measured[0, :] = True
    measured[1, :2] = True
    assert library_targets(measured, BatchSpec(library_size=1e4)) == 1e4
    np.testing.assert_allclose(library_targets(measured, BatchSpec(library_size=1e4, library_norm="measured")),
                               [1e4, 2e3])


def test_stratified_split_holds_out_every_dataset(tiny_corpus):
    corpus = Corpus(tiny_corpus)
    val = corpus.split("stratified", 0.25, seed=0)
    ds = corpus.obs["dataset"].to_numpy()
    assert val[ds == "a"].sum() == 12 and val[ds == "b"].sum() == 12
    assert (corpus.split("stratified", 0.25, seed=0) == val).all()


def test_forward_only_inputs_equal_the_training_batch(tiny_corpus):
    """encode_counts' sparse lookup gives exactly the genes and values collate gives (same rngs)."""
    import scipy.sparse as sp
    from txfm.dataset import collate, encoder_inputs, library_targets, sample_rng
    from txfm.preprocessing import preprocess
    corpus = Corpus(tiny_corpus)
    x, d = corpus.read_rows(np.arange(40, 60))                   # both datasets
    measured = corpus.measured_matrix()
    spec = BatchSpec(reveal=8, library_norm="measured")
    batch = collate(x, d, [sample_rng(0, 0, r) for r in range(20)], measured, spec)
    z = sp.csr_matrix(preprocess(x, spec.preprocessing, library_targets(measured[d], spec)))
    z.sort_indices()
    gene_idx, values, pad = encoder_inputs(z, measured[d], [sample_rng(0, 0, r) for r in range(20)], spec)
    assert np.array_equal(gene_idx, batch["gene_idx"].numpy()) and np.array_equal(pad, batch["pad_mask"].numpy())
    assert np.array_equal(values, batch["values"].numpy())
    assert (values[~pad] > 0).any() and (values[~pad] == 0).any()  # both detected and zero genes revealed
