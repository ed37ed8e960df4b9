"""A training run as a series of light bundles, one per saved checkpoint (`python -m precompute series`).

Output folder (docs/formats.md "Run series")::

    bundles/NAME-series/
      series.json          {"format": "txfm-run-series", "format_version": 1, "created", "run",
                            "checkpoints": [{"step", "samples_seen", "checkpoint", "bundle"}, ...] by step,
                            "params": the light bundle parameters, "pca": PCA bundle path or null}
      step-0000050/ ...    one bundle per checkpoint (the usual layout), built by the bundle pipeline

"Light": the pipeline's steps with fewer nulls, one module resolution and a shorter UMAP, so a run of
ten 45,000-gene checkpoints takes minutes, not an hour; the recall population is each bundle's honest
one, as everywhere. The folder is built in a hidden staging sibling and renamed when every bundle is
written; an existing series is replaced only with ``overwrite`` (its still-valid bundles are reused).
The app's Training run page reads it (recall against samples seen, a gene's neighbourhood step by
step, the map at a step).
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from common.errors import UserError
from common.outputs import staged_output

from .bundle.files import SERIES_FILE, SERIES_FORMAT, now_iso, write_json_atomic
from .params import BundleParams
LIGHT = dict(n_nulls=1, umap_epochs=50, resolutions=(1.0,))
_STEP = re.compile(r"^step-(\d+)\.pt$")


def is_series(path: Path) -> bool:
    """Whether ``path`` is a folder written by :func:`build_series`."""
    try:
        return json.loads((Path(path) / SERIES_FILE).read_text()).get("format") == SERIES_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def light_params(params: BundleParams | None = None) -> BundleParams:
    """The bundle parameters of a series: ``params`` with fewer nulls, one resolution, a shorter UMAP."""
    return replace(params or BundleParams(), **LIGHT)


def run_checkpoints(run: Path) -> list[Path]:
    """The run's step checkpoints by step, then last.pt (skipped by the build when its step is already in)."""
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"{run}: run folder not found; pass the folder `txfm train --out` wrote")
    found = sorted((int(m.group(1)), p) for p in run.iterdir() if (m := _STEP.match(p.name)))
    out = [p for _, p in found] + ([run / "last.pt"] if (run / "last.pt").is_file() else [])
    if not out:
        raise UserError(f"{run}: no checkpoints (step-*.pt or last.pt); train with --save-every N to keep "
                        "checkpoints along the run")
    return out


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def build_series(run: Path | str, out: Path | str, references: Path | str, params: BundleParams | None = None,
                 pca: Path | str | None = None, overwrite: bool = False, progress: bool = True, log=print,
                 warn=_warn) -> Path:
    """Build one light bundle per checkpoint of ``run`` into the series folder ``out``; return it.

    A checkpoint that cannot be read (truncated, damaged) is skipped with a warning and listed under
    "skipped" in series.json; the series is refused only when no checkpoint can be read."""
    from tqdm.auto import tqdm
    from txfm.checkpoint import OTHER_CHECKPOINT, CheckpointError

    from .checkpoint_source import load_gene_matrices
    from .pipeline import build_bundle
    run, out, references = Path(run), Path(out), Path(references)
    checkpoints = run_checkpoints(run)
    if not references.is_dir():
        raise UserError(f"{references}: reference folder not found; run `python -m data fetch-references` "
                        "or pass --references DIR")
    lp = light_params(params)
    entries, skipped = [], []
    with staged_output(out, "run series", is_series, overwrite, protect=(run, references)) as work:
        for ck in tqdm(checkpoints, desc="checkpoints", disable=not progress):
            try:
                mats, genes, source = load_gene_matrices(ck)
            except CheckpointError as e:
                reason = str(e).removesuffix(OTHER_CHECKPOINT).rstrip("; ")
                warn(f"{reason}; skipped, the series goes on without it")
                skipped.append({"checkpoint": str(ck), "reason": reason})
                continue
            if source.get("kind") != "txfm":
                raise UserError(f"{ck}: not a TxFM checkpoint; a series is built from a training run")
            if int(source.get("step", 0)) in {e["step"] for e in entries}:
                continue                                     # last.pt = the last step checkpoint
            name = f"step-{int(source.get('step', 0)):07d}"
            if out.is_dir() and (out / name / "manifest.json").is_file():
                shutil.copytree(out / name, work / name, copy_function=_link_or_copy)   # reuse what is valid
            build_bundle(mats, genes, references, work / name, source, lp, progress=False, overwrite=True,
                         protect=(ck,))
            entries.append({"step": int(source.get("step", 0)), "samples_seen": int(source.get("samples_seen", 0)),
                            "checkpoint": str(ck), "bundle": name})
            log(f"{ck.name}: step {entries[-1]['step']:,}, {entries[-1]['samples_seen']:,} samples seen -> {name}")
        if not entries:
            raise UserError(f"{run}: none of its {len(checkpoints)} checkpoint(s) can be read (e.g. "
                            f"{skipped[0]['reason']}); train the run again")
        entries.sort(key=lambda e: e["step"])
        write_json_atomic(work / SERIES_FILE, {
            "format": SERIES_FORMAT, "format_version": 1, "created": now_iso(), "run": str(run),
            "checkpoints": entries, "skipped": skipped, "params": {k: (list(v) if isinstance(v, tuple) else v)
                                               for k, v in lp.__dict__.items()},
            "pca": str(pca) if pca else None})
    return out


def _link_or_copy(src: str, dst: str) -> None:
    import os
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
