"""Ablation grid: axes, variants, the shared budget, and training one variant (see ablate.py).

Grid axes are TrainConfig or ModelConfig fields (loss, activation, preprocessing, reveal, ...).
The FIRST value of each axis is the reference. Design "oat" (default, as the paper's ablations)
changes one axis at a time from the reference; "full" trains the Cartesian product.
"""
from __future__ import annotations

import itertools
import json
import time
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from .report import write_json

_NOT_AXES = {"corpus", "out", "n_genes", "max_steps", "epochs", "seed", "device", "workers", "batch_size"}


@dataclass(frozen=True)
class Budget:
    """What every variant gets (the same for all)."""
    preset: str = "tiny"  # model size preset
    dim: int | None = None  # override of the preset's width (None = preset)
    depth: int | None = None  # override of the preset's depth
    heads: int | None = None  # override of the preset's heads
    max_steps: int = 300  # optimiser steps per variant
    batch_size: int = 32  # samples per step
    reveal: int = 256  # K for variants whose grid does not set it
    lr: float = 1e-3  # peak learning rate
    seeds: tuple[int, ...] = (0,)  # one run per seed; the table shows mean and spread
    workers: int = 0  # DataLoader workers
    device: str = "auto"


def _axis_fields() -> dict[str, tuple[type, object]]:
    """{field name: (owner dataclass, type hint)} of every field a grid may vary."""
    from txfm.config import ModelConfig, TrainConfig

    out = {}
    for cls in (TrainConfig, ModelConfig):
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if f.name not in _NOT_AXES:
                out[f.name] = (cls, hints[f.name])
    return out


def _convert(axis: str, raw: str, hint) -> object:
    if typing.get_origin(hint) is typing.Literal:
        allowed = typing.get_args(hint)
        if raw not in allowed:
            raise ValueError(f"--grid {axis}={raw}: {raw!r} is not one of {list(allowed)}")
        return raw
    try:
        return {int: int, float: float, str: str, bool: lambda s: s.lower() in ("1", "true", "yes")}[hint](raw)
    except (KeyError, ValueError) as e:
        raise ValueError(f"--grid {axis}={raw}: cannot read {raw!r} as {getattr(hint, '__name__', hint)}") from e


def parse_grid(specs: list[str]) -> dict[str, list]:
    """['loss=poisson,mse', 'reveal=128,64'] -> {'loss': ['poisson', 'mse'], 'reveal': [128, 64]} (order kept)."""
    known = _axis_fields()
    grid: dict[str, list] = {}
    for spec in specs:
        axis, sep, vals = spec.partition("=")
        axis = axis.strip().replace("-", "_")
        if not sep or not vals.strip():
            raise ValueError(f"--grid {spec!r}: write AXIS=V1,V2,... (e.g. loss=poisson,mse)")
        if axis not in known:
            raise ValueError(f"--grid {spec!r}: unknown axis {axis!r}; choose among {sorted(known)}")
        if axis in grid:
            raise ValueError(f"--grid: axis {axis!r} given twice")
        values = [_convert(axis, v.strip(), known[axis][1]) for v in vals.split(",") if v.strip()]
        if len(set(map(str, values))) != len(values):
            raise ValueError(f"--grid {spec!r}: a value is repeated")
        grid[axis] = values
    if not grid:
        raise ValueError("--grid needs at least one AXIS=V1,V2,... ")
    return grid


