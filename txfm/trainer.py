"""Training loop: AdamW + one-cycle cosine, gradient clipping, bf16 autocast,
DDP under torchrun, validation, metrics log, checkpoints and exact resume.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm import tqdm

from common.atomic import atomic_path, atomic_write_json, atomic_write_text
from common.errors import UserError, write_failure
from common.outputs import (check_output_target, commit_dir, discard_staging, is_empty_dir, remove_stale_staging,
                            stage_dir)

from .averaging import WeightAverage
from .checkpoint import load_file, prune, save_checkpoint, step_checkpoints, vocabulary_mismatch, CheckpointError
from .config import ModelConfig, TrainConfig, from_dict
from .corpus import Corpus
from .dataset import BatchSpec, CorpusStream, detection_counts, gene_statistics, validation_batches
from .feed import DeviceFeed, loader_source
from .masking import frequency_weights
from .model import TxFM


class TrainingDiverged(RuntimeError):
    """The loss stopped being finite."""


def _dist_setup(device_pref: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device_pref == "auto" else device_pref.startswith("cuda")
    if use_cuda:
        device = torch.device(f"cuda:{local}" if device_pref in ("auto", "cuda") else device_pref)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if "RANK" in os.environ and not dist.is_initialized():   # launched by torchrun, even with one process:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")   # the run then goes through DDP
    return rank, world, device


def total_steps(cfg: TrainConfig, n_train: int) -> int:
    return cfg.max_steps if cfg.max_steps > 0 else max(1, math.ceil(cfg.epochs * n_train / cfg.batch_size))


def warmup_pct(warmup: float, steps: int) -> float:
    """The `pct_start` handed to OneCycleLR for a warm-up fraction over `steps` steps.

    OneCycleLR ramps up over steps 0 .. warmup x steps - 1 and anneals over the rest; it divides by
    the length of each phase, so a warm-up of exactly one step (``--max-steps 10`` at the default
    0.1) or an annealing phase under one step crashes it. A warm-up that would span fewer than two
    steps is dropped (there is nothing to ramp between), and the warm-up is capped so that the
    annealing phase keeps at least one step. Every other combination is passed through unchanged."""
    w = float(warmup) * steps
    if w > steps - 1.0:
        w = steps - 1.0
        return w / steps if w >= 2.0 else 0.0
    return float(warmup) if w >= 2.0 else 0.0


def make_optimizer(model: TxFM, cfg: TrainConfig, steps: int):
    """AdamW (decay on matrices and the codebook, none on norms/biases/gains) and one-cycle cosine."""
    wd = cfg.weight_decay if cfg.weight_decay >= 0 else 1.0 / (cfg.lr * steps)
    own_rate = cfg.codebook_lr_mult != 1.0  # the codebook in a third group of its own (two groups otherwise)
    codebook = model.codebook.weight
    decay = [p for p in model.parameters() if p.ndim >= 2 and not (own_rate and p is codebook)]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    max_lr = [cfg.lr, cfg.lr]
    if own_rate:
        groups.append({"params": [codebook], "weight_decay": wd})
        max_lr.append(cfg.lr * cfg.codebook_lr_mult)
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                            fused=True if _fused_adamw(model) else None)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps,
                                                pct_start=warmup_pct(cfg.warmup, steps),
                                                anneal_strategy="cos", cycle_momentum=False)
    return opt, sched, wd


def _fused_adamw(model: torch.nn.Module) -> bool:
    """Fused AdamW (one kernel for all parameters) on CUDA; the default implementation elsewhere, so CPU
    runs keep their numbers."""
    return next(model.parameters()).device.type == "cuda"


def _set_fused(opt: torch.optim.Optimizer, fused: bool) -> None:
    """After loading an optimiser state saved on another kind of device: the implementation this device
    uses (a loaded state keeps the saved one's), with the step counters where that implementation wants
    them (on the parameters' device for fused, on the host otherwise)."""
    for group in opt.param_groups:
        group["fused"], group["foreach"] = (True, False) if fused else (None, None)
        for p in group["params"]:
            st = opt.state.get(p, {})
            if "step" in st:
                st["step"] = st["step"].to(p.device if fused else "cpu", torch.float32)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 on CUDA, fp32 on a CPU (``--precision bf16`` asks for bf16 autocast there).

    The choice depends on the device only: it used to time a bf16 against an fp32 matmul at the start
    of a CPU run, and on a loaded machine the same command then trained in either precision from one
    run to the next (docs/training-recipe.md, experiment 17)."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" else "fp32"


def _autocast(device: torch.device, precision: str):
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def _atomic_copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric rows logged after ``step`` (written by a run killed after its last checkpoint)."""
    if not path.exists():
        return
    rows = [r for r in path.read_text().splitlines() if r.strip() and json.loads(r).get("step", 0) <= step]
    atomic_write_text(path, "".join(r + "\n" for r in rows))


# Options that may differ on --resume without changing what the run computes: where/how it runs and
# its bookkeeping, plus --max-steps to extend (or shorten, not below the last checkpoint) the run.
# Every other TrainConfig / ModelConfig option given with --resume must equal the run's own.
SAFE_ON_RESUME = ("corpus", "out", "workers", "device", "log_every", "save_every", "keep_last", "max_steps", "compile")


def is_run(path: str | os.PathLike) -> bool:
    """Whether `path` is a training run folder (the trainer's own kind of output)."""
    p = Path(path)
    if (p / "last.pt").is_file() or step_checkpoints(p):
        return True
    try:
        return "train" in json.loads((p / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def _opt(name: str) -> str:
    return "--" + name.replace("_", "-")


def resume_changes(stored_train: TrainConfig, stored_model: ModelConfig, given: dict) -> list[str]:
    """'--opt OLD -> NEW' for every option in `given` (explicitly passed) that differs from the run's
    stored configs and is not in SAFE_ON_RESUME."""
    changed = []
    for name, value in given.items():
        if name in SAFE_ON_RESUME:
            continue
        if name in {f.name for f in fields(TrainConfig)}:
            old = getattr(stored_train, name)
        elif name in {f.name for f in fields(ModelConfig)}:
            old = getattr(stored_model, name)
        else:
            continue
        if name == "precision" and value == "auto":
            continue                      # 'auto' was resolved when the run started; the resolved value is kept
        if old != value and not (isinstance(old, (int, float)) and isinstance(value, (int, float)) and
                                 float(old) == float(value)):
            changed.append(f"{_opt(name)} {old} -> {value}")
    return changed


@torch.no_grad()
def evaluate(model: TxFM, batches, precision: str) -> dict[str, float]:
    """Mean loss parts over the given dense batches on the model's device (eval mode)."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    sums, n = {}, 0
    for batch in batches:
        with _autocast(device, precision):
            parts, _ = model(batch)
        for k, v in parts.as_floats().items():
            sums[k] = sums.get(k, 0.0) + v
        n += 1
    model.train(was)
    return {f"val_{k}": v / n for k, v in sums.items()} if n else {}


@dataclass
class _Run:
    """Everything the training loop needs, prepared by `train` (one object instead of many arguments)."""
    cfg: TrainConfig
    model_cfg: ModelConfig
    model: TxFM
    ddp: torch.nn.Module              # the model, wrapped in DDP when launched by torchrun
    forward: torch.nn.Module          # what a step calls: ddp, compiled with --compile
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    wd: float                         # the weight decay in use (recorded in config.json)
    ema: WeightAverage | None         # the weights' moving average (--ema), or None
    corpus: Corpus
    val: np.ndarray                   # (n_samples,) bool, the validation split
    n_train: int
    steps: int                        # total steps of the schedule
    start: int                        # step the loop starts after (0, or the resumed step)
    samples_seen: int
    support: list                     # datasets measuring each gene well (saved in every checkpoint)
    spec: BatchSpec
    loader: DataLoader
    local_bs: int                     # samples per rank and step
    device: torch.device
    world: int
    is_main: bool
    quiet: bool
    resume: bool
    out: Path                         # the run folder the user named
    write_dir: Path                   # where files go: `out`, or a staging sibling when replacing a run


def train(cfg: TrainConfig, model_cfg: ModelConfig | None = None, resume: bool = False,
          quiet: bool = False, given: dict | None = None, overwrite: bool = False) -> Path:
    """Train (or resume) a run; returns the path of the final checkpoint (``out/last.pt``).

    model_cfg: the architecture for a new run (its n_genes must equal the corpus vocabulary);
    ignored when resuming (the checkpoint's config is used).
    given: with `resume`, the options passed explicitly (TrainConfig/ModelConfig field -> value): any
        that differs from the run's own and is not in SAFE_ON_RESUME is refused, naming each; the safe
        ones are applied. None (the API default): the run's options are kept, except corpus, out,
        workers and device taken from `cfg`.
    overwrite: a new run may replace an existing run at cfg.out (built in a staging sibling and swapped
        in when training finishes). Without it an existing run is refused (resume it, or choose a new
        out); a folder that is not a run is always refused.
    """
    out = Path(cfg.out)
    existed = out.exists()
    write_dir = _output_dir(cfg, resume, overwrite)
    rank, world, device = _dist_setup(cfg.device)
    corpus = Corpus(cfg.corpus)
    corpus.verify()  # edited manifest, damaged or negative shards: refused before any output is written
    ck = None
    if resume:
        ck = load_file(out / "last.pt", fix=f"to resume from an earlier checkpoint, copy one of {out}/step-*.pt onto "
                                            f"{out / 'last.pt'}; or start the run again with --overwrite")
        if ck["genes"] != corpus.genes:
            raise CheckpointError(vocabulary_mismatch(out / "last.pt", ck["genes"], corpus.genes))
        cfg, model_cfg = _resumed_config(cfg, ck, given, out)
    if model_cfg is None or model_cfg.n_genes != corpus.n_genes:
        raise ValueError(f"model n_genes must equal the corpus vocabulary ({corpus.n_genes} genes)")
    if ck is None:  # a resumed run keeps the precision its first part resolved
        cfg = replace(cfg, precision=resolve_precision(cfg.precision, device))
    if cfg.batch_size % world:
        raise ValueError(f"batch size {cfg.batch_size} must be divisible by the number of ranks {world}")

    val = corpus.split(cfg.val_by, cfg.val_fraction, cfg.seed)
    train_rows = ~val
    n_train = int(train_rows.sum())
    steps = total_steps(cfg, n_train)
    torch.manual_seed(cfg.seed)
    model = TxFM(model_cfg).to(device)
    opt, sched, wd = make_optimizer(model, cfg, steps)
    ema = WeightAverage(model, cfg.ema) if cfg.ema > 0 else None
    start = samples_seen = 0
    if ck is not None:
        start, samples_seen, wd = _restore(ck, model, opt, sched, steps, device, out, ema)
    weights = None
    if cfg.reveal_tau != 0:
        weights = frequency_weights(detection_counts(corpus, train_rows), cfg.reveal_tau)
    spec = BatchSpec(cfg.reveal, cfg.preprocessing, model_cfg.library_size, weights, cfg.library_norm,
                     cfg.reveal_detected, cfg.reveal_fraction)
    support = (ck or {}).get("corpus", {}).get("gene_support")
    if support is None:  # per-gene count of datasets measuring it well: the honest recall population downstream
        support, log_mean = gene_statistics(corpus, train_rows, spec)
        support = support.tolist()
        if ck is None and cfg.output_bias_init:
            model.init_output_bias(torch.from_numpy(log_mean))

    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if dist.is_initialized() else model
    local_bs = cfg.batch_size // world
    stream = CorpusStream(cfg.corpus, local_bs, spec, train_rows, cfg.seed, rank, world, start_batch=start,
                          mix_shards=cfg.mix_shards, temperature=cfg.dataset_temperature)
    loader = DataLoader(loader_source(stream, device, cfg.workers), batch_size=None, num_workers=cfg.workers,
                        pin_memory=device.type == "cuda",
                        generator=torch.Generator().manual_seed(cfg.seed),  # keeps the global RNG untouched
                        persistent_workers=False)
    forward = torch.compile(ddp) if cfg.compile else ddp
    run = _Run(cfg, model_cfg, model, ddp, forward, opt, sched, wd, ema, corpus, val, n_train, steps, start, samples_seen,
               support, spec, loader, local_bs, device, world, rank == 0, quiet, resume, out, write_dir)

    staged = run.is_main and write_dir != out
    fresh = run.is_main and not resume and write_dir == out      # a new run written in place
    if staged:
        remove_stale_staging(out)
    if fresh:
        (out / "metrics.jsonl").unlink(missing_ok=True)    # rows of an earlier start that saved no checkpoint
    try:
        _loop(run)
    except BaseException as e:
        for bar in list(getattr(tqdm, "_instances", ())):    # end the progress line: the error gets its own
            bar.close()
        if staged:
            err = discard_staging(write_dir, out, e)       # the run being replaced stays as it was
        else:
            err = write_failure(e, out)                    # a full disk, read-only folder ... named by `out`
            if fresh and not has_checkpoint(out):
                _remove_unsaved_run(out, created=not existed)
        if err is e:
            raise
        raise err from e
    if staged:
        commit_dir(write_dir, out)
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return out / "last.pt"


def has_checkpoint(path: str | os.PathLike) -> bool:
    """Whether the run folder `path` holds a checkpoint (``last.pt`` or a ``step-*.pt``)."""
    return (Path(path) / "last.pt").is_file() or bool(step_checkpoints(path))


def _remove_unsaved_run(out: Path, created: bool) -> None:
    """After a new run failed before its first checkpoint: delete the files it wrote (config.json,
    metrics.jsonl), and the folder when this run created it and nothing else is in it."""
    for name in ("config.json", "metrics.jsonl"):
        (out / name).unlink(missing_ok=True)
    if created and out.is_dir() and is_empty_dir(out):
        shutil.rmtree(out, ignore_errors=True)


def _output_dir(cfg: TrainConfig, resume: bool, overwrite: bool) -> Path:
    """Where the run's files go: ``cfg.out``, or a staging sibling when an existing run is replaced.
    Refuses a resume with nothing to resume, an existing run without --resume/--overwrite, and a
    folder that is not a run. A run that stopped before its first checkpoint (killed, disk full) is
    started again in place without --overwrite: it holds nothing to keep."""
    out = Path(cfg.out)
    if resume:
        if not (out / "last.pt").exists():
            steps = step_checkpoints(out) if out.is_dir() else []
            if steps:
                raise CheckpointError(f"{out / 'last.pt'}: missing, so there is nothing to resume; copy the newest "
                                      f"checkpoint ({steps[-1]}) onto {out / 'last.pt'} to resume from it")
            if out.is_dir() and is_run(out):
                raise CheckpointError(f"{out}: the run there stopped before saving its first checkpoint, so there "
                                      "is nothing to resume; start it again without --resume")
            raise CheckpointError(f"{out / 'last.pt'}: nothing to resume; start the run without --resume")
        return out
    if out.is_dir() and not is_empty_dir(out) and is_run(out) and not overwrite:
        if not has_checkpoint(out):
            return out
        raise UserError(f"{out}: a training run already exists there; pass --resume to continue it, "
                        "--overwrite to replace it, or choose a new --out")
    if check_output_target(out, "training run", is_run, overwrite, protect=[cfg.corpus]):
        return stage_dir(out)
    return out


def _resumed_config(cfg: TrainConfig, ck: dict, given: dict | None, out: Path) -> tuple[TrainConfig, ModelConfig]:
    """The (train, model) configs of a resumed run: its own, with the options that may change applied."""
    stored = from_dict(TrainConfig, ck["train_config"])
    model_cfg = from_dict(ModelConfig, ck["model_config"])
    if given is None:
        return replace(stored, out=cfg.out, corpus=cfg.corpus, workers=cfg.workers, device=cfg.device), model_cfg
    changed = resume_changes(stored, model_cfg, given)
    if changed:
        raise UserError(f"--resume {out}: these options differ from the run's own: {'; '.join(changed)}. "
                        f"Resume without them (only {', '.join(_opt(s) for s in SAFE_ON_RESUME)} may "
                        "change on resume), or start a new run with a new --out")
    safe = {k: v for k, v in given.items() if k in SAFE_ON_RESUME}
    if safe.get("max_steps") is not None and 0 < safe["max_steps"] < ck["step"]:
        raise UserError(f"--max-steps {safe['max_steps']}: the run in {out} is already at step "
                        f"{ck['step']}; pass at least {ck['step']}")
    if safe.get("max_steps") is not None and safe["max_steps"] <= 0 and stored.max_steps > 0:
        raise UserError(f"--max-steps {safe['max_steps']}: the run in {out} counts steps with "
                        f"--max-steps {stored.max_steps}; pass a positive step count")
    return replace(stored, out=cfg.out, corpus=cfg.corpus,
                   **{k: v for k, v in safe.items() if k not in ("out", "corpus")}), model_cfg


def _restore(ck: dict, model: TxFM, opt, sched, steps: int, device: torch.device, out: Path,
             ema: WeightAverage | None = None) -> tuple[int, int, float]:
    """Load a checkpoint's model, optimiser, schedule, weight average and RNG state; (start step, samples seen,
    weight decay)."""
    if ck["step"] > steps:
        raise UserError(f"--resume {out}: the run is at step {ck['step']}, past the {steps} steps its options "
                        "give; pass --max-steps N with N >= the current step")
    model.load_state_dict(ck["model"])
    if ema is not None:
        if "ema_model" not in ck:
            raise CheckpointError(f"{out / 'last.pt'}: the run keeps a weight average (--ema) but this checkpoint holds "
                                  "none; copy one of its step-*.pt onto last.pt, or start the run again with --overwrite")
        ema.load_state_dict(ck["ema_model"])
    opt.load_state_dict(ck["optimizer"])       # restores lr and the weight decay the run started with
    _set_fused(opt, _fused_adamw(model))
    if ck["scheduler"].get("total_steps", steps) == steps:
        sched.load_state_dict(ck["scheduler"])
    else:   # --max-steps changed: the remaining steps follow the one-cycle schedule of the new total
        sched.last_epoch, sched._step_count = ck["step"], ck["step"] + 1
    torch.set_rng_state(ck["rng"]["torch"])
    if device.type == "cuda" and "cuda" in ck["rng"]:
        torch.cuda.set_rng_state_all(ck["rng"]["cuda"])
    return ck["step"], ck["samples_seen"], opt.param_groups[0]["weight_decay"]


def _loop(run: _Run) -> None:
    """The training loop: steps, validation, metrics log and checkpoints, written into run.write_dir."""
    cfg, model_cfg, model, opt, sched, wd = run.cfg, run.model_cfg, run.model, run.opt, run.sched, run.wd
    corpus, val, n_train, steps, start, samples_seen = (run.corpus, run.val, run.n_train, run.steps, run.start,
                                                        run.samples_seen)
    device, world, is_main, quiet, resume, loader = (run.device, run.world, run.is_main, run.quiet, run.resume,
                                                     run.loader)
    spec, local_bs, out, wdir = run.spec, run.local_bs, run.out, run.write_dir
    metrics_path = wdir / "metrics.jsonl"
    if is_main:
        wdir.mkdir(parents=True, exist_ok=True)
        if resume:
            _truncate_metrics(metrics_path, start)
        atomic_write_json(wdir / "config.json", {"train": asdict(cfg), "model": asdict(model_cfg),
                                                 "weight_decay_used": wd, "total_steps": steps,
                                                 "n_train": n_train, "n_val": int(val.sum()),
                                                 "world_size": world}, indent=2)
        if not quiet:
            print(f"TxFM {cfg.preset}: {model.n_parameters():,} parameters "
                  f"(codebook {model.codebook.weight.numel():,}, decoder out {model.decoder.out.weight.numel():,}); "
                  f"{corpus.n_genes:,} genes, {n_train:,} train / {int(val.sum()):,} val samples; "
                  f"{steps:,} steps of {cfg.batch_size}; device {device} ({cfg.precision}), ranks {world}"
                  + (f" ({dist.get_backend()})" if dist.is_initialized() else "") + (", compiled" if cfg.compile else ""))
    corpus_info = {"path": str(cfg.corpus), "fingerprint": corpus.fingerprint, "n_samples": corpus.n_samples,
                   "n_genes": corpus.n_genes, "n_train": n_train, "datasets": [d.name for d in corpus.datasets],
                   "gene_support": run.support}
    if spec.gene_weights is not None:  # inference reveals genes with the law training used
        corpus_info["reveal_weights"] = [float(w) for w in spec.gene_weights]

    def checkpoint(step: int) -> None:
        path = wdir / f"step-{step:07d}.pt"
        save_checkpoint(path, model, corpus.genes, corpus.gene_ids, cfg, opt, sched, step, samples_seen,
                        corpus_info, extra=None if run.ema is None else {"ema_model": run.ema.state_dict()})
        _atomic_copy(path, wdir / "last.pt")
        prune(wdir, cfg.keep_last)

    def log(row: dict) -> None:
        with open(metrics_path, "a") as fh:
            fh.write(json.dumps(row) + "\n")

    bar = tqdm(total=steps, initial=start, disable=quiet or not is_main, unit="step", dynamic_ncols=True)
    model.train()
    feed = DeviceFeed(loader, device, torch.from_numpy(corpus.measured_matrix()))
    diverged = torch.zeros((), dtype=torch.long, device=device)   # first step whose loss was not finite (0: none)
    t0, seen0 = time.perf_counter(), samples_seen
    for step in range(start + 1, steps + 1):
        parts, gnorm = train_step(run.forward, model, opt, sched, next(feed), device, cfg.precision, cfg.grad_clip)
        diverged = torch.where((diverged == 0) & ~torch.isfinite(parts.loss.detach()), step, diverged)
        if run.ema is not None:
            run.ema.update(model, step)
        samples_seen += cfg.batch_size
        logging = step % cfg.log_every == 0 or step == steps
        saving = step % cfg.save_every == 0 or step == steps
        if logging or saving:  # the only points where the host waits for the device
            _check_finite(diverged, out, bar)
        if is_main and logging:
            el = time.perf_counter() - t0
            row = {"step": step, "samples_seen": samples_seen, "lr": sched.get_last_lr()[0],
                   **parts.as_floats(), "grad_norm": float(gnorm),
                   "samples_per_s": (samples_seen - seen0) / el if el > 0 else 0.0, "elapsed_s": el}
            if (cfg.val_every and step % cfg.val_every == 0) or step == steps:
                batches = validation_batches(corpus, val, local_bs, spec, cfg.val_batches, cfg.seed)
                row.update(evaluate(model, DeviceFeed(batches, device, feed.measured), cfg.precision))
            log(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}", sps=f"{row['samples_per_s']:.0f}")
        if is_main and saving:
            checkpoint(step)
        bar.update(1)
    bar.close()


def train_step(forward, model: TxFM, opt: torch.optim.Optimizer, sched, batch: dict[str, torch.Tensor],
               device: torch.device, precision: str, grad_clip: float):
    """One optimisation step on a dense batch on ``device``: forward under autocast, backward, clip, AdamW,
    schedule. Nothing here waits for the device; returns (LossParts, grad norm) as device tensors.
    ``forward`` is the model as called (DDP-wrapped and/or compiled), ``model`` the module it wraps."""
    with _autocast(device, precision):
        parts, _ = forward(batch)
    opt.zero_grad(set_to_none=True)
    parts.loss.backward()
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    opt.step()
    sched.step()
    return parts, gnorm


def _check_finite(diverged: torch.Tensor, out: Path, bar) -> None:
    """Stop the run if any rank saw a non-finite loss since it started (read at log and save steps only,
    so that steps in between never wait for the device; nothing is saved after such a step)."""
    flag = diverged.clone()
    if dist.is_initialized():
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    first = int(flag.item())
    if first:
        bar.close()
        raise TrainingDiverged(
            f"loss is not finite at step {first}; the run stopped without saving. "
            f"Lower --lr, use --activation rect_tanh (plain relu is known to diverge), or check the corpus "
            f"for extreme counts. Last good checkpoint: {out / 'last.pt'}")


__all__ = ["train", "train_step", "evaluate", "TrainingDiverged", "total_steps", "make_optimizer", "warmup_pct"]
