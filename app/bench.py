"""Benchmark the app on synthetic 45,000-gene bundles: page render time, gene query time, memory.

    python -m app.bench --dir bench-out/app --genes 45000 --out bench-out/app/bench.md

Bundles are made once by ``python -m precompute synthetic`` (the pipeline on planted-block matrices)
in its own process: the app imports nothing but the bundle contract, never torch. Measurements run in a fresh
process that imports only the app: every page is rendered server-side with streamlit's AppTest
(first visit, which loads and caches the bundle, then a repeat visit), gene queries are timed
through the page and through the lookup functions, and the process's resident memory is read
from /proc after both bundles have been loaded by every page.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["overview", "gene_map", "neighbourhood", "modules", "enrichment", "compare", "subspaces"]


def make_bundles(d: Path, n_genes: int, dims: dict[str, int], names: list[str]) -> None:
    """Build the missing synthetic bundles (one process each, seed = position)."""
    for seed, name in enumerate(names):
        out = d / name
        if (out / "manifest.json").exists():
            print(f"reusing {out}", flush=True)
            continue
        cmd = [sys.executable, "-m", "precompute", "synthetic", "--out", str(out), "--n-genes", str(n_genes),
               "--seed", str(seed), "--dims", *[f"{k}={v}" for k, v in dims.items()]]
        print(f"building {out} ({n_genes} genes, dims {dims})", flush=True)
        t = time.time()
        subprocess.run(cmd, cwd=ROOT, check=True)
        print(f"built {out} in {time.time() - t:.0f} s", flush=True)


def _rss_mb() -> tuple[float, float]:
    status = Path("/proc/self/status").read_text().splitlines()
    get = lambda key: next(float(x.split()[1]) / 1024 for x in status if x.startswith(key))  # noqa: E731
    return get("VmRSS:"), get("VmHWM:")


def measure(d: Path, names: list[str], n_queries: int) -> dict:
    """Run in a fresh process: page timings (AppTest), query timings, memory. Returns a dict."""
    import numpy as np
    from streamlit.testing.v1 import AppTest

    from precompute.bundle.reader import open_bundle
    from app.neighbours import top_k, top_k_precomputed, unit_rows

    assert "torch" not in sys.modules
    os.environ["TXFM_BUNDLES"] = str(d)
    rss0 = _rss_mb()[0]
    a = open_bundle(d / names[0])
    rng = np.random.default_rng(0)
    genes = [str(a.symbols[i]) for i in rng.choice(a.n_genes, n_queries + 1, replace=False)]

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=300)
    at.query_params["bundle"] = names
    at.query_params["gene"] = genes[0]
    pages: dict[str, dict[str, float]] = {}
    for page in PAGES:
        for visit in ("first", "repeat"):
            if page != "overview" or visit == "repeat" or pages:
                at.switch_page(f"views/{page}.py")
            t = time.perf_counter()
            at.run()
            pages.setdefault(page, {})[visit] = time.perf_counter() - t
            if at.exception:
                raise RuntimeError(f"page {page} raised: {at.exception[0].value}")

    # Gene query through the neighbourhood page (widget change -> rerun), new gene each time.
    at.switch_page("views/neighbourhood.py").run()
    box = f"w_gene_{names[0]}"
    page_q = []
    for g in genes[1:]:
        at.selectbox(key=box).set_value(g)
        t = time.perf_counter()
        at.run()
        page_q.append(time.perf_counter() - t)
        assert f"{g}: " in "".join(str(s.value) for s in at.subheader), g

    # Enrichment of a 200-gene list (the largest module's first 200 genes) through the page.
    mods = a.modules(a.matrix_names[0])
    res_col = [c for c in mods.columns if c.startswith("res_")][0]
    top_mod = mods[res_col].value_counts().index[0]
    listed = [str(x) for x in a.symbols[mods["gene"][mods[res_col] == top_mod].to_numpy()[:200]]]
    at.switch_page("views/enrichment.py").run()
    at.text_area(key="enrich_text").input("\n".join(listed))
    t = time.perf_counter()
    at.run()
    enrich_s = time.perf_counter() - t
    n_terms = len(at.dataframe[0].value) if len(at.dataframe) else 0

    # Lookup functions alone: stored kNN at the chosen rank, and on-the-fly at another rank.
    out_q: dict[str, dict[str, float]] = {}
    rows = [int(np.flatnonzero(a.symbols == g)[0]) for g in genes[1:]]
    for m in a.matrix_names:
        idx, sims = a.knn(m)
        t = time.perf_counter()
        for r in rows:
            top_k_precomputed(idx, sims, r, 50)
        stored = (time.perf_counter() - t) / len(rows)
        other = max(8, a.default_rank(m) // 2)
        t = time.perf_counter()
        u = unit_rows(a.subspace(m), other)
        build = time.perf_counter() - t
        ts = []
        for r in rows:
            t = time.perf_counter()
            top_k(u, r, 50)
            ts.append(time.perf_counter() - t)
        out_q[m] = {"stored_ms": stored * 1e3, "other_rank": other, "build_s": build,
                    "fly_ms_median": float(np.median(ts)) * 1e3, "fly_ms_max": float(np.max(ts)) * 1e3}
    rss, hwm = _rss_mb()
    return {"pages": pages, "enrichment_s": enrich_s, "enrichment_terms": n_terms, "enrichment_list": len(listed),
            "page_query_s": {"median": float(np.median(page_q)), "max": float(np.max(page_q)),
                                              "n": len(page_q)},
            "lookup": out_q, "rss_mb": rss, "peak_rss_mb": hwm, "rss_before_mb": rss0,
            "n_genes": a.n_genes, "widths": {m: a.max_rank(m) for m in a.matrix_names},
            "ranks": {m: a.default_rank(m) for m in a.matrix_names}, "torch_imported": "torch" in sys.modules}


def report(runs: list[dict], cmd: str) -> str:
    """Markdown tables over repeated measurements: median (max) of each number."""
    import numpy as np

    def mm(get, scale=1.0, fmt="{:.2f}"):
        v = np.array([get(r) for r in runs], dtype=float) * scale
        return f"{fmt.format(np.median(v))} ({fmt.format(v.max())})"

    res = runs[0]
    load = os.getloadavg()
    lines = [f"Command: `{cmd}`", "",
             f"Bundles: 2 synthetic bundles x {res['n_genes']:,} genes (precompute's generator); subspace widths "
             f"{res['widths']}, chosen ranks {res['ranks']}. {len(runs)} fresh measurement processes; each cell "
             f"is the median (max) over them. Machine: {os.cpu_count()} CPU cores shared with other jobs, "
             f"load average {load[0]:.1f} at the end.", "",
             "| page | first visit, s | repeat visit, s |", "|---|---|---|"]
    for p in res["pages"]:
        lines.append(f"| {p} | {mm(lambda r: r['pages'][p]['first'])} | {mm(lambda r: r['pages'][p]['repeat'])} |")
    lines += ["", "Gene query through the Gene neighbourhood page (new gene, full page rerun, "
                  f"{res['page_query_s']['n']} genes per process): median "
                  f"{mm(lambda r: r['page_query_s']['median'], 1e3, '{:.0f}')} ms, "
                  f"max {mm(lambda r: r['page_query_s']['max'], 1e3, '{:.0f}')} ms.", "",
              f"Enrichment of a {res['enrichment_list']}-gene list through the Enrichment page (all libraries, "
              f"{res['enrichment_terms']} terms in the table): {mm(lambda r: r['enrichment_s'])} s.", "",
              "| matrix | stored kNN lookup, ms | other rank | unit rows at that rank, built once, s | "
              "on-the-fly top-50 per query, median / max, ms |", "|---|---|---|---|---|"]
    for m, v in res["lookup"].items():
        lines.append(f"| {m} | {mm(lambda r: r['lookup'][m]['stored_ms'], fmt='{:.3f}')} | {v['other_rank']} | "
                     f"{mm(lambda r: r['lookup'][m]['build_s'])} | "
                     f"{mm(lambda r: r['lookup'][m]['fly_ms_median'], fmt='{:.1f}')} / "
                     f"{mm(lambda r: r['lookup'][m]['fly_ms_max'], fmt='{:.1f}')} |")
    lines += ["", "App process memory with both bundles loaded by every page (resident set, memory-mapped "
                  f"pages included): {mm(lambda r: r['rss_mb'], fmt='{:.0f}')} MB, peak "
                  f"{mm(lambda r: r['peak_rss_mb'], fmt='{:.0f}')} MB; "
                  f"{mm(lambda r: r['rss_before_mb'], fmt='{:.0f}')} MB before any bundle was opened. "
                  f"torch imported: {any(r['torch_imported'] for r in runs)}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m app.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("bench-out/app"),
                    help="folder for the synthetic bundles (reused when present; default bench-out/app)")
    ap.add_argument("--genes", type=int, default=45000, help="genes per bundle (default 45000)")
    ap.add_argument("--dims", default='{"codebook": 767, "decoder": 768}',
                    help='JSON {matrix: width} for the generator (default the paper\'s TxFM-B widths)')
    ap.add_argument("--queries", type=int, default=20, help="gene queries timed (default 20)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="fresh measurement processes; tables show the median and the max over them (default 3)")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown report here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    names = [f"synthetic{a.genes // 1000}k_a", f"synthetic{a.genes // 1000}k_b"]
    if a.worker:
        print("RESULT " + json.dumps(measure(a.dir, names, a.queries)))
        return
    make_bundles(a.dir, a.genes, json.loads(a.dims), names)
    runs = []
    for i in range(a.repeats):
        r = subprocess.run([sys.executable, "-m", "app.bench", "--worker", "--dir", str(a.dir), "--genes",
                            str(a.genes), "--queries", str(a.queries)], cwd=ROOT, capture_output=True, text=True)
        line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
        if r.returncode != 0 or line is None:
            sys.exit(f"measurement process failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else '?'} "
                     "-- rerun `python -m app.bench --worker --dir DIR` to see its output")
        runs.append(json.loads(line[len("RESULT "):]))
        print(f"run {i + 1}/{a.repeats} done", flush=True)
    cmd = "python -m app.bench " + " ".join(sys.argv[1:] if argv is None else argv)
    text = report(runs, cmd.strip())
    print(text)
    if a.out:
        from common.atomic import atomic_write_text
        atomic_write_text(a.out, text)


if __name__ == "__main__":
    from common.errors import run_main
    sys.exit(run_main(main))
