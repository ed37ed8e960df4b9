"""The TxFM model: gene codebook + value tokens, pre-norm transformer encoder on
the revealed genes only, residual MLP decoder on the CLS embedding to all genes.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .activations import apply_activation
from .config import ModelConfig
from .losses import LossParts, loss_genes, reconstruction_loss


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch per sample with probability p (scaled at train time)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype).bernoulli_(keep)
        return x * mask / keep


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        b, n, d = x.shape  # [B, 1+K, d]
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x [B, h, n, d/h]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # [B, h, n, d/h]
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale and stochastic depth."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, drop_path: float, ls_init: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim, ls_init)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.ls2 = LayerScale(dim, ls_init)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x), attn_mask)))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


class ResidualMLPDecoder(nn.Module):
    """CLS embedding (d) -> h -> depth residual MLP blocks -> Linear(h, G) logits.

    The rows of ``out.weight`` (G, h) are the decoder's per-gene weights.
    """

    def __init__(self, dim: int, hidden: int, depth: int, n_genes: int):
        super().__init__()
        self.inp = nn.Linear(dim, hidden) if depth > 0 else nn.Identity()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))
            for _ in range(depth))
        self.norm = nn.LayerNorm(hidden) if depth > 0 else nn.Identity()
        self.out = nn.Linear(hidden if depth > 0 else dim, n_genes)

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        h = self.inp(cls)  # [B, h]
        for blk in self.blocks:
            h = h + blk(h)
        return self.out(self.norm(h))  # [B, G]


INIT_STD = 0.02  # std of every Linear and Embedding weight at initialisation (ModelConfig.decoder_init's default)


class TxFM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.codebook = nn.Embedding(cfg.n_genes, d - 1)  # E: one (d-1)-vector per gene
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        rates = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio, r, cfg.layerscale_init) for r in rates)
        self.norm = nn.LayerNorm(d)
        self.decoder = ResidualMLPDecoder(d, cfg.hidden if cfg.decoder_depth > 0 else d, cfg.decoder_depth, cfg.n_genes)
        self.log_theta = nn.Parameter(torch.zeros(cfg.n_genes)) if cfg.loss == "negbin" else None
        self.apply(self._init)
        nn.init.normal_(self.cls_token, std=INIT_STD)
        nn.init.normal_(self.codebook.weight, std=cfg.codebook_init)
        if cfg.decoder_init != INIT_STD:  # redrawn only when changed: default runs stay bit-identical
            nn.init.trunc_normal_(self.decoder.out.weight, std=cfg.decoder_init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=INIT_STD)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward_encoder(self, gene_idx: torch.Tensor, values: torch.Tensor, pad_mask: torch.Tensor | None,
                        all_layers: bool = False, tokens: bool = False):
        """Encode the revealed genes only.

        gene_idx: [B, K] long, values: [B, K] float (preprocessed), pad_mask: [B, K] bool (True = padding),
        or None when no row is padded: attention then runs without a mask, so the flash kernel is eligible.
        (A mask on the host with no True is dropped here; one on a GPU is used as given, since asking it
        would stall the device.)
        Returns the CLS embedding [B, d] (after the final LayerNorm); with ``all_layers`` also the
        CLS state after each block (list of [B, d]); with ``tokens`` instead every output token
        [B, 1+K, d] after the final LayerNorm (position 0 is CLS).
        """
        b = gene_idx.shape[0]
        tok = torch.cat([self.codebook(gene_idx), values.unsqueeze(-1).to(self.codebook.weight.dtype)], dim=-1)  # [B, K, d]
        x = torch.cat([self.cls_token.expand(b, -1, -1).to(tok.dtype), tok], dim=1)  # [B, 1+K, d]
        attn_mask = None
        if pad_mask is not None and (pad_mask.device.type != "cpu" or bool(pad_mask.any())):
            keep = torch.cat([pad_mask.new_zeros(b, 1), pad_mask], dim=1)  # [B, 1+K]
            attn_mask = (~keep)[:, None, None, :]  # [B, 1, 1, 1+K]: True = may be attended to
        layers = []
        for blk in self.blocks:
            x = blk(x, attn_mask)
            if all_layers:
                layers.append(x[:, 0])
        if tokens:
            return self.norm(x)  # [B, 1+K, d]
        cls = self.norm(x[:, 0])  # [B, d]
        return (cls, layers) if all_layers else cls

    @torch.no_grad()
    def init_output_bias(self, log_mean: torch.Tensor) -> None:
        """Set the decoder's per-gene output bias so that a CLS-independent prediction equals each
        gene's mean log1p level (G,). Abundance then sits in the bias, and the per-gene weights are
        left to learn how genes vary with cell state (instead of one shared abundance axis). With
        rect_tanh every expressed gene starts on the live side of the relu."""
        y = log_mean.to(self.decoder.out.bias.dtype).clamp_min(0)
        if self.cfg.activation == "rect_tanh":
            top = math.log(self.cfg.library_size + 1.0)
            z = 4.0 * math.e * torch.atanh((y / top).clamp(max=0.99))
        elif self.cfg.activation in ("relu", "clamped_relu"):
            z = y
        else:  # softmax: logits only matter up to a shared constant
            z = torch.log(torch.expm1(y).clamp_min(1e-8))
        self.decoder.out.bias.copy_(z)

    def forward_decoder(self, cls: torch.Tensor, measured: torch.Tensor | None = None) -> torch.Tensor:
        """CLS [B, d] -> predicted log1p expression of every gene [B, G]."""
        z = self.decoder(cls)
        return apply_activation(self.cfg.activation, z, self.cfg.library_size, measured)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[LossParts, torch.Tensor]:
        """Loss on one dense batch (txfm.dataset.densify: gene_idx, values, target, measured, revealed and
        pad_mask when a row is padded) and the predictions [B, G]."""
        cls = self.forward_encoder(batch["gene_idx"], batch["values"], batch.get("pad_mask"))
        pred = self.forward_decoder(cls, batch["measured"])
        share = self.cfg.loss_zeros if self.training else 1.0     # validation and inference count every gene
        counted = loss_genes(batch["measured"], batch["target"], share)
        parts = reconstruction_loss(self.cfg.loss, pred, batch["target"], counted, batch["revealed"] & counted,
                                    self.log_theta)
        return parts, pred

    def gene_matrices(self) -> dict[str, torch.Tensor]:
        """The gene-specific parameters: codebook (G, d-1) and decoder per-gene weights (G, h)."""
        return {"codebook": self.codebook.weight.detach(), "decoder": self.decoder.out.weight.detach()}


def flops_per_sample(cfg: ModelConfig, k: int, train: bool = True) -> float:
    """Analytic matmul FLOPs per sample (multiply-add = 2 FLOPs); training = 3x forward.

    Counts the encoder on 1+K tokens (qkv, attention scores and values, projection, MLP), the
    decoder MLP and the output Linear to all G genes; ignores norms and element-wise ops.
    """
    d, n = cfg.dim, k + 1
    hid = int(d * cfg.mlp_ratio)
    per_block = 2 * n * d * 3 * d + 2 * n * d * d + 2 * 2 * n * d * hid + 2 * 2 * n * n * d
    h = cfg.hidden if cfg.decoder_depth > 0 else d
    dec = (2 * d * h + cfg.decoder_depth * 2 * 2 * h * h if cfg.decoder_depth > 0 else 0) + 2 * h * cfg.n_genes
    fwd = cfg.depth * per_block + dec
    return float(3 * fwd if train else fwd)


__all__ = ["TxFM", "flops_per_sample"]
