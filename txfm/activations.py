"""Output activations phi(z): decoder logits -> predicted log1p-normalised expression."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def rectified_tanh(z: torch.Tensor, library_size: float = 1e5) -> torch.Tensor:
    """phi(z) = log(L+1) * relu(tanh(z / (4e))): bounded in [0, log(L+1)), negative logits -> 0."""
    return math.log(library_size + 1.0) * F.relu(torch.tanh(z / (4.0 * math.e)))


def clamped_relu(z: torch.Tensor, library_size: float = 1e5) -> torch.Tensor:
    """relu clamped at log(L+1) (ablation)."""
    return z.clamp(0.0, math.log(library_size + 1.0))


def softmax_scaled(z: torch.Tensor, library_size: float = 1e5, measured: torch.Tensor | None = None) -> torch.Tensor:
    """log1p(L * softmax(z)) over the measured genes (ablation): predicts a library-normalised profile."""
    if measured is not None:
        z = z.masked_fill(~measured, float("-inf"))
    p = torch.softmax(z.float(), dim=-1)
    return torch.log1p(library_size * p)


def apply_activation(name: str, z: torch.Tensor, library_size: float, measured: torch.Tensor | None = None) -> torch.Tensor:
    """Dispatch on ModelConfig.activation. z: (B, G) logits; measured: (B, G) bool."""
    if name == "rect_tanh":
        return rectified_tanh(z, library_size)
    if name == "relu":
        return F.relu(z)
    if name == "clamped_relu":
        return clamped_relu(z, library_size)
    if name == "softmax":
        return softmax_scaled(z, library_size, measured)
    raise ValueError(f"unknown activation {name!r}")
