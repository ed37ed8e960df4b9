"""Masking law, encoder blindness to masked genes, overfitting one batch."""
import numpy as np
import scipy.sparse as sp
import torch
from scipy.stats import chisquare

from txfm.config import ModelConfig
from txfm.dataset import BatchSpec, collate, sample_rng
from txfm.masking import reveal_genes
from txfm.model import TxFM


def test_reveal_exactly_min_k_measured_and_only_measured():
    rng = np.random.default_rng(0)
    measured = np.array([3, 5, 8, 13, 21, 34])
    for k in (1, 4, 6, 10):
        got = reveal_genes(measured, k, rng)
        assert len(got) == min(k, len(measured))
        assert len(set(got)) == len(got)
        assert set(got) <= set(measured)


def test_collate_pads_and_never_reveals_unmeasured():
    counts = sp.csr_matrix(np.arange(1, 21).reshape(2, 10))
    measured = np.zeros((2, 10), dtype=bool)
    measured[0, :8] = True
    measured[1, [1, 3, 5]] = True
    b = collate(counts, np.array([0, 1]), [sample_rng(0, 0, i) for i in range(2)], measured, BatchSpec(reveal=5))
    assert b["gene_idx"].shape == (2, 5)
    assert b["pad_mask"].tolist() == [[False] * 5, [False] * 3 + [True] * 2]
    assert (b["revealed"] <= torch.from_numpy(measured)).all()
    assert b["revealed"].sum(1).tolist() == [5, 3]
    assert (b["values"][b["pad_mask"]] == 0).all()
    # values are the preprocessed targets at the revealed genes
    assert torch.equal(torch.gather(b["target"], 1, b["gene_idx"])[~b["pad_mask"]], b["values"][~b["pad_mask"]])


def test_uniform_reveal_is_uniform():
    rng = np.random.default_rng(1)
    measured = np.arange(20)
    hits = np.zeros(20)
    for _ in range(4000):
        hits[reveal_genes(measured, 5, rng)] += 1
    assert chisquare(hits).pvalue > 0.001


def test_tau_weighted_reveal_follows_its_weights():
    rng = np.random.default_rng(2)
    measured = np.arange(6)
    w = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 10.0])
    first = np.zeros(6)
    for _ in range(6000):  # K = 1: P(gene) = w / sum(w)
        first[reveal_genes(measured, 1, rng, w)] += 1
    assert chisquare(first, 6000 * w / w.sum()).pvalue > 0.001
    # K = 3: inclusion frequencies equal numpy's successive sampling without replacement
    ours, ref = np.zeros(6), np.zeros(6)
    ref_rng = np.random.default_rng(3)
    for _ in range(6000):
        ours[reveal_genes(measured, 3, rng, w)] += 1
        ref[ref_rng.choice(6, 3, replace=False, p=w / w.sum())] += 1
    assert chisquare(ours, ref * ours.sum() / ref.sum()).pvalue > 0.001
    assert ours[5] > ours[0] * 2


def _tiny(n_genes=12, **kw):
    torch.manual_seed(0)
    return TxFM(ModelConfig(n_genes=n_genes, dim=16, depth=2, heads=2, decoder_depth=2, **kw))


def test_encoder_does_not_see_masked_values_or_padding():
    model = _tiny().eval()
    counts = sp.csr_matrix(np.random.default_rng(0).poisson(5, (3, 12)))
    measured = np.ones((3, 12), dtype=bool)
    measured[2, 6:] = False  # third sample: 6 measured genes < K -> padding
    b = collate(counts, np.array([0, 1, 2]), [sample_rng(0, 0, i) for i in range(3)], measured, BatchSpec(reveal=8))
    assert b["pad_mask"].sum(1).tolist() == [0, 0, 2]
    cls = model.forward_encoder(b["gene_idx"], b["values"], b["pad_mask"])
    b2 = {k: v.clone() for k, v in b.items()}
    b2["target"][~b2["revealed"]] = 99.0  # change every masked gene's value
    b2["values"][b2["pad_mask"]] = 1234.0  # and what sits in padding slots
    b2["gene_idx"][b2["pad_mask"]] = 11
    cls2 = model.forward_encoder(b2["gene_idx"], b2["values"], b2["pad_mask"])
    torch.testing.assert_close(cls, cls2, rtol=0, atol=1e-6)
    # while changing a revealed value does change it
    b2["values"][0, 0] += 1.0
    assert not torch.allclose(cls[0], model.forward_encoder(b2["gene_idx"], b2["values"], b2["pad_mask"])[0])


