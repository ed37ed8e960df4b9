"""Checkpoints: plain types only, ``torch.load(weights_only=True)`` loadable,
written atomically, with the gene vocabulary and configs inside.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from common.atomic import atomic_path
from common.errors import ACCESS_ERRNOS, strip_unsafe_advice

from . import __version__
from .averaging import averaged_state
from .config import ModelConfig, TrainConfig, from_dict
from .model import TxFM

FORMAT = "txfm-checkpoint"
FORMAT_VERSION = 1
STEP_RE = re.compile(r"step-(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint is unreadable, of an unknown format/version, or does not match."""


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temp file in the same folder, then rename over ``path``."""
    with atomic_path(path) as tmp:      # a failure (disk full, interrupt) leaves the old file, no temp file
        with open(tmp, "wb") as f:      # our handle: closed at once on failure (torch's own may stay open)
            torch.save(obj, f)


# The fix for an unreadable file passed as --checkpoint (commands that walk a whole run skip it instead).
OTHER_CHECKPOINT = "pass another checkpoint (a run keeps step-*.pt files beside last.pt) or train again"


def load_file(path: str | os.PathLike, expected_format: str | tuple[str, ...] = FORMAT,
              fix: str = OTHER_CHECKPOINT) -> dict:
    """Load a checkpoint-like file safely (no unpickling) and check its format and version.
    `fix`: what the user can do about an unreadable file with the command at hand."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint; train one with `python -m txfm train ...`")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        if e.errno not in ACCESS_ERRNOS:      # torch reports a truncated file as EINVAL
            raise CheckpointError(f"{path}: not a readable TxFM checkpoint ({type(e).__name__}: "
                                  f"{strip_unsafe_advice(str(e))[:200]}); the file is truncated or corrupt; {fix}") from e
        raise                 # permission, I/O error: the error policy names the file and the cause
    except Exception as e:  # torch raises several types for truncated/corrupt/unsafe files
        why = f"{type(e).__name__}: {strip_unsafe_advice(str(e))[:200]}"
        raise CheckpointError(f"{path}: not a readable TxFM checkpoint ({why}); the file may be truncated or "
                              f"corrupt; {fix}") from e
    if not isinstance(ck, dict) or "format" not in ck:
        raise CheckpointError(f"{path}: not a TxFM checkpoint (no 'format' field)")
    formats = (expected_format,) if isinstance(expected_format, str) else expected_format
    if ck["format"] not in formats:
        raise CheckpointError(f"{path}: format is {ck['format']!r}, expected one of {formats}")
    if ck.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {ck.get('format_version')} is not supported "
                              f"(this txfm {__version__} reads version {FORMAT_VERSION}); upgrade txfm or re-export")
    return ck


def save_checkpoint(path: str | os.PathLike, model: TxFM, genes: list[str], gene_ids: list[str],
                    train_cfg: TrainConfig | None, optimizer=None, scheduler=None, step: int = 0,
                    samples_seen: int = 0, corpus: dict | None = None, extra: dict | None = None) -> None:
    """Write a checkpoint of the UNWRAPPED model (see docs/formats.md)."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    ck = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "txfm_version": __version__,
        "model_config": asdict(model.cfg), "train_config": asdict(train_cfg) if train_cfg else {},
        "genes": list(genes), "gene_ids": list(gene_ids),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "step": int(step), "samples_seen": int(samples_seen), "rng": rng,
        "corpus": corpus or {}, "n_parameters": int(model.n_parameters()),
    }
    if extra:
        ck.update(extra)
    atomic_torch_save(ck, path)


def load_model(path: str | os.PathLike, genes: list[str] | None = None,
               weights: str = "averaged") -> tuple[TxFM, dict]:
    """Rebuild the model from a checkpoint (eval mode, CPU). With ``genes``, the vocabulary must match.

    weights: "averaged" reads the run's weight average (``--ema``) where the checkpoint has one and the
    trained weights otherwise; "trained" always reads the trained weights."""
    if weights not in ("averaged", "trained"):
        raise ValueError(f"weights={weights!r}: expected 'averaged' or 'trained'")
    ck = load_file(path)
    if genes is not None and list(genes) != list(ck["genes"]):
        raise CheckpointError(vocabulary_mismatch(path, ck["genes"], genes))
    cfg = from_dict(ModelConfig, ck["model_config"])
    model = TxFM(cfg)
    try:
        model.load_state_dict(averaged_state(ck) if weights == "averaged" else ck["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match its model config ({str(e)[:200]})") from e
    model.eval()
    return model, ck


def vocabulary_mismatch(path, have: list[str], want: list[str]) -> str:
    extra, missing = set(want) - set(have), set(have) - set(want)
    how = (f"{len(missing)} checkpoint genes absent (e.g. {sorted(missing)[:3]}), "
           f"{len(extra)} new genes (e.g. {sorted(extra)[:3]})") if extra or missing else "same genes, different order"
    return (f"{path}: gene vocabulary differs from the corpus ({len(have)} vs {len(want)} genes; {how}); "
            f"resume or fine-tune only on a corpus built with the checkpoint's vocabulary")


def step_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """step-*.pt files of a run, oldest first."""
    files = [p for p in Path(run_dir).glob("step-*.pt") if STEP_RE.search(p.name)]
    return sorted(files, key=lambda p: int(STEP_RE.search(p.name).group(1)))


def prune(run_dir: str | os.PathLike, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step checkpoints (0 keeps all)."""
    if keep_last <= 0:
        return
    for p in step_checkpoints(run_dir)[:-keep_last]:
        p.unlink(missing_ok=True)
