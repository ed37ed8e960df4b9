"""`make gpu-check`: one prepared run for a lent GPU (docs/bench-gpu.md).

Back to back, within a time budget, printing where it is:

1. the environment (device, torch, CUDA, CPU cores) and the bf16 matmul peak of this device;
2. the GPU tests (``pytest -m gpu``);
3. a throughput table through the real data path (txfm.throughput): the tiny, S and B presets at
   K = 256, 1,024 and 2,048, batch 256, bf16: samples/s, model FLOP utilisation, peak GPU memory; the
   loader alone per K; the data path as it was before device-side batches (bytes and rate); one row with
   ``--compile``;
4. the quality step: short ``txfm train`` runs of the GPU recipe(s) on the corpus, scored by
   ``evaluation curves`` (honest recall, hubness, CLS kNN on the sorted PBMC reference) with the CLS
   computed on the device, beside the PCA baseline;
5. ``docs/bench-gpu.md`` with every figure, and the same files under ``--out``.

What it needs travels as one folder made by ``make gpu-pack`` (``pack``) on a machine with the data: the
corpus and the reference tables packed with xz, and wheels of the packages a GPU image lacks (igraph,
leidenalg); ``--pack`` unpacks it (``unpack``) before the steps.

``toy=True`` runs every step at toy sizes (a tiny model, K of 8-16, a few seconds per row): the CPU test
of this script (tests/evaluation/test_gpu_check.py) so that it is correct before it meets a GPU.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The GPU recipe candidates the quality step trains, one txfm-train option list each, sharing the training
# budget (`--quality-run NAME='OPTIONS'` replaces this list). From docs/training-recipe.md: the expressed-gene
# reveal at K = 1,024 lifted the CLS to 0.485 on the last GPU run (experiment 16's ceiling 0.88) but not the
# decoder; --loss-zeros tests whether the decoder's rows were spent on predicting zeros (experiment 20); the
# CPU recipe at batch 256 is the decoder's reference (0.384 at 12,800 samples on the CPU).
QUALITY_RUNS: dict[str, str] = {
    "S-k1024-expressed": "--preset S --reveal 1024 --reveal-detected 1.0 --batch-size 256 --lr 1e-3 --weight-decay 0.05",
    "S-k1024-expressed-lz": "--preset S --reveal 1024 --reveal-detected 1.0 --loss-zeros 0.1 --batch-size 256 "
                            "--lr 1e-3 --weight-decay 0.05",
    "tiny-k256-cpu-recipe": "--preset tiny --reveal 256 --batch-size 256 --lr 3e-3 --weight-decay 0.05",
}
TOY_QUALITY_RUNS: dict[str, str] = {
    "toy": "--dim 16 --depth 1 --heads 2 --reveal 8 --batch-size 16 --lr 3e-3 --weight-decay 0.05",
}


@dataclass
class Sizes:
    """What each step runs; ``Sizes.toy()`` for the CPU test."""
    presets: tuple[str, ...] = ("tiny", "S", "B")
    ks: tuple[int, ...] = (256, 1024, 2048)
    batch: int = 256
    compile_row: tuple[str, int] = ("S", 1024)
    warmup_s: float = 2.0
    measure_s: float = 4.0
    peak_n: int | None = None               # matmul size for the peak (None: 8192 on a GPU)
    model_overrides: dict = field(default_factory=dict)
    quality_runs: dict[str, str] = field(default_factory=lambda: dict(QUALITY_RUNS))
    checkpoints: int = 4                    # checkpoints per quality run (the curve's points)

    @classmethod
    def toy(cls) -> "Sizes":
        return cls(presets=("tiny",), ks=(8, 16), batch=8, compile_row=("tiny", 8), warmup_s=0.2, measure_s=0.5,
                   peak_n=128, model_overrides=dict(dim=16, depth=1, heads=2, decoder_depth=1),
                   quality_runs=dict(TOY_QUALITY_RUNS), checkpoints=2)


class Clock:
    """Wall time since the start, against the budget; prints where the run is."""

    def __init__(self, budget_s: float):
        self.t0, self.budget = time.monotonic(), budget_s

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    @property
    def left(self) -> float:
        return self.budget - self.elapsed

    def say(self, msg: str) -> None:
        print(f"[gpu-check {self.elapsed:6.1f} s] {msg}", flush=True)


def _env() -> dict:
    """This environment, with the project (and whatever PYTHONPATH holds, e.g. carried wheels) importable."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}