def variants(grid: dict[str, list], design: str = "oat") -> list[dict]:
    """The variants to train, the reference (first value of every axis) first."""
    ref = {a: v[0] for a, v in grid.items()}
    if design == "oat":
        return [ref] + [{**ref, a: x} for a, vals in grid.items() for x in vals[1:]]
    if design == "full":
        return [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    raise ValueError(f"unknown design {design!r}; use 'oat' or 'full'")


def variant_name(v: dict, ref: dict) -> str:
    diff = [f"{a}={x}" for a, x in v.items() if x != ref[a]]
    return ",".join(diff) if diff else "reference"


def configs(corpus: str, run_dir: Path, variant: dict, seed: int, budget: Budget, n_genes: int):
    """(TrainConfig, ModelConfig) of one run."""
    from txfm.config import ModelConfig, TrainConfig, model_config

    known = _axis_fields()
    tkw = {a: x for a, x in variant.items() if known[a][0] is TrainConfig}
    mkw = {a: x for a, x in variant.items() if known[a][0] is ModelConfig}
    base = dict(preset=budget.preset, reveal=budget.reveal, lr=budget.lr, batch_size=budget.batch_size,
                max_steps=budget.max_steps, val_every=0, save_every=budget.max_steps, keep_last=1, log_every=10)
    tc = TrainConfig(corpus=str(corpus), out=str(run_dir), seed=seed, workers=budget.workers, device=budget.device,
                     **{**base, **tkw})
    sizes = {"dim": budget.dim, "depth": budget.depth, "heads": budget.heads}
    mc = model_config(tc.preset, n_genes, **{**sizes, **mkw})
    return tc, mc


def _same(stored: dict, cfg) -> bool:
    want = {k: v for k, v in asdict(cfg).items() if k not in ("out", "corpus", "workers", "device")}
    if want.get("precision") == "auto":  # a run stores the precision "auto" resolved to on its machine
        want.pop("precision")
    return all(stored.get(k) == v for k, v in want.items())


def train_variant(tc, mc, progress: bool = True, only_finished: bool = False) -> dict:
    """Train one run (or reuse a finished identical one). Returns status, checkpoint, losses, seconds.
    only_finished: never train; a run without a finished identical checkpoint gets status "not run"."""
    from txfm.checkpoint import load_file
    from txfm.trainer import TrainingDiverged, train

    run = Path(tc.out)
    last, marker = run / "last.pt", run / "diverged.json"
    if marker.is_file():
        d = json.loads(marker.read_text())
        if _same(d["train_config"], tc) and _same(d["model_config"], mc):
            return {"status": "diverged", "message": d["message"], "checkpoint": None, "train_seconds": d["seconds"]}
    if last.is_file():
        ck = load_file(last)
        if ck["step"] == tc.max_steps and _same(ck["train_config"], tc) and _same(ck["model_config"], mc):
            return {"status": "ok", "checkpoint": str(last), **_losses(run), "reused": True}
    if only_finished:
        return {"status": "not run", "checkpoint": None, "train_seconds": float("nan")}
    t0 = time.perf_counter()
    try:
        train(tc, mc, quiet=not progress, overwrite=True)   # the ablation's own run folder
    except TrainingDiverged as e:
        secs = round(time.perf_counter() - t0, 1)
        write_json({"message": str(e), "seconds": secs, "train_config": asdict(tc), "model_config": asdict(mc)}, marker)
        return {"status": "diverged", "message": str(e).split(";")[0], "checkpoint": None, "train_seconds": secs}
    return {"status": "ok", "checkpoint": str(last), **_losses(run), "train_seconds": round(time.perf_counter() - t0, 1)}


def _losses(run: Path) -> dict:
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines() if r.strip()]
    last = rows[-1] if rows else {}
    return {"final_loss": float(last.get("loss", np.nan)), "val_loss": float(last.get("val_loss", np.nan)),
            "train_seconds": round(float(last.get("elapsed_s", np.nan)), 1)}


def find_screen(corpus, control: str) -> str:
    """The corpus dataset whose obs 'perturbation' column holds the control label."""
    obs = corpus.obs
    if "perturbation" not in obs.columns:
        raise ValueError(f"{corpus.path}: obs has no 'perturbation' column; pass --perturbation-dataset none")
    hit = obs.loc[obs["perturbation"].astype(str) == control, "dataset"].astype(str).unique()
    if len(hit) != 1:
        raise ValueError(f"{corpus.path}: {len(hit)} datasets have perturbation == {control!r} ({list(hit)}); "
                         "pass --perturbation-dataset NAME")
    return str(hit[0])
