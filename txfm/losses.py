"""Reconstruction losses over measured genes, returned with their parts.

All losses compare a prediction p = phi(z) with the log1p-preprocessed target
t, element-wise over (B, G), then average over each sample's MEASURED genes
(unmeasured genes are excluded by the per-sample ``measured`` mask) and over
the batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossParts:
    """The loss to optimise and its parts for logging (all scalars)."""

    loss: torch.Tensor  # mean over measured genes (masked + revealed), then over samples
    masked: torch.Tensor  # mean over measured genes hidden from the encoder
    revealed: torch.Tensor  # mean over genes shown to the encoder

    def as_floats(self) -> dict[str, float]:
        return {"loss": self.loss.item(), "loss_masked": self.masked.item(), "loss_revealed": self.revealed.item()}


def poisson_nll_log1p(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Poisson NLL in log space: exp(p) - p * exp(t) (rate exp(p), "count" exp(t) = 1 + x)."""
    return torch.exp(p) - p * torch.exp(t)


def negbin_nll_log1p(p: torch.Tensor, t: torch.Tensor, log_theta: torch.Tensor) -> torch.Tensor:
    """Negative binomial NLL with mean exp(p), observation exp(t), per-gene inverse dispersion exp(log_theta)."""
    mu, y, theta = torch.exp(p), torch.exp(t), torch.exp(log_theta).expand_as(p)
    log_mu_theta = torch.log(theta + mu)
    return (torch.lgamma(theta) + torch.lgamma(y + 1) - torch.lgamma(y + theta)
            - theta * (torch.log(theta) - log_mu_theta) - y * (p - log_mu_theta))


def elementwise_loss(name: str, p: torch.Tensor, t: torch.Tensor, log_theta: torch.Tensor | None = None) -> torch.Tensor:
    """(B, G) per-gene loss for ModelConfig.loss."""
    if name == "poisson":
        return poisson_nll_log1p(p, t)
    if name == "mse":
        return (p - t) ** 2
    if name == "smoothl1":
        return F.smooth_l1_loss(p, t, reduction="none")
    if name == "negbin":
        if log_theta is None:
            raise ValueError("the negbin loss needs per-gene log_theta")
        return negbin_nll_log1p(p, t, log_theta)
    raise ValueError(f"unknown loss {name!r}")


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over genes where mask, per sample, then mean over samples that have any (0 if none has).

    Written without data-dependent shapes or branches, so that a training step never waits for the
    device (no boolean indexing, no ``.item()``)."""
    m = mask.to(x.dtype)
    cnt = m.sum(-1)
    has = (cnt > 0).to(x.dtype)
    per = (x * m).sum(-1) / cnt.clamp(min=1)
    return (per * has).sum() / has.sum().clamp(min=1)


def loss_genes(measured: torch.Tensor, target: torch.Tensor, zero_share: float = 1.0) -> torch.Tensor:
    """(B, G) bool: the genes a sample's loss counts. Every measured gene (``zero_share`` = 1, the paper), or
    every measured gene with a non-zero value and each measured zero with probability ``zero_share``, drawn
    from torch's generator on the batch's device (a sparse single cell is ~95% zeros, which otherwise
    dominate the loss; the scGPT/xTrimoGene practice)."""
    if zero_share >= 1.0:
        return measured
    return measured & ((target > 0) | (torch.rand(target.shape, device=target.device) < zero_share))


def reconstruction_loss(name: str, pred: torch.Tensor, target: torch.Tensor, measured: torch.Tensor,
                        revealed: torch.Tensor, log_theta: torch.Tensor | None = None) -> LossParts:
    """Loss over measured genes with masked/revealed parts.

    pred, target: (B, G) float; measured, revealed: (B, G) bool (revealed ⊆ measured).
    Computed in float32 whatever the autocast dtype.
    """
    el = elementwise_loss(name, pred.float(), target.float(), None if log_theta is None else log_theta.float())
    el = torch.where(measured, el, torch.zeros_like(el))  # unmeasured genes may hold garbage: never let it in
    total = _masked_mean(el, measured)
    with torch.no_grad():
        masked = _masked_mean(el.detach(), measured & ~revealed)
        shown = _masked_mean(el.detach(), revealed)
    return LossParts(total, masked, shown)
