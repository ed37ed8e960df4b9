"""Batches built on the device (txfm.feed): the same batches as the host-dense collate of before, a
fraction of its bytes, and a FLOP count checked by hand and by torch's own counter."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from txfm.bench import synthetic_batch
from txfm.config import ModelConfig
from txfm.corpus import Corpus
from txfm.dataset import BatchSpec, CorpusStream, MeasuredGenes, encoder_inputs, library_targets, sample_rng, \
    sparse_batch
from txfm.feed import DeviceFeed, densify
from txfm.losses import _masked_mean
from txfm.masking import frequency_weights
from txfm.model import TxFM, flops_per_sample
from txfm.preprocessing import preprocess


def reference_collate(counts, datasets, rngs, measured_by_dataset, spec):
    """The host-dense batch as txfm.dataset.collate built it before batches were densified on the device
    (commit 23d5c5a), kept here as the independent reference: dense numpy target and masks."""
    measured = measured_by_dataset[datasets]
    x = sp.csr_matrix(preprocess(counts, spec.preprocessing, library_targets(measured, spec)))
    x.sort_indices()
    gene_idx, values, pad = encoder_inputs(x, measured, rngs, spec)
    target = np.asarray(x.todense(), dtype=np.float32)
    revealed = np.zeros(target.shape, dtype=bool)
    rows = np.repeat(np.arange(gene_idx.shape[0]), gene_idx.shape[1])
    keep = ~pad.ravel()
    revealed[rows[keep], gene_idx.ravel()[keep]] = True
    return {"gene_idx": gene_idx, "values": values, "pad_mask": pad, "target": target,
            "measured": measured.copy(), "revealed": revealed}


def assert_same_batch(dense: dict, ref: dict) -> None:
    for k, v in ref.items():
        got = dense.get(k)
        if got is None:
            assert k == "pad_mask" and not v.any(), f"{k} missing"   # absent pad_mask = no row padded
            continue
        got = got.cpu().numpy()
        assert got.dtype == v.dtype and got.shape == v.shape and np.array_equal(got, v), k


def _specs(corpus):
    weights = frequency_weights(np.arange(1, corpus.n_genes + 1), 0.5)
    return [BatchSpec(reveal=8, library_norm="measured"), BatchSpec(reveal=30),   # 30 > the 20 genes of dataset b: padding
            BatchSpec(reveal=8, reveal_detected=0.5, library_norm="measured"), BatchSpec(reveal=8, gene_weights=weights)]


def test_device_batch_equals_the_host_dense_batch(tiny_corpus):
    corpus = Corpus(tiny_corpus)
    mbd = corpus.measured_matrix()
    rows = np.array([5, 60, 7, 90, 48, 49, 3, 70])   # both datasets, dataset b measures half the genes
    x, d = corpus.read_rows(np.sort(rows))
    padded = []
    for spec in _specs(corpus):
        ref = reference_collate(x, d, [sample_rng(0, 0, r) for r in range(8)], mbd, spec)
        sparse = sparse_batch(x, d, [sample_rng(0, 0, r) for r in range(8)], MeasuredGenes(mbd), spec)
        assert_same_batch(densify(sparse, torch.from_numpy(mbd)), ref)
        assert ("pad_mask" in sparse) == bool(ref["pad_mask"].any())
        padded.append("pad_mask" in sparse)
    assert padded == [False, True, False, False]


@pytest.mark.parametrize("temperature,mix", [(1.0, 16), (0.3, 2)])
def test_the_stream_yields_the_batches_of_before(tiny_corpus, temperature, mix):
    """Batch j of the stream, densified, equals the old stream's batch j: rows gathered one slice at a time
    and collated densely on the host (same rows, order, seeds and reveal sets)."""
    corpus = Corpus(tiny_corpus)
    mbd, off = corpus.measured_matrix(), corpus.shard_offsets()
    spec = BatchSpec(reveal=8, reveal_detected=0.25, library_norm="measured")
    stream = CorpusStream(tiny_corpus, 8, spec, seed=2, temperature=temperature, mix_shards=mix)
    items = stream._rows(corpus, 0, 1, 0)
    shards = {s: corpus.load_shard(s) for s in range(len(corpus.shards))}
    for j, batch in zip(range(15), iter(stream)):   # > 1 epoch
        buf = [next(items) for _ in range(8)]
        sh = [int(np.searchsorted(off, r, side="right") - 1) for _, r, _ in buf]
        x = sp.vstack([shards[s][0][r - off[s]] for s, (_, r, _) in zip(sh, buf)], format="csr")
        d = np.array([shards[s][1][r - off[s]] for s, (_, r, _) in zip(sh, buf)])
        ref = reference_collate(x, d, [sample_rng(2, e, k) for e, _, k in buf], mbd, spec)
        assert_same_batch(densify(batch, torch.from_numpy(mbd)), ref)


def test_a_sparse_batch_is_a_fraction_of_the_dense_one(tiny_corpus):
    """What crosses from the workers to the device: the CSR values and the encoder's inputs (B x K), not
    three (B, G) arrays. Here G = 40 is tiny; the trainer's corpus has G = 48,573 (~78 MB dense at B = 256)."""
    corpus = Corpus(tiny_corpus)
    x, d = corpus.read_rows(np.arange(32))
    sparse = sparse_batch(x, d, [sample_rng(0, 0, r) for r in range(32)], MeasuredGenes(corpus.measured_matrix()),
                          BatchSpec(reveal=4))
    nnz = x.nnz
    expected = 33 * 8 + nnz * (4 + 4) + 32 * 8 + 32 * 4 * (8 + 4)  # indptr, indices+data, datasets, gene_idx+values
    assert sum(v.nbytes for v in sparse.values()) == expected
    dense = densify(sparse, torch.from_numpy(corpus.measured_matrix()))
    assert sum(dense[k].nbytes for k in ("target", "measured", "revealed")) == 32 * 40 * (4 + 1 + 1)