def _run(cmd: list[str], log: list[str], timeout: float) -> subprocess.CompletedProcess | None:
    """A subprocess in the project root with its output kept for the log; None if it ran out of time."""
    log.append(f"$ {shlex.join(cmd)}")
    try:
        r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired as e:
        log.append(((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""))[-4000:])
        log.append(f"(stopped after {timeout:.0f} s)")
        return None
    log.append((r.stdout + r.stderr)[-6000:])
    return r


def environment(device) -> dict:
    import torch
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "device": f"{device} ({name})",
            "torch": torch.__version__, "cuda": torch.version.cuda or "-", "python": platform.python_version(),
            "cpu_cores": os.cpu_count(), "load_average": round(os.getloadavg()[0], 1)}


def gpu_tests(clock: Clock, log: list[str]) -> str:
    """Run ``pytest -m gpu`` and return its summary line."""
    try:
        import pytest  # noqa: F401
    except ImportError:
        return "not run: pytest is not installed here (make gpu-pack carries its wheels in .gpu/whl)"
    r = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "-rs",
              "tests/txfm/test_gpu.py"], log, timeout=min(240.0, max(30.0, clock.left - 60)))
    if r is None:
        return "stopped: the GPU tests ran out of time"
    lines = [x for x in (r.stdout + r.stderr).strip().splitlines() if x.strip()]
    return (lines[-1] if lines else "no output") + ("" if r.returncode in (0, 5) else f" (exit {r.returncode})")


def throughput(corpus: str, device, sizes: Sizes, workers: int, peak: float, clock: Clock, reserve_s: float,
               tp: dict, progress=lambda: None) -> dict:
    """The throughput table, the loader alone per K, the data path before device-side batches, one
    compiled row, filled into ``tp`` row by row (``progress()`` after each, so a run stopped midway keeps
    what it measured). Rows that the budget leaves no time for are marked skipped."""
    import torch

    from txfm.config import model_config
    from txfm.corpus import Corpus
    from txfm.model import flops_per_sample
    from txfm.throughput import loader_throughput, mfu, training_throughput

    g = Corpus(corpus).n_genes
    per_row = sizes.warmup_s + sizes.measure_s + 6.0
    tp.update(rows=[], loaders=[], before={}, compiled={}, workers=workers)
    rows, loaders = tp["rows"], tp["loaders"]

    def cfg(preset):
        return model_config(preset, g, **sizes.model_overrides)

    for k in sizes.ks:
        if clock.left - reserve_s < per_row:
            loaders.append({"k": k, "skipped": "time budget"})
            continue
        clock.say(f"loader alone, K = {k}")
        t, nbytes = loader_throughput(corpus, k, sizes.batch, device, workers, warmup_s=sizes.warmup_s,
                                      measure_s=sizes.measure_s)
        loaders.append({"k": k, "samples_per_s": t.samples_per_s, "bytes_per_batch": nbytes})
        progress()
    def train_row(preset, k):
        if clock.left - reserve_s < per_row:
            rows.append({"preset": preset, "k": k, "skipped": "time budget"})
            return
        clock.say(f"training throughput: {preset}, K = {k}, batch {sizes.batch}, bf16")
        c = cfg(preset)
        t = training_throughput(corpus, c, k, sizes.batch, device, "bf16", workers, warmup_s=sizes.warmup_s,
                                measure_s=sizes.measure_s)
        rows.append({"preset": preset, "k": k, "batch": sizes.batch, "samples_per_s": t.samples_per_s,
                     "gflop_per_sample": flops_per_sample(c, k) / 1e9, "mfu": mfu(t.samples_per_s, c, k, peak),
                     "peak_memory_gib": t.peak_memory / 2 ** 30, "steps": t.steps, "error": t.error})
        progress()

    # the presets the targets name first, then the data path before/after and --compile, the largest last
    largest = sizes.presets[-1] if len(sizes.presets) > 2 else None
    for preset in [p for p in sizes.presets if p != largest]:
        for k in sizes.ks:
            train_row(preset, k)
    k_mid = sizes.ks[min(1, len(sizes.ks) - 1)]
    if clock.left - reserve_s > per_row:
        clock.say(f"the data path before device-side batches (dense batches from the workers), K = {k_mid}")
        t, nbytes = loader_throughput(corpus, k_mid, sizes.batch, device, workers, host_dense=True,
                                      warmup_s=sizes.warmup_s, measure_s=sizes.measure_s)
        tp["before"] = {"k": k_mid, "samples_per_s": t.samples_per_s, "bytes_per_batch": nbytes}
        progress()
    preset, k = sizes.compile_row
    if clock.left - reserve_s > per_row + 60:
        clock.say(f"training throughput with --compile: {preset}, K = {k} (the first steps compile)")
        c = cfg(preset)
        t = training_throughput(corpus, c, k, sizes.batch, device, "bf16", workers, compile=True,
                                warmup_s=max(sizes.warmup_s, 1.0) * 3, measure_s=sizes.measure_s)
        tp["compiled"] = {"preset": preset, "k": k, "samples_per_s": t.samples_per_s,
                          "mfu": mfu(t.samples_per_s, c, k, peak), "error": t.error}
    else:
        tp["compiled"] = {"preset": preset, "k": k, "skipped": "time budget"}
    progress()
    if largest:
        for k in sizes.ks:
            train_row(largest, k)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return tp


