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

# The GPU recipe(s) the quality step trains, one txfm-train option list each (issue 22's notebook chooses
# them; `--quality-run NAME='OPTIONS'` replaces this list). Steps are set from the time budget.
QUALITY_RUNS: dict[str, str] = {
    "S-k1024-expressed": "--preset S --reveal 1024 --reveal-detected 1.0 --batch-size 256 --lr 1e-3 --weight-decay 0.05",
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
    checkpoints: int = 6                    # checkpoints per quality run (the curve's points)

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


def throughput(corpus: str, device, sizes: Sizes, workers: int, peak: float, clock: Clock, reserve_s: float) -> dict:
    """The throughput table, the loader alone per K, the data path before device-side batches, one
    compiled row. Rows that the budget leaves no time for are marked skipped."""
    import torch

    from txfm.config import model_config
    from txfm.corpus import Corpus
    from txfm.model import flops_per_sample
    from txfm.throughput import loader_throughput, mfu, training_throughput

    g = Corpus(corpus).n_genes
    per_row = sizes.warmup_s + sizes.measure_s + 6.0
    rows, loaders = [], []

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
    for preset in sizes.presets:
        for k in sizes.ks:
            if clock.left - reserve_s < per_row:
                rows.append({"preset": preset, "k": k, "skipped": "time budget"})
                continue
            clock.say(f"training throughput: {preset}, K = {k}, batch {sizes.batch}, bf16")
            c = cfg(preset)
            t = training_throughput(corpus, c, k, sizes.batch, device, "bf16", workers, warmup_s=sizes.warmup_s,
                                    measure_s=sizes.measure_s)
            rows.append({"preset": preset, "k": k, "batch": sizes.batch, "samples_per_s": t.samples_per_s,
                         "gflop_per_sample": flops_per_sample(c, k) / 1e9, "mfu": mfu(t.samples_per_s, c, k, peak),
                         "peak_memory_gib": t.peak_memory / 2 ** 30, "steps": t.steps, "error": t.error})
    before = {}
    k_mid = sizes.ks[min(1, len(sizes.ks) - 1)]
    if clock.left - reserve_s > per_row:
        clock.say(f"the data path before device-side batches (dense batches from the workers), K = {k_mid}")
        t, nbytes = loader_throughput(corpus, k_mid, sizes.batch, device, workers, host_dense=True,
                                      warmup_s=sizes.warmup_s, measure_s=sizes.measure_s)
        before = {"k": k_mid, "samples_per_s": t.samples_per_s, "bytes_per_batch": nbytes}
    compiled = {}
    preset, k = sizes.compile_row
    if clock.left - reserve_s > per_row + 90:
        clock.say(f"training throughput with --compile: {preset}, K = {k} (the first steps compile)")
        c = cfg(preset)
        t = training_throughput(corpus, c, k, sizes.batch, device, "bf16", workers, compile=True,
                                warmup_s=max(sizes.warmup_s, 1.0) * 3, measure_s=sizes.measure_s)
        compiled = {"preset": preset, "k": k, "samples_per_s": t.samples_per_s, "mfu": mfu(t.samples_per_s, c, k, peak),
                    "error": t.error}
    else:
        compiled = {"preset": preset, "k": k, "skipped": "time budget"}
    torch.cuda.empty_cache() if device.type == "cuda" else None
    return {"rows": rows, "loaders": loaders, "before": before, "compiled": compiled, "workers": workers}


def quality(corpus: str, references: str, pca: str | None, work: Path, device, sizes: Sizes, workers: int,
            rates: dict, clock: Clock, log: list[str], train_s: float, label: tuple[str, str]) -> dict:
    """Train each quality run for its share of ``train_s`` seconds, then score it with evaluation curves."""
    import pandas as pd

    pca_proc = None
    if pca is None:   # fitted on the CPU while the GPU trains
        pca = str(work / "pca.pt")
        clock.say("PCA baseline: fitting it on the CPU beside the training")
        pca_proc = subprocess.Popen([sys.executable, "-m", "txfm", "baseline-pca", "--corpus", corpus, "--out", pca],
                                    cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=_env())
    runs, curves = {}, []
    share = train_s / max(1, len(sizes.quality_runs))
    for name, options in sizes.quality_runs.items():
        opts = shlex.split(options)
        rate = _expected_rate(opts, rates)
        batch = int(opts[opts.index("--batch-size") + 1]) if "--batch-size" in opts else 64
        steps = max(sizes.checkpoints, int(share * rate / batch))
        save = max(1, steps // sizes.checkpoints)
        out = work / "runs" / name
        clock.say(f"quality run {name}: {steps} steps (~{share:.0f} s at {rate:.0f} samples/s expected)")
        t = time.monotonic()
        r = _run([sys.executable, "-m", "txfm", "train", "--corpus", corpus, "--out", str(out), *opts,
                  "--max-steps", str(steps), "--save-every", str(save), "--keep-last", "0", "--val-every", "0",
                  "--log-every", str(max(1, save // 2)), "--workers", str(workers), "--device", str(device)],
                 log, timeout=share * 2 + 120)
        metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()] if (out / "metrics.jsonl").is_file() else []
        runs[name] = {"options": options, "steps": steps, "wall_s": time.monotonic() - t,
                      "ok": r is not None and r.returncode == 0, "metrics": metrics}
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
    table = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
    return {"runs": runs, "curves": table, "pca": pca if Path(pca).is_file() else None}


def _expected_rate(opts: list[str], rates: dict) -> float:
    """Samples/s the throughput table measured for this run's preset and K (the nearest measured row)."""
    preset = opts[opts.index("--preset") + 1] if "--preset" in opts else "tiny"
    k = int(opts[opts.index("--reveal") + 1]) if "--reveal" in opts else 2048
    same = {kk: v for (p, kk), v in rates.items() if p == preset and v > 0}
    if same:
        return same[min(same, key=lambda kk: abs(kk - k))]
    return max(rates.values(), default=100.0) or 100.0


TARGETS = ("tiny at K = 256: at least 10,000 samples/s", "S at K = 1,024: at least 40% MFU",
           "the loader alone: at least 3x what the S run at K = 1,024 consumes")


def _fmt(v, spec: str = ",.0f") -> str:
    return "-" if v is None or v != v else format(v, spec)


def _bytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def report(env: dict, peak: float, tests: str, tp: dict, q: dict, sizes: Sizes, toy: bool, elapsed: float) -> str:
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


def run_gpu_check(corpus: str, references: str, out: str, doc: str | None = None, pca: str | None = None,
                  device: str = "auto", workers: int | None = None, toy: bool = False, budget_s: float = 480,
                  train_s: float = 150, skip_tests: bool = False, quality_runs: dict[str, str] | None = None,
                  label: tuple[str, str] | None = None, work: str | None = None) -> str:
    """Run every step and write ``doc`` (and ``out``/bench-gpu.md, gpu-check.json, curves.csv, log.txt).

    label: (dataset of the corpus, obs column) for the CLS kNN accuracy (default: the sorted PBMC reference).
    work: folder for the quality runs (checkpoints, curves); default a temporary folder removed at the end.
    """
    import shutil
    import tempfile

    if work is None:
        tmp = tempfile.mkdtemp(prefix="txfm-gpu-check-")
        try:
            return run_gpu_check(corpus, references, out, doc, pca, device, workers, toy, budget_s, train_s,
                                 skip_tests, quality_runs, label, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
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
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    work = Path(work)
    log: list[str] = []
    env = environment(dev)
    clock.say(f"start: {env['device']}, torch {env['torch']}, CUDA {env['cuda']}, {env['cpu_cores']} cores, "
              f"budget {budget_s:.0f} s")
    peak = matmul_peak(torch.bfloat16, dev, n=sizes.peak_n)
    clock.say(f"bf16 matmul peak {peak / 1e12:.2f} TFLOP/s")
    tests = "skipped (--skip-tests)" if skip_tests else gpu_tests(clock, log)
    clock.say(f"GPU tests: {tests}")
    reserve = train_s + 100 if not toy else 5
    tp = throughput(corpus, dev, sizes, workers, peak, clock, reserve)
    rates = {(r["preset"], r["k"]): r.get("samples_per_s", 0.0) for r in tp["rows"]}
    if toy:
        rates = {("tiny", k): v for (_, k), v in rates.items()}
    train_budget = max(10.0 if toy else 30.0, min(train_s, clock.left - (10 if toy else 100)))
    q = quality(corpus, references, pca, work, dev, sizes, workers, rates, clock, log, train_budget,
                label or (CELLTYPE_DATASET, CELLTYPE_COLUMN))
    text = report(env, peak, tests, tp, q, sizes, toy, clock.elapsed)
    if doc:
        atomic_write_text(doc, text)
    (outdir / "bench-gpu.md").write_text(text)
    figures = {"environment": env, "matmul_peak_bf16": peak, "tests": tests, "throughput": tp,
               "quality": {k: {kk: vv for kk, vv in v.items() if kk != "curves_md"} for k, v in q["runs"].items()}}
    (outdir / "gpu-check.json").write_text(json.dumps(figures, indent=1, default=str))
    if isinstance(q["curves"], pd.DataFrame) and len(q["curves"]):
        q["curves"].to_csv(outdir / "curves.csv", index=False)
    (outdir / "log.txt").write_text("\n".join(log))
    clock.say(f"done: {doc or outdir / 'bench-gpu.md'}")
    print(text)
    return text


__all__ = ["run_gpu_check", "Sizes", "QUALITY_RUNS"]
