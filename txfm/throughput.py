"""Training throughput through the real data path, on any device: corpus stream -> DataLoader workers ->
pinned copies and device-side batches (txfm.feed) -> the trainer's own step (txfm.trainer.train_step);
the loader alone; and model FLOP utilisation against a matmul peak measured on the same device in the
same run. Used by ``python -m txfm bench`` (CPU) and ``make gpu-check`` (GPU, docs/bench-gpu.md).

``host_dense=True`` measures the data path as it was before batches were densified on the device
(23d5c5a): the workers build the dense (B, G) target and masks and ship them. Row gathering is the new
one in both modes, so on a GPU the ratio isolates what crosses processes and the host-device link (on a
CPU with workers the trainer densifies in the workers too, ``txfm.feed.loader_source``).
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, IterableDataset

from .config import ModelConfig, TrainConfig
from .corpus import Corpus
from .dataset import BatchSpec, CorpusStream
from .feed import DeviceFeed, HostDense, loader_source
from .model import TxFM, flops_per_sample


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, device: torch.device | str = "cpu", n: int | None = None,
                repeats: int = 7) -> float:
    """Median dense matmul FLOP/s of an n x n @ n x n product in ``dtype`` on ``device`` (n: 8192 on a
    GPU, 1024 on a CPU)."""
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 1024)
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    inner = 10 if device.type == "cuda" else 4
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        synchronize(device)
        t = time.perf_counter()
        for _ in range(inner):
            a @ b
        synchronize(device)
        times.append((time.perf_counter() - t) / inner)
    return 2 * n ** 3 / statistics.median(times)


def batch_source(corpus: str, k: int, batch: int, device: torch.device, workers: int, host_dense: bool = False,
                 seed: int = 0) -> IterableDataset:
    """The host side of the trainer's batches on ``device`` with ``workers`` (its defaults for the library
    norm, dataset mixing and temperature, and its choice of where to densify, ``txfm.feed.loader_source``),
    or with ``host_dense`` the data path before device-side batches (dense batches from the workers)."""
    tc = TrainConfig(corpus=corpus, out="-")
    stream = CorpusStream(corpus, batch, BatchSpec(reveal=k, library_norm=tc.library_norm), seed=seed,
                          mix_shards=tc.mix_shards, temperature=tc.dataset_temperature)
    return HostDense(stream) if host_dense else loader_source(stream, torch.device(device), workers)


def batch_feed(source: IterableDataset, device: torch.device, workers: int) -> DeviceFeed:
    """Dense batches on ``device`` from ``source`` through ``workers`` DataLoader processes (pinned on CUDA)."""
    loader = DataLoader(source, batch_size=None, num_workers=workers, pin_memory=device.type == "cuda",
                        persistent_workers=False)
    path = source.stream.path if isinstance(source, HostDense) else source.path
    return DeviceFeed(loader, device, torch.from_numpy(Corpus(path).measured_matrix()))


def host_bytes(batch: dict[str, torch.Tensor]) -> int:
    return sum(v.nbytes for v in batch.values())


@dataclass
class Throughput:
    samples_per_s: float
    steps: int                # timed steps (after warm-up)
    peak_memory: int = 0      # bytes allocated on the GPU at the peak (0 on a CPU)
    error: str = ""           # e.g. out of memory: the row then holds no rate


def _timed(step, device: torch.device, batch: int, warmup_s: float, measure_s: float, min_steps: int = 3):
    """Run ``step`` for a warm-up (at least 2 steps and ``warmup_s`` seconds: workers started, kernels
    chosen), estimate its time, then time N steps that should last ``measure_s`` with one synchronisation
    at the end. Returns (samples/s, N)."""
    t0, n = time.perf_counter(), 0
    while n < 2 or time.perf_counter() - t0 < warmup_s:
        t = time.perf_counter()
        step()
        synchronize(device)
        n += 1
    per_step = time.perf_counter() - t
    steps = max(min_steps, min(2000, math.ceil(measure_s / max(per_step, 1e-6))))
    synchronize(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps * batch / (time.perf_counter() - t), steps


def training_throughput(corpus: str, model_cfg: ModelConfig, k: int, batch: int, device: torch.device | str,
                        precision: str = "bf16", workers: int = 0, host_dense: bool = False,
                        compile: bool = False, warmup_s: float = 3.0, measure_s: float = 5.0) -> Throughput:
    """Samples/s of the trainer's step fed by the real loader (``workers`` processes) on ``device``."""
    from .trainer import make_optimizer, train_step

    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    state = {}   # model, optimiser and feed, dropped on the way out so the next row starts with a free GPU
    try:
        torch.manual_seed(0)
        state["model"] = model = TxFM(model_cfg).to(device).train()
        tc = TrainConfig(corpus=corpus, out="-", reveal=k, batch_size=batch, precision=precision)
        opt, sched, _ = make_optimizer(model, tc, 100_000)
        state["opt"] = opt
        forward = torch.compile(model) if compile else model
        state["feed"] = feed = batch_feed(batch_source(corpus, k, batch, device, workers, host_dense), device, workers)
        rate, steps = _timed(lambda: train_step(forward, model, opt, sched, next(feed), device, precision,
                                                tc.grad_clip), device, batch, warmup_s, measure_s)
        return Throughput(rate, steps, _peak_memory(device))
    except torch.cuda.OutOfMemoryError:
        return Throughput(0.0, 0, _peak_memory(device), f"out of memory at batch {batch}")
    finally:
        state.clear()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _peak_memory(device: torch.device) -> int:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0


def loader_throughput(corpus: str, k: int, batch: int, device: torch.device | str, workers: int = 0,
                      host_dense: bool = False, warmup_s: float = 2.0, measure_s: float = 4.0) -> tuple[Throughput, int]:
    """Samples/s of the loader alone, dense batches delivered on ``device`` (no model), and the bytes one
    batch carries from the workers to the trainer process."""
    device = torch.device(device)
    source = batch_source(corpus, k, batch, device, workers, host_dense)
    probe = host_bytes(next(iter(source)))
    feed = batch_feed(source, device, workers)
    rate, steps = _timed(lambda: next(feed), device, batch, warmup_s, measure_s)
    return Throughput(rate, steps), probe


def mfu(samples_per_s: float, model_cfg: ModelConfig, k: int, peak: float) -> float:
    """Model FLOP utilisation: analytic training FLOP/s over the measured matmul peak."""
    return samples_per_s * flops_per_sample(model_cfg, k) / peak if peak > 0 else float("nan")


__all__ = ["matmul_peak", "training_throughput", "loader_throughput", "batch_source", "batch_feed", "mfu",
           "Throughput", "HostDense", "host_bytes", "synchronize"]