def quality(corpus: str, references: str, pca: str | None, work: Path, device, sizes: Sizes, workers: int,
            rates: dict, clock: Clock, log: list[str], train_s: float, label: tuple[str, str], q: dict,
            progress=lambda: None) -> dict:
    """Train each quality run for its share of ``train_s`` seconds, then score it with evaluation curves;
    filled into ``q`` (runs, curves, pca) with ``progress()`` after each run and each score."""
    import pandas as pd

    pca_proc = None
    if pca is None:   # fitted on the CPU while the GPU trains
        pca = str(work / "pca.pt")
        clock.say("PCA baseline: fitting it on the CPU beside the training")
        pca_proc = subprocess.Popen([sys.executable, "-m", "txfm", "baseline-pca", "--corpus", corpus, "--out", pca],
                                    cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=_env())
    q.update(runs={}, curves=pd.DataFrame(), pca=None)
    runs, curves = q["runs"], []
    share = train_s / max(1, len(sizes.quality_runs))
    for name, options in sizes.quality_runs.items():
        opts = shlex.split(options)
        rate = _expected_rate(opts, rates)
        batch = int(opts[opts.index("--batch-size") + 1]) if "--batch-size" in opts else 64
        steps = max(sizes.checkpoints, int(share * rate / batch))
        log_every = max(1, steps // (4 * sizes.checkpoints))
        save = 4 * log_every          # every checkpoint has its metrics row (the curve's minutes of training)
        out = work / "runs" / name
        clock.say(f"quality run {name}: {steps} steps (~{share:.0f} s at {rate:.0f} samples/s expected)")
        t = time.monotonic()
        r = _run([sys.executable, "-m", "txfm", "train", "--corpus", corpus, "--out", str(out), *opts,
                  "--max-steps", str(steps), "--save-every", str(save), "--keep-last", "0", "--val-every", "0",
                  "--log-every", str(log_every), "--workers", str(workers), "--device", str(device)],
                 log, timeout=share * 2 + 120)
        metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()] if (out / "metrics.jsonl").is_file() else []
        runs[name] = {"options": options, "steps": steps, "wall_s": time.monotonic() - t,
                      "ok": r is not None and r.returncode == 0, "metrics": metrics}
        progress()
    if pca_proc is not None:
        clock.say("waiting for the PCA baseline")
        try:
            pca_proc.wait(timeout=max(30.0, clock.left - 60))
        except subprocess.TimeoutExpired:
            pca_proc.kill()
    have_pca = Path(pca).is_file()
    for name, info in runs.items():
        if not info["ok"]:
            continue
        clock.say(f"scoring {name}: evaluation curves (CLS on {device})")
        cdir = work / f"curves-{name}"
        r = _run([sys.executable, "-m", "evaluation", "curves", "--run", str(work / "runs" / name),
                  *(["--pca", pca] if have_pca else []), "--references", references, "--corpus", corpus,
                  "--dataset", label[0], "--label-column", label[1], "--device", str(device), "--out", str(cdir)],
                 log, timeout=max(60.0, clock.left - 20))
        if r is not None and r.returncode == 0 and (cdir / "curves.csv").is_file():
            df = pd.read_csv(cdir / "curves.csv")
            df.insert(0, "run", name)
            curves.append(df)
            have_pca = False   # the PCA rows once
            info["curves_md"] = (cdir / "curves.md").read_text()
            q["curves"] = pd.concat(curves, ignore_index=True)
        progress()
    q["pca"] = pca if Path(pca).is_file() else None
    return q