def test_tiny_model_overfits_one_batch():
    loss = "poisson"
    model = _tiny(n_genes=30, loss=loss)
    rng = np.random.default_rng(0)
    counts = sp.csr_matrix(rng.poisson(rng.gamma(2, 2, (8, 30))))
    b = collate(counts, np.zeros(8, dtype=int), [sample_rng(0, 0, i) for i in range(8)], np.ones((1, 30), bool),
                BatchSpec(reveal=10))
    t = b["target"]
    floor = (torch.exp(t) - t * torch.exp(t)).mean().item() if loss == "poisson" else 0.0  # loss at p = t
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(400):
        parts, _ = model(b)
        first = parts.loss.item() if first is None else first
        opt.zero_grad()
        parts.loss.backward()
        opt.step()
    excess0, excess1 = first - floor, parts.loss.item() - floor
    assert excess1 < excess0 / 8, (excess0, excess1)  # rect_tanh has a dead zone (z < 0): 8x, not 100x


def test_reveal_detected_share_draws_that_share_of_k_from_nonzero_genes():
    measured = np.arange(0, 400, 2)          # 200 measured genes
    detected = measured[::10]                 # 20 of them non-zero
    k, share = 40, 0.25                        # round(0.25 * 40) = 10 drawn from the detected first
    counts = np.zeros(400)
    n_det = []
    for seed in range(2000):
        got = reveal_genes(measured, k, np.random.default_rng(seed), detected=detected, detected_share=share)
        assert got.size == k and np.unique(got).size == k and np.isin(got, measured).all()
        assert (np.diff(got) > 0).all()
        n_det.append(np.isin(got, detected).sum())
        counts[got] += 1
    # >= 10 detected every time; the other 30 come uniformly from the 190 remaining genes, which hold
    # 10 more detected ones: expected 10 + 30 * 10/190 = 11.58 detected per draw
    assert min(n_det) >= 10
    assert abs(np.mean(n_det) - (10 + 30 * 10 / 190)) < 0.1
    # a detected gene is revealed with probability 10/20 + (1 - 10/20) * 30/190 = 0.579; others 30/190 * (1 - ...)
    p_det = counts[detected] / 2000
    assert abs(p_det.mean() - (0.5 + 0.5 * 30 / 190)) < 0.02
    # more detected than the share: every detected gene is then in; share 0 is the paper's uniform draw
    few = measured[:3]
    got = reveal_genes(measured, k, np.random.default_rng(0), detected=few, detected_share=0.5)
    assert np.isin(few, got).all()
    assert (reveal_genes(measured, k, np.random.default_rng(5), detected=detected, detected_share=0.0)
            == reveal_genes(measured, k, np.random.default_rng(5))).all()


def test_collate_reveals_detected_genes_of_each_row():
    g = 300
    x = sp.csr_matrix((np.ones(12), (np.repeat([0, 1], 6), np.r_[np.arange(6) * 7, np.arange(6) * 11])), shape=(2, g))
    measured = np.ones((1, g), dtype=bool)
    rngs = [sample_rng(0, 0, i) for i in range(2)]
    b = collate(x, np.zeros(2, dtype=np.int64), rngs, measured, BatchSpec(reveal=20, reveal_detected=0.5))
    for i, nz in enumerate([np.arange(6) * 7, np.arange(6) * 11]):
        assert np.isin(nz, b["gene_idx"][i].numpy()).all()  # 6 non-zero <= 10 = half of K: all shown
        assert (b["values"][i] > 0).sum() == 6


def test_embedding_does_not_depend_on_the_batch_a_sample_is_in():
    """encode_counts pads each batch to its longest revealed set; a sample's CLS must not change
    with the batch size (the CPU default of 16 and the GPU default of 256 give the same numbers)."""
    import scipy.sparse as sp

    from txfm.dataset import BatchSpec
    from txfm.inference import default_batch_size, encode_counts

    torch.manual_seed(0)
    model = TxFM(ModelConfig(n_genes=300, dim=32, depth=2, heads=4)).eval()
    rng = np.random.default_rng(0)
    x = sp.random(40, 300, density=0.1, format="csr", random_state=1, data_rvs=lambda m: rng.integers(1, 20, m))
    measured = np.ones((1, 300), dtype=bool)
    spec = BatchSpec(reveal=24)
    ref, _ = encode_counts(model, x, measured, spec, batch_size=40, progress=False)
    for bs in (1, 7, None):
        z, _ = encode_counts(model, x, measured, spec, batch_size=bs, progress=False)
        np.testing.assert_allclose(z, ref, atol=1e-5)
    assert default_batch_size("cpu") == 16 and default_batch_size("cuda:0") == 256


