"""Frozen configs for the model and the trainer, and the size presets.

The CLI builds these from argparse; checkpoints store them as plain dicts.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from common.options import OptionError, check_range

Activation = Literal["rect_tanh", "relu", "clamped_relu", "softmax"]
Loss = Literal["poisson", "mse", "smoothl1", "negbin"]
Preprocessing = Literal["libnorm_log1p", "log1p"]
Precision = Literal["auto", "fp32", "bf16"]


@dataclass(frozen=True)
class ModelConfig:
    n_genes: int  # G: size of the gene vocabulary (decoder output width)
    dim: int = 128  # d: token width; the codebook has d - 1 dims, the value is the last one
    depth: int = 4  # number of transformer blocks
    heads: int = 4  # attention heads (dim must divide)
    mlp_ratio: float = 4.0  # hidden width of each block's MLP relative to dim
    drop_path: float = 0.0  # stochastic depth rate of the last block (linearly increasing from 0)
    layerscale_init: float = 0.1  # initial LayerScale gain of each residual branch
    codebook_init: float = 0.02  # std of the initial codebook; ~1 puts gene identity on the scale of the value channel
    decoder_init: float = 0.02  # std of the initial per-gene decoder weights (0.02 was best of 0.002-0.05, docs/training-recipe.md exp. 19)
    decoder_depth: int = 4  # residual MLP blocks on the CLS embedding (0 = a single Linear)
    decoder_hidden: int = 0  # width h of the decoder (and of the per-gene decoder weights); 0 = dim
    activation: Activation = "rect_tanh"  # output activation phi(z), see txfm/activations.py
    library_size: float = 1e5  # L: library-size normalisation target; bounds rect_tanh at log(L+1)
    loss: Loss = "poisson"  # reconstruction loss on all measured genes
    loss_zeros: float = 1.0  # share of a sample's measured zero-count genes that enter the training loss (drawn each step; 1 = all)

    def __post_init__(self) -> None:
        check_range("n_genes", self.n_genes, lo=1, integer=True, what="size of the gene vocabulary")
        check_range("dim", self.dim, lo=2, integer=True)
        check_range("depth", self.depth, lo=1, integer=True)
        check_range("heads", self.heads, lo=1, integer=True)
        check_range("mlp_ratio", self.mlp_ratio, lo=0, lo_open=True)
        check_range("drop_path", self.drop_path, lo=0, hi=1, hi_open=True)
        check_range("layerscale_init", self.layerscale_init, lo=0)
        check_range("codebook_init", self.codebook_init, lo=0, lo_open=True)
        check_range("decoder_init", self.decoder_init, lo=0, lo_open=True,
                    what="zeros would leave rect_tanh and relu outputs dead at 0")
        check_range("decoder_depth", self.decoder_depth, lo=0, integer=True)
        check_range("decoder_hidden", self.decoder_hidden, lo=0, integer=True, what="0 = dim")
        check_range("library_size", self.library_size, lo=0, lo_open=True)
        check_range("loss_zeros", self.loss_zeros, lo=0, hi=1, lo_open=True, what="1 = every measured gene")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")
        if self.dim < 2:
            raise ValueError("dim must be at least 2 (codebook of dim - 1 plus the value)")

    @property
    def hidden(self) -> int:
        return self.decoder_hidden or self.dim


# name -> (depth, heads, dim, stochastic depth); S/B/L follow the paper.
PRESETS: dict[str, dict] = {
    "tiny": dict(depth=4, heads=4, dim=128, drop_path=0.0),
    "S": dict(depth=6, heads=6, dim=384, drop_path=0.1),
    "B": dict(depth=12, heads=12, dim=768, drop_path=0.1),
    "L": dict(depth=24, heads=16, dim=1024, drop_path=0.3),
}


def model_config(preset: str, n_genes: int, **overrides) -> ModelConfig:
    """A ModelConfig from a named preset, with field overrides (None values ignored)."""
    if preset not in PRESETS:
        raise OptionError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    kw = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return ModelConfig(n_genes=n_genes, **kw)


@dataclass(frozen=True)
class TrainConfig:
    corpus: str  # corpus directory (txfm.corpus format)
    out: str  # run directory: checkpoints, metrics, config
    preset: str = "tiny"  # model size preset the run started from
    reveal: int = 2048  # K: genes revealed to the encoder per sample
    reveal_tau: float = 0.0  # frequency-weighted reveal sampling w ~ m^tau (0 = uniform)
    reveal_detected: float = 0.0  # share of K drawn first from the sample's non-zero genes (0 = the paper's uniform draw)
    reveal_fraction: float = 0.0  # > 0: each sample reveals min(K, ceil(this x its non-zero genes)) genes instead of K (single cells)
    preprocessing: Preprocessing = "libnorm_log1p"  # input/target transform
    batch_size: int = 64  # global batch size (split across DDP ranks)
    epochs: float = 1.0  # passes over the training samples (may be fractional)
    max_steps: int = 0  # if > 0, overrides the step count derived from epochs
    lr: float = 1e-3  # peak learning rate of the one-cycle cosine schedule
    warmup: float = 0.1  # fraction of steps spent warming up (a warm-up under two steps is skipped)
    weight_decay: float = -1.0  # AdamW weight decay; < 0 means 1 / (lr * total_steps) as in the paper
    codebook_lr_mult: float = 1.0  # the codebook's peak learning rate is lr x this (its rows see a gradient only when revealed)
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-6
    grad_clip: float = 1.0  # max global gradient norm (0 = off)
    ema: float = 0.0  # > 0: keep an exponential moving average of the weights with this decay (e.g. 0.999), read by inference (txfm/averaging.py)
    precision: Precision = "auto"  # auto = bf16 autocast on CUDA, fp32 on CPU
    seed: int = 0  # seeds model init, data order, masking, stochastic depth
    workers: int = 0  # DataLoader worker processes per rank
    library_norm: Literal["fixed", "measured"] = "measured"  # normalise to L, or to L x (measured genes / G) so narrow panels are not inflated
    output_bias_init: bool = False  # start the decoder's per-gene bias at each gene's mean level (abundance off the weights; lowers recall, docs/training-recipe.md exp. 2)
    mix_shards: int = 16  # shards whose rows are shuffled together (0 = all); every batch mixes their datasets
    dataset_temperature: float = 0.5  # dataset d drawn with probability ~ n_d^T (1 = as stored, 0 = uniform)
    val_fraction: float = 0.05  # held-out fraction of samples
    val_by: Literal["stratified", "batch", "dataset"] = "stratified"  # held-out split: the fraction of every dataset, or whole batches/datasets
    val_every: int = 200  # steps between validation passes (0 = only at the end)
    val_batches: int = 8  # batches per validation pass
    log_every: int = 10  # steps between metric rows
    save_every: int = 500  # steps between checkpoints (the last step is always saved)
    keep_last: int = 3  # step checkpoints kept besides last.pt (0 = keep all)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    compile: bool = False  # torch.compile the model for the training steps (docs/bench-gpu.md measures it; the first steps compile)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise OptionError(f"--preset {self.preset!r}: choose one of {sorted(PRESETS)}")
        check_range("reveal", self.reveal, lo=1, integer=True, what="genes revealed to the encoder per sample")
        check_range("reveal_tau", self.reveal_tau, lo=-10, hi=10, what="0 = uniform")
        check_range("reveal_detected", self.reveal_detected, lo=0, hi=1, what="share of K from non-zero genes")
        check_range("reveal_fraction", self.reveal_fraction, lo=0, hi=1, what="0 = K for every sample")
        check_range("batch_size", self.batch_size, lo=1, integer=True, what="samples per step")
        check_range("epochs", self.epochs, lo=0, lo_open=True)
        check_range("max_steps", self.max_steps, lo=0, integer=True, what="0 = derived from --epochs")
        check_range("lr", self.lr, lo=0, lo_open=True)
        check_range("warmup", self.warmup, lo=0, hi=1, hi_open=True, what="fraction of steps")
        check_range("weight_decay", self.weight_decay, lo=-1e9, hi=1e9, what="< 0 = 1 / (lr * steps)")
        check_range("codebook_lr_mult", self.codebook_lr_mult, lo=0, hi=1e4, lo_open=True, what="1 = the shared rate")
        check_range("beta1", self.beta1, lo=0, hi=1, hi_open=True)
        check_range("beta2", self.beta2, lo=0, hi=1, hi_open=True)
        check_range("eps", self.eps, lo=0, lo_open=True)
        check_range("grad_clip", self.grad_clip, lo=0, what="0 = off")
        check_range("ema", self.ema, lo=0, hi=1, hi_open=True, what="0 = off; e.g. 0.999")
        check_range("seed", self.seed, lo=0, integer=True)
        check_range("workers", self.workers, lo=0, integer=True)
        check_range("mix_shards", self.mix_shards, lo=0, integer=True, what="0 = all shards")
        check_range("dataset_temperature", self.dataset_temperature, lo=0, hi=1, what="1 = as stored, 0 = uniform")
        check_range("val_fraction", self.val_fraction, lo=0, hi=1, hi_open=True)
        check_range("val_every", self.val_every, lo=0, integer=True, what="0 = only at the end")
        check_range("val_batches", self.val_batches, lo=1, integer=True)
        check_range("log_every", self.log_every, lo=1, integer=True)
        check_range("save_every", self.save_every, lo=1, integer=True)
        check_range("keep_last", self.keep_last, lo=0, integer=True, what="0 = keep all")


# Values that reproduce runs saved before a field existed (a stored config without the key
# meant this behaviour), so resuming or re-reading an old run keeps its recipe.
LEGACY_DEFAULTS: dict[type, dict] = {}


def from_dict(cls, d: dict):
    """Rebuild a config dataclass from a stored dict, ignoring unknown keys; keys missing from an
    old stored dict take their LEGACY_DEFAULTS value (what the old code did), not today's default."""
    names = {f.name for f in fields(cls)}
    legacy = {k: v for k, v in LEGACY_DEFAULTS.get(cls, {}).items() if k not in d}
    return cls(**legacy, **{k: v for k, v in d.items() if k in names})


LEGACY_DEFAULTS[TrainConfig] = {"library_norm": "fixed", "mix_shards": 1, "dataset_temperature": 1.0, "output_bias_init": False,
                                 "val_by": "batch", "reveal_detected": 0.0}

__all__ = ["ModelConfig", "TrainConfig", "PRESETS", "model_config", "from_dict"]
