"""Weight averaging: an exponential moving average (EMA) of a model's weights during training.

`--ema D` keeps, beside the weights the optimiser moves, a running average of them: after step t
the average moves towards the current weights by 1 - d_t, with d_t = min(D, (1 + t) / (10 + t)). The
ramp (the update-count warm-up of TensorFlow's ExponentialMovingAverage and timm's ModelEma) keeps a
short run's average from being dominated by its random initial weights: at D = 0.999 a fixed decay
would still hold 67% of the initial weights after 400 steps. The average is kept in float32 on the
training device and updated with in-place lerps (no host synchronisation). Checkpoints carry it as
``"ema_model"`` beside ``"model"``; resuming restores both, and `txfm.checkpoint.load_model` reads the
average by default (the gene matrices, the CLS and every downstream step use it).
"""
from __future__ import annotations

import torch


def ema_decay(decay: float, step: int) -> float:
    """The decay used after optimiser step ``step`` (1-based): the ramp (1 + t) / (10 + t), capped at ``decay``."""
    return min(decay, (1.0 + step) / (10.0 + step))


class WeightAverage:
    """The EMA of a module's floating-point state (parameters and float buffers), by name."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        state = model.state_dict()
        self.names = [k for k, v in state.items() if v.is_floating_point()]
        self.shadow = [state[k].detach().float().clone() for k in self.names]

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        """Move the average towards the model's current weights after optimiser step ``step``."""
        w = 1.0 - ema_decay(self.decay, step)
        state = model.state_dict()
        for name, avg in zip(self.names, self.shadow):
            avg.lerp_(state[name].detach().float(), w)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The average on the CPU, float32 (a checkpoint's ``"ema_model"``)."""
        return {k: v.detach().cpu() for k, v in zip(self.names, self.shadow)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = [k for k in self.names if k not in state]
        if missing:
            raise KeyError(f"weight average lacks {len(missing)} tensors (e.g. {missing[:3]})")
        for k, avg in zip(self.names, self.shadow):
            avg.copy_(state[k].to(avg.device, torch.float32))


def averaged_state(ck: dict) -> dict[str, torch.Tensor]:
    """A checkpoint's weights with its average in place of the trained weights where it has one."""
    return {**ck["model"], **ck.get("ema_model", {})}


__all__ = ["WeightAverage", "ema_decay", "averaged_state"]
