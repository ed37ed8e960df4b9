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


# ---- the one-cycle schedule over every small step count and warm-up fraction ---------------------
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from txfm.trainer import warmup_pct  # noqa: E402

_TINY = None


def _lrs(steps: int, warmup: float, mult: float = 1.0) -> list[list[float]]:
    """The learning rate of every group at each of `steps` optimiser steps, stepping the scheduler as
    the training loop does (once after every step, `steps` times in all)."""
    global _TINY
    if _TINY is None:
        torch.manual_seed(0)
        _TINY = TxFM(model_config("tiny", n_genes=8, dim=4, depth=1, heads=1, decoder_depth=0))
    cfg = TrainConfig(corpus="unused", out="unused", lr=1e-3, warmup=warmup, weight_decay=0.0,
                      codebook_lr_mult=mult)
    opt, sched, _ = make_optimizer(_TINY, cfg, steps=steps)
    out = []
    for _ in range(steps):
        out.append([g["lr"] for g in opt.param_groups])
        sched.step()
    return out


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before:UserWarning")   # no training here
@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(steps=st.integers(1, 400), warmup=st.floats(0.0, 1.0, exclude_max=True), mult=st.sampled_from([1.0, 10.0]))
@example(steps=10, warmup=0.1, mult=1.0)        # the crash of issue 24: a warm-up of exactly one step
@example(steps=1, warmup=0.1, mult=1.0)
@example(steps=2, warmup=0.99, mult=1.0)       # a warm-up covering the whole run
@example(steps=20, warmup=0.1, mult=10.0)      # exactly two warm-up steps
@example(steps=3, warmup=0.0, mult=1.0)
def test_every_step_count_and_warmup_trains(steps, warmup, mult):
    """Each (steps, warm-up) pair the options accept gives a schedule: no exception, every rate finite
    in (0, peak], a rise from peak / 25 to the peak over the warm-up (capped at steps - 1; dropped under
    two steps), then a decay to the one-cycle floor (peak / 25 / 1e4) at the last step."""
    lrs = _lrs(steps, warmup, mult)
    peaks = [1e-3, 1e-3] + ([1e-2] if mult != 1.0 else [])
    w = min(warmup * steps, steps - 1)         # the warm-up is capped so the decay keeps a step
    for g, peak in enumerate(peaks):
        lr = [row[g] for row in lrs]
        assert all(0 < v <= peak * (1 + 1e-9) for v in lr), (steps, warmup, lr)
        assert lr[-1] == pytest.approx(peak / 25 / 1e4)
        top = max(range(steps), key=lambda s: (lr[s], -s))       # first step at the highest rate
        assert all(a <= b * (1 + 1e-12) for a, b in zip(lr[:top], lr[1:top + 1]))    # rises to it
        assert all(a >= b * (1 - 1e-12) for a, b in zip(lr[top:], lr[top + 1:]))     # then decays
        if w >= 2:                            # a real warm-up: from peak / 25 to the peak near step w - 1
            assert lr[0] == pytest.approx(peak / 25)
            assert abs(top - (w - 1)) <= 1
            if float(w).is_integer():
                assert lr[int(w) - 1] == pytest.approx(peak)
        else:                                 # shorter than two steps: no warm-up
            assert top == 0


@pytest.mark.parametrize("steps,warmup,expected", [
    (10, 0.1, 0.0),       # one warm-up step: dropped
    (20, 0.1, 0.1),       # two: kept as given
    (400, 0.1, 0.1),
    (1, 0.5, 0.0),
    (4, 0.9, 0.75),       # 3.6 steps, capped at 3 so the decay keeps a step
    (2, 0.99, 0.0),       # capped at 1 step: dropped
])
def test_warmup_pct_by_hand(steps, warmup, expected):
    assert warmup_pct(warmup, steps) == pytest.approx(expected)