def test_decoder_init_sets_the_scale_of_the_per_gene_weights_only():
    import pytest
    torch.manual_seed(0)
    default = TxFM(ModelConfig(n_genes=4000, dim=32, depth=1, heads=2))
    torch.manual_seed(0)
    small = TxFM(ModelConfig(n_genes=4000, dim=32, depth=1, heads=2, decoder_init=0.002))
    assert abs(float(default.decoder.out.weight.std()) - 0.02) < 0.001
    assert abs(float(small.decoder.out.weight.std()) - 0.002) < 0.0001
    # every other parameter is drawn as by default (the redraw comes after them)
    a, b = default.state_dict(), small.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k != "decoder.out.weight")
    with pytest.raises(ValueError, match="decoder-init 0.0: must be > 0"):
        ModelConfig(n_genes=10, decoder_init=0.0)


def test_reveal_fraction_reveals_a_share_of_each_samples_expressed_genes():
    from txfm.dataset import BatchSpec
    spec = BatchSpec(reveal=256, reveal_fraction=0.5)
    assert [spec.sample_k(d) for d in (0, 1, 3, 100, 1000)] == [1, 1, 2, 50, 256]
    assert BatchSpec(reveal=256).sample_k(3) == 256            # off: K for every sample
    rng = np.random.default_rng(0)
    x = np.zeros((3, 40), dtype=np.int64)
    for i, n in enumerate((10, 3, 30)):                         # 10, 3 and 30 expressed genes
        x[i, rng.choice(40, n, replace=False)] = rng.integers(1, 9, n)
    counts = sp.csr_matrix(x)
    b = collate(counts, np.zeros(3, dtype=np.int64), [sample_rng(0, 0, i) for i in range(3)], np.ones((1, 40), bool),
                BatchSpec(reveal=12, reveal_detected=1.0, reveal_fraction=0.5))
    assert (~b["pad_mask"]).sum(1).tolist() == [5, 2, 12]      # ceil(0.5 x 10), ceil(0.5 x 3), min(12, 15)
    shown = b["gene_idx"][~b["pad_mask"]]
    rows = torch.arange(3).repeat_interleave((~b["pad_mask"]).sum(1))
    assert (torch.from_numpy(x)[rows, shown] > 0).all()         # all of them expressed: no zeros shown


def test_loss_genes_keeps_every_expressed_gene_and_a_share_of_the_zeros():
    from txfm.losses import loss_genes
    torch.manual_seed(0)
    target = (torch.rand(64, 2000) < 0.05).float() * 3.0        # 5% expressed
    measured = torch.ones_like(target, dtype=torch.bool)
    measured[:, :100] = False
    assert torch.equal(loss_genes(measured, target, 1.0), measured)
    kept = loss_genes(measured, target, 0.2)
    assert not kept[:, :100].any()                                       # never an unmeasured gene
    assert kept[(target > 0) & measured].all()                           # every expressed gene
    zeros = (target == 0) & measured
    share = kept[zeros].float().mean().item()
    assert abs(share - 0.2) < 0.01                                       # ~0.2 of 121,000 zeros (sd 0.001)


def test_loss_zeros_applies_in_training_only():
    torch.manual_seed(0)
    model = _tiny(n_genes=30, loss_zeros=0.1)
    rng = np.random.default_rng(0)
    counts = sp.csr_matrix(rng.poisson(0.3, (8, 30)))
    b = collate(counts, np.zeros(8, dtype=int), [sample_rng(0, 0, i) for i in range(8)], np.ones((1, 30), bool),
                BatchSpec(reveal=10))
    full = TxFM(ModelConfig(**{**model.cfg.__dict__, "loss_zeros": 1.0}))
    full.load_state_dict(model.state_dict())
    model.eval(), full.eval()
    assert model(b)[0].loss.item() == full(b)[0].loss.item()           # validation counts every gene
    model.train(), full.train()
    torch.manual_seed(1)
    a = model(b)[0].loss.item()
    torch.manual_seed(1)
    assert a != full(b)[0].loss.item()
