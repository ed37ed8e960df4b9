"""`python -m precompute bench`: time a full precompute of two 45,000 x 768 matrices.

Writes the per-step timing table and peak memory between markers in docs/precompute.md.
"""
from __future__ import annotations

import os
import platform
import re
import resource
import shutil
import tempfile
import time
from pathlib import Path


from common.atomic import atomic_write_text

from .bundle.files import now_iso

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, GiB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def run_bench(n_genes: int = 45_000, width: int = 768, umap_epochs: int = 100,
              pairs_per_source: int = 40_000, out_dir: Path | None = None, seed: int = 0) -> dict:
    """Build a bundle from two (n_genes, width) planted-structure matrices; return timings.

    Returns {"steps": {step: seconds}, "total_s", "prepare_s", "validate_s", "peak_rss_gib", ...}.
    """
    from .params import BundleParams
    from .pipeline import build_bundle
    from .bundle.synthetic import synthetic_matrices, write_synthetic_references
    from .bundle.validate import validate_bundle

    load_start = os.getloadavg()
    t0 = time.perf_counter()
    mats, genes, blocks = synthetic_matrices(n_genes, {"codebook": width, "decoder": width},
                                             n_blocks=n_genes // 50, seed=seed)
    tmp = Path(tempfile.mkdtemp(prefix="precompute-bench-"))
    try:
        ref = write_synthetic_references(tmp / "refs", genes.symbol.tolist(), blocks,
                                         pairs_per_source=pairs_per_source, n_random_sets=12_000, seed=seed)
        prepare = time.perf_counter() - t0
        out = (out_dir or tmp) / "bench-bundle"
        params = BundleParams(umap_epochs=umap_epochs, seed=seed)
        t1 = time.perf_counter()
        build_bundle(mats, genes, ref, out, {"kind": "txfm", "checkpoint": "random weights (bench)",
                                            "synthetic": True}, params, force=True, progress=False,
                     overwrite=True)
        total = time.perf_counter() - t1
        t2 = time.perf_counter()
        problems = validate_bundle(out)
        validate = time.perf_counter() - t2
        import json
        steps = {k: (v["seconds"], v.get("cpu_seconds", float("nan")))
                 for k, v in json.loads((out / "manifest.json").read_text())["steps"].items()}
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"steps": steps, "total_s": total, "prepare_s": prepare, "validate_s": validate,
            "valid": not problems, "peak_rss_gib": peak_rss_gib(), "bundle_gib": size / 2 ** 30,
            "n_genes": n_genes, "width": width, "umap_epochs": umap_epochs,
            "pairs_per_source": pairs_per_source, "cpus": os.cpu_count(), "load": os.getloadavg(), "load_start": load_start,
            "machine": platform.processor() or platform.machine(), "when": now_iso()}


def format_table(r: dict) -> str:
    """Markdown table of one bench result."""
    lines = [f"Measured {r['when']} on {r['cpus']} CPU cores ({r['machine']}), load average "
             f"below; {r['n_genes']:,} genes x {r['width']} dims, two matrices "
             f"(codebook, decoder), UMAP {r['umap_epochs']} epochs, "
             f"{r['pairs_per_source']:,} reference pairs per source (5 sources; the real cache/references has "
             "184k pairs in all), 2 GMT libraries with about 12,900 sets (the real ones: about 14,800 sets).",
             "", "| step | wall seconds | CPU seconds (all threads) |", "|---|---:|---:|"]
    for k, (wall, cpu) in r["steps"].items():
        lines.append(f"| {k} | {wall:.1f} | {cpu:.1f} |")
    lines += [f"| **build_bundle total** (incl. hashing and rename) | **{r['total_s']:.1f}** | "
              f"{sum(c for _, c in r['steps'].values()):.1f} (steps) |",
              f"| validate (with sha256) | {r['validate_s']:.1f} | |",
              f"| (setup: random matrices + references, not counted) | {r['prepare_s']:.1f} | |", "",
              "Wall time depends on what else runs: with other jobs on the 2 cores a step waits for CPU. "
              "CPU seconds are the process's own work (user + system, summed over its threads).", "",
              f"Peak resident memory: {r['peak_rss_gib']:.2f} GiB. Bundle size: {r['bundle_gib']:.2f} GiB. "
              f"Valid: {r['valid']}. Load average (1/5/15 min) at the start "
              + "/".join(f"{x:.2f}" for x in r["load_start"]) + ", at the end "
              + "/".join(f"{x:.2f}" for x in r["load"]) + ".",
              "", "Command: `.venv/bin/python -m precompute bench --doc docs/precompute.md`"]
    return "\n".join(lines)


def write_into_doc(doc: Path, text: str) -> None:
    """Replace the text between the bench markers in `doc` (append the block if absent)."""
    doc = Path(doc)
    body = doc.read_text() if doc.is_file() else ""
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in body and END in body:
        body = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, body, flags=re.S)
    else:
        body = body.rstrip() + "\n\n" + block + "\n"
    atomic_write_text(doc, body)
