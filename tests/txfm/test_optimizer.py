"""The optimiser's parameter groups and the codebook's own learning rate (--codebook-lr-mult)."""
import pytest
import torch

from common.options import OptionError
from txfm.config import TrainConfig, model_config
from txfm.model import TxFM
from txfm.trainer import make_optimizer


def _model() -> TxFM:
    torch.manual_seed(0)
    return TxFM(model_config("tiny", n_genes=40, dim=16, depth=1, heads=2))


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(corpus="unused", out="unused", lr=1e-3, warmup=0.5, weight_decay=0.0, **kw)


def _codebook_step(mult: float) -> torch.Tensor:
    """How far every codebook entry moves in the first optimiser step (a fixed gradient)."""
    model = _model()
    opt, sched, _ = make_optimizer(model, _cfg(codebook_lr_mult=mult), steps=4)
    sched.step()  # the peak
    before = model.codebook.weight.detach().clone()
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    return (model.codebook.weight.detach() - before).abs()


def test_default_keeps_two_groups_and_one_rate():
    model = _model()
    opt, sched, _ = make_optimizer(model, _cfg(), steps=4)
    assert len(opt.param_groups) == 2  # checkpoints of earlier runs resume into the same layout
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    sched.step()  # the peak
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3, 1e-3])


def test_codebook_has_its_own_group_and_rate():
    model = _model()
    opt, sched, _ = make_optimizer(model, _cfg(codebook_lr_mult=10.0), steps=4)
    groups = opt.param_groups
    assert len(groups) == 3 and groups[2]["params"] == [model.codebook.weight]
    assert not any(p is model.codebook.weight for g in groups[:2] for p in g["params"])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    sched.step()  # step 1 of 4 with warm-up 0.5: the peak
    assert groups[0]["lr"] == pytest.approx(1e-3) and groups[2]["lr"] == pytest.approx(1e-2)


def test_codebook_moves_mult_times_as_far():
    # Adam's first step moves each entry by lr x g / (|g| + eps): the ratio of the moves is the multiplier
    ratio = _codebook_step(10.0) / _codebook_step(1.0)
    assert torch.allclose(ratio, torch.full_like(ratio, 10.0), rtol=1e-4)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_bad_multiplier_is_refused(bad):
    with pytest.raises(OptionError, match="codebook_lr_mult|codebook-lr-mult"):
        _cfg(codebook_lr_mult=bad)