def _expected_rate(opts: list[str], rates: dict) -> float:
    """Samples/s the throughput table measured for this run's preset and K (the nearest measured row)."""
    preset = opts[opts.index("--preset") + 1] if "--preset" in opts else "tiny"
    k = int(opts[opts.index("--reveal") + 1]) if "--reveal" in opts else 2048
    same = {kk: v for (p, kk), v in rates.items() if p == preset and v > 0}
    if same:
        return same[min(same, key=lambda kk: abs(kk - k))]
    return max(rates.values(), default=100.0) or 100.0


# Packages the GPU machine's image lacks that the quality step imports (evaluation curves -> precompute
# modules: igraph, leidenalg), at the versions requirements.txt pins; wheels for its Python (3.12, x86_64).
PACK_WHEELS = ("python-igraph==1.0.0", "igraph==1.0.0", "leidenalg==0.12.0", "texttable==1.7.2")
PACK_PYTHON = "3.12"
PACK_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                  "manylinux1_x86_64")


def pack(corpus: str, references: str, out: str, overwrite: bool = False, wheels: bool = True) -> Path:
    """Write the folder ``make gpu-check`` needs on a GPU machine: corpus.tar.xz (the corpus folder),
    refs.tar.xz (the reference tables' manifest, pairs and gene table), whl/ (PACK_WHEELS for Python
    PACK_PYTHON, downloaded with pip) and pack.json. Staged and renamed into place."""
    import tarfile

    from common.errors import UserError
    from common.outputs import staged_output
    from txfm.corpus import Corpus

    c = Corpus(corpus)
    refs = Path(references)
    if not (refs / "pairs").is_dir():
        raise UserError(f"{refs}: no pairs/ folder; fetch the reference tables first (make references)")

    def is_pack(p: Path) -> bool:
        return (Path(p) / "pack.json").is_file()

    with staged_output(out, "GPU pack", is_pack, overwrite, protect=[corpus, references]) as tmp:
        with tarfile.open(tmp / "corpus.tar.xz", "w:xz", preset=6) as t:
            t.add(c.path, arcname="corpus")
        with tarfile.open(tmp / "refs.tar.xz", "w:xz", preset=6) as t:
            for name in ("manifest.json", "pairs", "genes"):
                if (refs / name).exists():
                    t.add(refs / name, arcname=f"references/{name}")
        got = []
        if wheels:
            (tmp / "whl").mkdir()
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--python-version", PACK_PYTHON, "--implementation", "cp",
                   *[a for p in PACK_PLATFORMS for a in ("--platform", p)], "-d", str(tmp / "whl"), *PACK_WHEELS]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise UserError(f"pip download of {', '.join(PACK_WHEELS)} failed ({r.stderr.strip()[-300:]}); "
                                "check the network to PyPI, or pass --no-wheels and install them on the GPU machine")
            got = sorted(p.name for p in (tmp / "whl").glob("*.whl"))
        (tmp / "pack.json").write_text(json.dumps({"corpus": str(c.path), "fingerprint": c.fingerprint,
                                                   "references": str(refs), "wheels": got,
                                                   "python": PACK_PYTHON}, indent=1))
    size = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
    print(f"GPU pack -> {out} ({size / 2 ** 20:.1f} MiB): carry it to the GPU machine and run make gpu-check")
    return Path(out)


def unpack(pack_dir: str, work: Path) -> tuple[str, str]:
    """Unpack a ``pack`` into ``work``; install its wheels under work/site and make them importable here
    and in every subprocess. Returns (corpus path, references path)."""
    import tarfile

    from common.errors import UserError

    src = Path(pack_dir)
    if not (src / "pack.json").is_file():
        raise UserError(f"{src}: not a GPU pack (no pack.json); make it with `make gpu-pack` where the data is")
    for name in ("corpus.tar.xz", "refs.tar.xz"):
        try:
            with tarfile.open(src / name, "r:xz") as t:
                t.extractall(work, filter="data")
        except (OSError, tarfile.TarError, EOFError) as e:
            raise UserError(f"{src / name}: unreadable ({e}); make the pack again with `make gpu-pack`") from e
    wheels = sorted((src / "whl").glob("*.whl")) if (src / "whl").is_dir() else []
    if wheels:
        site = work / "site"
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                            "--no-compile", "--target", str(site), *map(str, wheels)], capture_output=True, text=True)
        if r.returncode != 0:
            raise UserError(f"{src / 'whl'}: the wheels do not install here ({r.stderr.strip()[-300:]})")
        sys.path.insert(0, str(site))
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return str(work / "corpus"), str(work / "references")