def test_the_device_feed_densifies_every_batch_in_order(tiny_corpus):
    corpus = Corpus(tiny_corpus)
    mbd = corpus.measured_matrix()
    stream = CorpusStream(tiny_corpus, 8, BatchSpec(reveal=8), seed=0)
    host = [b for b, _ in zip(stream, range(4))]
    fed = list(DeviceFeed(host, torch.device("cpu"), torch.from_numpy(mbd)))
    assert len(fed) == 4
    for h, f in zip(host, fed):
        ref = densify(h, torch.from_numpy(mbd))
        assert set(ref) == set(f) and all(torch.equal(ref[k], f[k]) for k in ref)


def test_masked_mean_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    m = torch.tensor([[True, True, False], [False, False, False], [False, False, True]])
    # row means 1.5 and 9 (the empty row is left out): (1.5 + 9) / 2
    assert _masked_mean(x, m).item() == pytest.approx(5.25)
    assert _masked_mean(x, torch.zeros_like(m)).item() == 0.0


def test_flops_per_sample_by_hand():
    cfg = ModelConfig(n_genes=10, dim=4, depth=1, heads=1, mlp_ratio=2, decoder_depth=1, decoder_hidden=3)
    # K = 2 -> n = 3 tokens, d = 4, MLP hidden 8, decoder h = 3, G = 10 (multiply-add = 2 FLOPs):
    # block: qkv 2*3*4*12 = 288, proj 2*3*4*4 = 96, MLP 2*(2*3*4*8) = 384, scores and values 2*(2*3*3*4) = 144
    # decoder: in 2*4*3 = 24, one residual block 2*(2*3*3) = 36, out 2*3*10 = 60
    forward = 288 + 96 + 384 + 144 + 24 + 36 + 60
    assert flops_per_sample(cfg, 2, train=False) == forward == 1032
    assert flops_per_sample(cfg, 2) == 3 * forward


@pytest.mark.parametrize("shape,k,b", [(dict(n_genes=10, dim=4, depth=1, heads=1, mlp_ratio=2, decoder_depth=1,
                                             decoder_hidden=3), 2, 3),
                                       (dict(n_genes=300, dim=32, depth=2, heads=4, decoder_depth=2), 17, 5)])
def test_flops_per_sample_equals_torchs_flop_counter(shape, k, b):
    """Forward and backward as counted by torch.utils.flop_counter (attention through the math kernel,
    which that counter sees as two batched matmuls) equal the analytic count."""
    cfg = ModelConfig(**shape)
    model = TxFM(cfg)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        parts, _ = model(synthetic_batch(cfg, b, k))
        parts.loss.backward()
    assert counter.get_total_flops() == flops_per_sample(cfg, k) * b


def test_on_a_cpu_with_workers_the_workers_densify_and_the_run_is_the_same(tiny_corpus, tmp_path, monkeypatch):
    """loader_source: sparse batches for a GPU (densified there), dense ones built by the workers on a CPU
    (beside the step, not in its way); a run densifying in its workers equals one densifying in the trainer."""
    import json

    import txfm.trainer
    from txfm.config import TrainConfig
    from txfm.feed import HostDense, loader_source
    from txfm.trainer import train

    stream = CorpusStream(tiny_corpus, 8, BatchSpec(reveal=8), seed=0)
    assert loader_source(stream, torch.device("cuda"), 2) is stream
    assert loader_source(stream, torch.device("cpu"), 0) is stream
    assert isinstance(loader_source(stream, torch.device("cpu"), 2), HostDense)
    losses = []
    for where in ("workers", "trainer"):
        if where == "trainer":   # the GPU path on the CPU: sparse batches from the workers
            monkeypatch.setattr(txfm.trainer, "loader_source", lambda stream, device, workers: stream)
        out = tmp_path / where
        train(TrainConfig(corpus=tiny_corpus, out=str(out), reveal=8, batch_size=8, max_steps=6, log_every=1,
                          val_every=0, workers=2, device="cpu", precision="fp32"),
              ModelConfig(n_genes=40, dim=16, depth=1, heads=2), quiet=True)
        losses.append([json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()])
    assert losses[0] == losses[1] and len(losses[0]) == 6
