"""Weight averaging (--ema): the decay ramp by hand, the average recomputed from a run's own step
checkpoints, exact resume, what inference reads, and refusals."""
import shutil

import pytest
import torch

from common.errors import UserError
from common.options import OptionError
from txfm.averaging import WeightAverage, ema_decay
from txfm.checkpoint import CheckpointError, load_model
from txfm.config import ModelConfig, TrainConfig
from txfm.inference import gene_matrices
from txfm.trainer import train

MC = ModelConfig(n_genes=40, dim=8, depth=1, heads=2, decoder_depth=1)


def _cfg(corpus, out, **kw):
    base = dict(corpus=corpus, out=str(out), reveal=6, batch_size=8, max_steps=6, save_every=1, keep_last=0,
                val_every=0, precision="fp32", ema=0.9)
    return TrainConfig(**{**base, **kw})


def test_decay_ramp_by_hand():
    assert ema_decay(0.999, 1) == pytest.approx(2 / 11)
    assert ema_decay(0.999, 90) == pytest.approx(91 / 100)
    assert ema_decay(0.9, 90) == 0.9              # capped at the decay asked for
    assert ema_decay(0.999, 10_000) == 0.999


def test_update_moves_the_average_by_one_minus_the_decay():
    lin = torch.nn.Linear(3, 2)
    w0 = {k: v.clone() for k, v in lin.state_dict().items()}
    avg = WeightAverage(lin, 0.5)
    with torch.no_grad():
        lin.weight.add_(1.0)
        lin.bias.sub_(2.0)
    avg.update(lin, step=1)                       # decay min(0.5, 2/11) = 2/11
    got = avg.state_dict()
    assert torch.allclose(got["weight"], w0["weight"] + (9 / 11) * 1.0)
    assert torch.allclose(got["bias"], w0["bias"] - (9 / 11) * 2.0)
    avg.update(lin, step=100)                     # decay 0.5: halfway to the current weights
    assert torch.allclose(avg.state_dict()["weight"], w0["weight"] + 1.0 - 0.5 * (2 / 11))


def test_average_in_checkpoints_follows_the_trained_weights(tiny_corpus, tmp_path):
    """From consecutive step checkpoints, independently: ema_t = d_t ema_{t-1} + (1 - d_t) theta_t."""
    train(_cfg(tiny_corpus, tmp_path / "run"), MC, quiet=True)
    cks = [torch.load(tmp_path / "run" / f"step-{t:07d}.pt", weights_only=True) for t in range(1, 7)]
    for prev, cur in zip(cks, cks[1:]):
        d = ema_decay(0.9, cur["step"])
        for k, v in cur["ema_model"].items():
            want = d * prev["ema_model"][k] + (1 - d) * cur["model"][k].float()
            assert torch.allclose(v, want, atol=1e-6), k
    last = cks[-1]
    assert any(not torch.equal(last["ema_model"][k], last["model"][k]) for k in last["ema_model"])
    # inference reads the average by default, the trained weights on request
    model, _ = load_model(tmp_path / "run" / "last.pt")
    assert torch.equal(model.codebook.weight, last["ema_model"]["codebook.weight"])
    trained, _ = load_model(tmp_path / "run" / "last.pt", weights="trained")
    assert torch.equal(trained.codebook.weight, last["model"]["codebook.weight"])
    mats, _, _ = gene_matrices(tmp_path / "run" / "last.pt")
    assert torch.equal(torch.from_numpy(mats["decoder"]), last["ema_model"]["decoder.out.weight"])


def test_resumed_average_equals_uninterrupted(tiny_corpus, tmp_path):
    """Resumed from step 3 of a 6-step run (its step-3 checkpoint copied onto last.pt, the documented way)."""
    train(_cfg(tiny_corpus, tmp_path / "full"), MC, quiet=True)
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "full", cut)
    for t in (4, 5, 6):
        (cut / f"step-{t:07d}.pt").unlink()
    shutil.copy(cut / "step-0000003.pt", cut / "last.pt")
    train(_cfg(tiny_corpus, cut), resume=True, quiet=True)
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["ema_model"]
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["ema_model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_without_ema_nothing_changes_and_refusals(tiny_corpus, tmp_path):
    train(_cfg(tiny_corpus, tmp_path / "plain", ema=0.0, max_steps=2), MC, quiet=True)
    ck = torch.load(tmp_path / "plain" / "last.pt", weights_only=True)
    assert "ema_model" not in ck
    model, _ = load_model(tmp_path / "plain" / "last.pt")
    assert torch.equal(model.codebook.weight, ck["model"]["codebook.weight"])
    with pytest.raises(UserError, match="--ema 0.0 -> 0.9"):   # a run cannot gain an average half-way
        train(_cfg(tiny_corpus, tmp_path / "plain", max_steps=4), resume=True, quiet=True,
              given={"ema": 0.9, "max_steps": 4})
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(OptionError, match="--ema"):
            _cfg(tiny_corpus, tmp_path / "x", ema=bad)
    with pytest.raises(ValueError, match="weights="):
        load_model(tmp_path / "plain" / "last.pt", weights="ema")


def test_a_checkpoint_that_lost_its_average_is_named(tiny_corpus, tmp_path):
    train(_cfg(tiny_corpus, tmp_path / "run", max_steps=2), MC, quiet=True)
    last = tmp_path / "run" / "last.pt"
    ck = torch.load(last, weights_only=True)
    del ck["ema_model"]
    torch.save(ck, last)
    with pytest.raises(CheckpointError, match="weight average"):
        train(_cfg(tiny_corpus, tmp_path / "run", max_steps=4), resume=True, quiet=True, given={"max_steps": 4})