TARGETS = ("tiny at K = 256: at least 10,000 samples/s", "S at K = 1,024: at least 40% MFU",
           "the loader alone: at least 3x what the S run at K = 1,024 consumes")


def _fmt(v, spec: str = ",.0f") -> str:
    return "-" if v is None or v != v else format(v, spec)


def _bytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def report(env: dict, peak: float, tests: str, tp: dict, q: dict, sizes: Sizes, toy: bool, elapsed: float,
           final: bool = True) -> str:
    rows = tp.get("rows", [])
    loaders = {x["k"]: x for x in tp.get("loaders", [])}
    lines = ["# TxFM on a GPU: `make gpu-check`", "",
             f"Made by `make gpu-check` (`python -m evaluation gpu-check{' --toy' if toy else ''}`) on "
             f"{env['date']}: {env['device']}, torch {env['torch']} (CUDA {env['cuda']}), Python {env['python']}, "
             f"{env['cpu_cores']} CPU cores, {tp.get('workers', 0)} DataLoader workers; the whole check took "
             f"{elapsed / 60:.1f} min. bf16 matmul peak measured in the same run: {peak / 1e12:.1f} TFLOP/s"
             f" ({sizes.peak_n or 8192}^3 product).", ""]
    if toy:
        lines += ["**Toy sizes on a CPU** (the script's own test): the figures below say nothing about a GPU.", ""]
    if not final:
        lines += [f"**Partial**: written after {elapsed:.0f} s; the check had not finished.", ""]
    lines += ["## GPU tests", "", f"`pytest -m gpu tests/txfm/test_gpu.py`: {tests}", "",
              "## Training throughput through the real data path", "",
              "Corpus stream -> DataLoader workers -> pinned, non-blocking copies -> dense batch built on the device "
              "(`txfm.feed`) -> the trainer's own step (`txfm.trainer.train_step`: bf16 autocast, backward, clipping, "
              "fused AdamW, schedule), after a warm-up; one device synchronisation per timed span. MFU = analytic "
              "training FLOPs (`txfm.model.flops_per_sample`) x samples/s / the matmul peak above. The loader "
              "column is the loader alone at that K (dense batches delivered on the device, no model).", "",
              f"| preset | K | batch | samples/s | GFLOP/sample | MFU | peak GPU memory | loader alone samples/s | loader / training |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ld = loaders.get(r["k"], {}).get("samples_per_s")
        if "skipped" in r or r.get("error"):
            lines.append(f"| {r['preset']} | {r['k']:,} | {sizes.batch} | {r.get('skipped') or r.get('error')} | | | "
                         f"{_fmt(r.get('peak_memory_gib'), '.1f')} GiB | {_fmt(ld)} | |")
            continue
        ratio = ld / r["samples_per_s"] if ld and r["samples_per_s"] else None
        lines.append(f"| {r['preset']} | {r['k']:,} | {r['batch']} | {r['samples_per_s']:,.0f} | {r['gflop_per_sample']:.1f} | "
                     f"{r['mfu']:.0%} | {r['peak_memory_gib']:.1f} GiB | {_fmt(ld)} | {_fmt(ratio, '.1f')}x |")
    b = tp.get("before") or {}
    after = loaders.get(b.get("k"), {})
    lines += ["", "## The data path before and after device-side batches", "",
              "| loader (workers -> device, no model) | K | bytes per batch | samples/s |", "|---|---:|---:|---:|"]
    if b:
        lines.append(f"| before: dense target and masks built by the workers | {b['k']:,} | {_bytes(b['bytes_per_batch'])} | "
                     f"{b['samples_per_s']:,.0f} |")
        lines.append(f"| now: sparse batch, densified on the device | {b['k']:,} | "
                     f"{_bytes(after.get('bytes_per_batch', 0))} | {_fmt(after.get('samples_per_s'))} |")
    c = tp.get("compiled") or {}
    plain = next((r for r in rows if r.get("preset") == c.get("preset") and r.get("k") == c.get("k")
                  and "skipped" not in r and not r.get("error")), None)
    lines += ["", "## torch.compile (`--compile`)", ""]
    if c.get("skipped") or c.get("error") or not plain:
        lines.append(f"{c.get('preset')} at K = {c.get('k')}: {c.get('skipped') or c.get('error') or 'no plain row to compare'}.")
    else:
        lines.append(f"{c['preset']} at K = {c['k']:,}: {c['samples_per_s']:,.0f} samples/s compiled against "
                     f"{plain['samples_per_s']:,.0f} plain ({c['samples_per_s'] / plain['samples_per_s']:.2f}x; MFU "
                     f"{c['mfu']:.0%}). `--compile` stays off by default unless this ratio is clearly above 1.")
    lines += ["", "## Targets (issue 21)", "", "| target | measured | met |", "|---|---|---|"]
    for text, (val, ok) in zip(TARGETS, _target_values(rows, loaders, sizes)):
        lines.append(f"| {text} | {val} | {ok} |")
    lines += ["", "## Quality step", "",
              "Each run is `python -m txfm train` on the corpus with the options shown, for its share of the "
              "training budget, then `python -m evaluation curves` (honest recall per gene matrix at its best "
              "rank, neighbourhood hubness, CLS kNN accuracy on the sorted PBMC reference; CLS computed on the "
              "device) beside the PCA baseline.", ""]
    for name, info in q.get("runs", {}).items():
        m = info["metrics"]
        sps = m[-1]["samples_per_s"] if m else float("nan")
        lines.append(f"- **{name}**: `txfm train {info['options']} --max-steps {info['steps']}`: "
                     f"{'ok' if info['ok'] else 'FAILED (see log.txt)'}, {info['wall_s']:.0f} s wall, "
                     f"{_fmt(sps)} samples/s, final loss {_fmt(m[-1]['loss'] if m else None, '.4f')}")
    lines.append("")
    for name, info in q.get("runs", {}).items():
        if info.get("curves_md"):
            lines += [f"### {name}", "", info["curves_md"].strip(), ""]
    return "\n".join(lines) + "\n"


def _target_values(rows, loaders, sizes: Sizes):
    def row(preset, k):
        return next((r for r in rows if r.get("preset") == preset and r.get("k") == k and "skipped" not in r
                     and not r.get("error")), None)
    tiny, s = row("tiny", 256), row("S", 1024)
    ld = loaders.get(1024, {}).get("samples_per_s")
    yield (f"{tiny['samples_per_s']:,.0f} samples/s", "yes" if tiny["samples_per_s"] >= 10_000 else "no") if tiny else ("not measured", "-")
    yield (f"{s['mfu']:.0%}", "yes" if s["mfu"] >= 0.40 else "no") if s else ("not measured", "-")
    if s and ld:
        yield (f"{ld / s['samples_per_s']:.1f}x ({ld:,.0f} vs {s['samples_per_s']:,.0f} samples/s)",
               "yes" if ld >= 3 * s["samples_per_s"] else "no")
    else:
        yield ("not measured", "-")


def _check_out(out: Path, overwrite: bool) -> None:
    """The result folder: absent, empty, or an earlier gpu-check result with --overwrite (nothing else is
    written into)."""
    from common.errors import UserError
    if not out.exists():
        out.mkdir(parents=True)
        return
    if not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose another --out")
    if any(out.iterdir()):
        if not (out / "gpu-check.json").is_file():
            raise UserError(f"{out}: a folder with other files; gpu-check writes only into an empty folder or its "
                            "own earlier result (choose another --out)")
        if not overwrite:
            raise UserError(f"{out}: holds an earlier gpu-check result; pass --overwrite to replace it")


def run_gpu_check(corpus: str | None, references: str | None, out: str, doc: str | None = None,
                  pca: str | None = None, device: str = "auto", workers: int | None = None, toy: bool = False,
                  budget_s: float = 480, train_s: float = 150, skip_tests: bool = False,
                  quality_runs: dict[str, str] | None = None, label: tuple[str, str] | None = None,
                  work: str | None = None, pack_dir: str | None = None, overwrite: bool = False) -> str:
    """Run every step and write ``doc`` (and ``out``/bench-gpu.md, gpu-check.json, curves.csv, log.txt).

    corpus, references: folders, or None with ``pack_dir`` (a ``make gpu-pack`` folder, unpacked into work).
    label: (dataset of the corpus, obs column) for the CLS kNN accuracy (default: the sorted PBMC reference).
    work: folder for the unpacked pack and the quality runs; default a temporary folder removed at the end.
    """
    import shutil
    import tempfile

    if work is None:
        tmp = tempfile.mkdtemp(prefix="txfm-gpu-check-")
        try:
            return run_gpu_check(corpus, references, out, doc, pca, device, workers, toy, budget_s, train_s,
                                 skip_tests, quality_runs, label, tmp, pack_dir, overwrite)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _check_out(Path(out), overwrite)
    if pack_dir is not None:
        print(f"[gpu-check] unpacking {pack_dir} into {work}", flush=True)
        corpus, references = unpack(pack_dir, Path(work))
    if corpus is None or references is None:
        from common.errors import UserError
        raise UserError("gpu-check: pass --corpus and --references, or --pack (a folder made by make gpu-pack)")
    import pandas as pd
    import torch

    from .curves import CELLTYPE_COLUMN, CELLTYPE_DATASET

    from common.atomic import atomic_write_text
    from txfm.feed import resolve_device
    from txfm.throughput import matmul_peak

    clock = Clock(budget_s)
    dev = resolve_device(device)
    sizes = Sizes.toy() if toy else Sizes()
    if quality_runs:
        sizes.quality_runs = dict(quality_runs)
    workers = workers if workers is not None else (0 if toy else max(2, min(10, (os.cpu_count() or 4) - 4)))
    outdir, work = Path(out), Path(work)
    log: list[str] = []
    env = environment(dev)
    state = {"peak": 0.0, "tests": "not run yet", "tp": {}, "q": {}}

    def save(final: bool = False) -> str:
        """The report and figures so far, into ``out`` after every step (a run stopped midway keeps them)."""
        text = report(env, state["peak"], state["tests"], state["tp"], state["q"], sizes, toy, clock.elapsed, final)
        atomic_write_text(outdir / "bench-gpu.md", text)
        runs = state["q"].get("runs", {})
        figures = {"environment": env, "matmul_peak_bf16": state["peak"], "tests": state["tests"],
                   "throughput": state["tp"], "quality": {k: {kk: vv for kk, vv in v.items() if kk != "curves_md"}
                                                         for k, v in runs.items()}}
        atomic_write_text(outdir / "gpu-check.json", json.dumps(figures, indent=1, default=str))
        curves = state["q"].get("curves")
        if isinstance(curves, pd.DataFrame) and len(curves):
            curves.to_csv(outdir / "curves.csv", index=False)
        atomic_write_text(outdir / "log.txt", "\n".join(log))
        return text

    clock.say(f"start: {env['device']}, torch {env['torch']}, CUDA {env['cuda']}, {env['cpu_cores']} cores, "
              f"budget {budget_s:.0f} s")
    state["peak"] = matmul_peak(torch.bfloat16, dev, n=sizes.peak_n)
    clock.say(f"bf16 matmul peak {state['peak'] / 1e12:.2f} TFLOP/s")
    state["tests"] = "skipped (--skip-tests)" if skip_tests else gpu_tests(clock, log)
    clock.say(f"GPU tests: {state['tests']}")
    save()
    reserve = train_s + 100 if not toy else 5
    throughput(corpus, dev, sizes, workers, state["peak"], clock, reserve, state["tp"], save)
    rates = {(r["preset"], r["k"]): r.get("samples_per_s", 0.0) for r in state["tp"]["rows"]}
    train_budget = max(10.0 if toy else 30.0, min(train_s, clock.left - (10 if toy else 100)))
    quality(corpus, references, pca, work, dev, sizes, workers, rates, clock, log, train_budget,
            label or (CELLTYPE_DATASET, CELLTYPE_COLUMN), state["q"], save)
    text = save(final=True)
    if doc:
        atomic_write_text(doc, text)
    clock.say(f"done: {doc or outdir / 'bench-gpu.md'}")
    print(text)
    return text


__all__ = ["run_gpu_check", "pack", "unpack", "Sizes", "QUALITY_RUNS"]
