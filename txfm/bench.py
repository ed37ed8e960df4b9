"""Benchmarks: training throughput and model FLOP utilisation, the MAE asymmetry,
and corpus reader throughput. ``python -m txfm bench`` writes a markdown table.

MFU = analytic model FLOPs per second (txfm.model.flops_per_sample) divided by
the dense matmul FLOP/s of this machine measured in the same run and dtype.
Each timing is the median of several repeats (the machine is shared and noisy).
"""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from common.atomic import atomic_write_text

from .config import ModelConfig, TrainConfig
from .corpus import CorpusWriter
from .dataset import BatchSpec, CorpusStream
from .model import TxFM, flops_per_sample
from .throughput import batch_source, host_bytes, loader_throughput, matmul_peak, training_throughput


def synthetic_batch(cfg: ModelConfig, batch: int, k: int, full: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch of the trainer's shape; ``full`` puts every gene in the encoder (the full-sequence design,
    masked genes carrying a mask value) instead of K revealed ones."""
    g = torch.Generator().manual_seed(seed)
    kk = cfg.n_genes if full else k
    idx = torch.stack([torch.randperm(cfg.n_genes, generator=g)[:kk] for _ in range(batch)])
    target = torch.rand(batch, cfg.n_genes, generator=g) * 5
    revealed = torch.zeros(batch, cfg.n_genes, dtype=torch.bool)
    revealed[torch.arange(batch)[:, None], idx[:, :k]] = True
    values = torch.gather(target, 1, idx)
    if full:
        values = torch.where(torch.gather(revealed, 1, idx), values, torch.full_like(values, -1.0))
    return {"gene_idx": idx, "values": values, "pad_mask": torch.zeros(batch, kk, dtype=torch.bool),
            "target": target, "measured": torch.ones(batch, cfg.n_genes, dtype=torch.bool), "revealed": revealed}


def train_step_rate(cfg: ModelConfig, batch: dict[str, torch.Tensor], dtype: torch.dtype, steps: int = 5,
                    repeats: int = 3) -> float:
    """Median samples/s of the trainer's step (txfm.trainer.train_step: forward, backward, clipping, AdamW,
    schedule) on a fixed batch."""
    from .trainer import make_optimizer, train_step

    torch.manual_seed(0)
    model = TxFM(cfg)
    opt, sched, _ = make_optimizer(model, TrainConfig(corpus="-", out="-"), 100_000)
    precision = "bf16" if dtype == torch.bfloat16 else "fp32"
    cpu = torch.device("cpu")

    def step():
        train_step(model, model, opt, sched, batch, cpu, precision, 1.0)

    step()
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps * batch["gene_idx"].shape[0] / (time.perf_counter() - t))
    return statistics.median(rates)


def reader_rate(corpus: str, k: int, batch: int, n_batches: int = 20, repeats: int = 3) -> float:
    """Median samples/s of one reader (shard loading, normalisation, masking, collation)."""
    rates = []
    for r in range(repeats):
        stream = iter(CorpusStream(corpus, batch, BatchSpec(reveal=k), seed=r))
        next(stream)
        t = time.perf_counter()
        for _ in range(n_batches):
            next(stream)
        rates.append(n_batches * batch / (time.perf_counter() - t))
    return statistics.median(rates)


def embed_rate(cfg: ModelConfig, n: int, repeats: int = 3, density: float = 0.05) -> float:
    """Median samples/s of forward-only CLS embedding (txfm.inference.encode_counts) of n samples."""
    from .inference import encode_counts
    rng = np.random.default_rng(0)
    x = sp.random(n, cfg.n_genes, density=density, format="csr", random_state=0,
                  data_rvs=lambda m: rng.geometric(0.4, m)).astype(np.float32)
    model = TxFM(cfg).eval()
    measured = np.ones((1, cfg.n_genes), dtype=bool)
    spec = BatchSpec(reveal=256)
    encode_counts(model, x[:256], measured, spec, progress=False)            # warm-up
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        encode_counts(model, x, measured, spec, progress=False)             # the default batch (CPU: 16)
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def _bench_corpus(path: Path, n_samples: int, n_genes: int, density: float, seed: int = 0) -> str:
    """A corpus with single-cell-like sparsity (counts are synthetic; only the reader cost matters)."""
    rng = np.random.default_rng(seed)
    x = sp.random(n_samples, n_genes, density=density, format="csr", random_state=seed,
                  data_rvs=lambda m: rng.geometric(0.4, m))
    with CorpusWriter(path, [f"G{i}" for i in range(n_genes)], shard_size=2048) as w:
        w.add_samples(w.add_dataset("bench", np.arange(n_genes)), x)
    return str(path)


def data_path_rows(corpus: str, repeats: int, measure_s: float) -> list[str]:
    """The data path before device-side batches (dense (B, G) batches built by the workers, as at 23d5c5a)
    against now (sparse batches, densified by the trainer), side by side in one run: bytes per batch, the
    loader alone and the CPU training recipe's throughput (tiny, K = 256, batch 32) with 0 and 1 workers.
    Modes alternate within each repeat; medians over repeats."""
    from .config import model_config
    cfg = model_config("tiny", _n_genes(corpus))
    cases = [("loader alone (1 worker)", lambda hd: loader_throughput(corpus, 256, 32, "cpu", 1, hd, 1.0, measure_s)[0]),
             ("training, workers 0", lambda hd: training_throughput(corpus, cfg, 256, 32, "cpu", "fp32", 0, hd,
                                                                   warmup_s=2.0, measure_s=measure_s)),
             ("training, workers 1", lambda hd: training_throughput(corpus, cfg, 256, 32, "cpu", "fp32", 1, hd,
                                                                   warmup_s=2.0, measure_s=measure_s))]
    nbytes = {hd: host_bytes(next(iter(batch_source(corpus, 256, 32, "cuda", 1, hd)))) for hd in (True, False)}
    lines = ["| what (tiny, K = 256, batch 32, fp32) | before: dense batches from the workers | now: sparse batches, "
             "densified by the trainer | now / before |", "|---|---:|---:|---:|",
             f"| bytes per batch leaving the loader (on a GPU) | {nbytes[True] / 1e6:.2f} MB | {nbytes[False] / 1e6:.2f} MB | "
             f"{nbytes[False] / nbytes[True]:.2f} |"]
    for name, run in cases:
        rates = {True: [], False: []}
        for r in range(repeats):
            for hd in ((True, False) if r % 2 == 0 else (False, True)):
                rates[hd].append(run(hd).samples_per_s)
        before, now = statistics.median(rates[True]), statistics.median(rates[False])
        lines.append(f"| {name}, samples/s | {before:.1f} | {now:.1f} | {now / before:.2f} |")
    return lines


def _n_genes(corpus: str) -> int:
    from .corpus import Corpus
    return Corpus(corpus).n_genes


def run_benchmarks(out: str | os.PathLike, quick: bool = False) -> str:
    """Run all benchmarks and write a markdown report to ``out``; returns the text."""
    steps, repeats = (1, 1) if quick else (4, 3)
    peak_repeats = 3 if quick else 5
    lines = ["| config | genes G | K | batch | dtype | samples/s | model GFLOP/sample | achieved GFLOP/s | "
             "matmul peak GFLOP/s | MFU |", "|---|---|---|---|---|---|---|---|---|---|"]
    tiny, s_shape = dict(dim=128, depth=4, heads=4), dict(dim=384, depth=6, heads=6, drop_path=0.0)
    cases = [("tiny", tiny, 20000, 256, 32, steps), ("tiny", tiny, 20000, 2048, 4, max(1, steps // 2)),
             ("S shape", s_shape, 20000, 256, 8, steps), ("S shape", s_shape, 20000, 2048, 2, max(1, steps // 2))]
    for name, kw, g, k, b, n_steps in cases:
        cfg = ModelConfig(n_genes=g, **kw)
        for dtype in (torch.float32, torch.bfloat16):
            # the peak is measured right before and after each case so that both sides of the ratio
            # see the same machine load
            before = matmul_peak(dtype, repeats=peak_repeats)
            rate = train_step_rate(cfg, synthetic_batch(cfg, b, k), dtype, n_steps, repeats)
            peak = (before + matmul_peak(dtype, repeats=peak_repeats)) / 2
            fl = flops_per_sample(cfg, k)
            lines.append(f"| {name} | {g} | {k} | {b} | {str(dtype).split('.')[1]} | {rate:.1f} | {fl / 1e9:.2f} | "
                         f"{rate * fl / 1e9:.1f} | {peak / 1e9:.1f} | {rate * fl / peak:.0%} |")
    # MAE asymmetry: the same encoder over all genes (mask values) vs the revealed 10% only
    g, k, b_mae, b_full = 2560, 256, 32, 4
    cfg = ModelConfig(n_genes=g, dim=128, depth=4, heads=4)
    mae = train_step_rate(cfg, synthetic_batch(cfg, b_mae, k), torch.float32, steps, repeats)
    full = train_step_rate(cfg, synthetic_batch(cfg, b_full, k, full=True), torch.float32, max(1, steps // 2), repeats)
    theory = flops_per_sample(cfg, g) / flops_per_sample(cfg, k)
    asym = ["| design | tokens in encoder | batch | samples/s | speed-up |", "|---|---|---|---|---|",
            f"| full sequence (all {g} genes, masked ones as mask values) | {g + 1} | {b_full} | {full:.2f} | 1.0x |",
            f"| TxFM (revealed genes only, {1 - k / g:.0%} masked) | {k + 1} | {b_mae} | {mae:.2f} | "
            f"{mae / full:.1f}x |"]
    # reader throughput vs trainer consumption at the tiny / K=256 setting
    with tempfile.TemporaryDirectory() as tmp:
        corpus = _bench_corpus(Path(tmp) / "c", 2048 if quick else 8192, 20000, 0.05)
        rd = reader_rate(corpus, 256, 32, 5 if quick else 20, repeats)
    tiny_cfg = ModelConfig(n_genes=20000, **tiny)
    consume = train_step_rate(tiny_cfg, synthetic_batch(tiny_cfg, 32, 256), torch.float32, steps, repeats)
    reader = ["| reader (1 worker, 20,000 genes, 5% non-zero, K=256, batch 32) | trainer (tiny, K=256, fp32) | "
              "workers needed |", "|---|---|---|",
              f"| {rd:.0f} samples/s | {consume:.0f} samples/s | {int(np.ceil(consume / rd))} |"]
    with tempfile.TemporaryDirectory() as tmp:   # the shared corpus's vocabulary, ~1,500 genes detected per cell
        corpus = _bench_corpus(Path(tmp) / "c", 512 if quick else 4096, 48573, 0.03)
        data_path = data_path_rows(corpus, 1 if quick else 3, 1.0 if quick else 6.0)
    emb = embed_rate(tiny_cfg, 512 if quick else 4096, repeats)
    inference = ["| forward-only embedding (`encode_counts`, tiny, K=256, default batch (16 on CPU), fp32, counts to CLS) | "
                 "training step (tiny, K=256, batch 32, fp32) | ratio |", "|---|---|---|",
                 f"| {emb:.0f} samples/s | {consume:.0f} samples/s | {emb / consume:.1f}x |"]
    text = "\n".join([
        "# TxFM benchmarks", "",
        f"Made by `python -m txfm bench{' --quick' if quick else ''}` on {platform.machine()} with "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}. Medians of {repeats} repeats.", "",
        "## Training throughput and model FLOP utilisation", "",
        "Forward + backward + AdamW on a fixed synthetic batch (data loading excluded; see the reader table). "
        "MFU = analytic model FLOPs/s (`txfm.model.flops_per_sample`, 3x forward) / measured dense matmul "
        "FLOP/s of this machine in the same dtype (1024^3 matmul, measured right before and after each row). "
        f"Load average when the run started: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.", "", *lines, "",
        "## MAE asymmetry", "",
        f"Same encoder (tiny, {g} genes); each design at a batch size that keeps its matmuls efficient; "
        f"throughput is per sample. Theoretical FLOP ratio {theory:.1f}x "
        f"(linear layers ~{(g + 1) / (k + 1):.0f}x, attention ~{((g + 1) / (k + 1)) ** 2:.0f}x).", "", *asym, "",
        "## Corpus reader", "",
        "The host side of the data path (shard reading, normalisation, reveal draws; the sparse batch it yields "
        "is densified by the trainer on its device, txfm.feed).", "", *reader, "",
        "## Data path: before and after device-side batches", "",
        "A synthetic corpus with the shared corpus's 48,573 genes and 3% non-zero (about 1,500 genes a cell). "
        "Before: the workers build the dense target and masks ((B, G) float32 + two bools) and ship them; now: "
        "on a GPU they ship the CSR values and the encoder's inputs (the bytes row) and the dense batch is built "
        "on the device; on a CPU, with workers they still densify (the same `txfm.feed.densify`, on a core beside "
        "the step, `txfm.feed.loader_source`), without workers the trainer does, so on a CPU both "
        "columns do the same work and their ratio shows this machine's spread between runs (two runs of this "
        "table gave 0.88-1.03 for the same code); the before/after training throughput on the CPU against the "
        "code of 23d5c5a itself is in docs/txfm.md.", "", *data_path, "",
        "## Inference", "",
        "Embedding samples (`txfm.inference.encode_counts`: normalisation, reveal, encoder forward, no dense "
        "target and no decoder) against the training step above, in the same run (20,000 genes, 5% non-zero).",
        "", *inference, ""])
    atomic_write_text(out, text)
    print(text)
    return text
