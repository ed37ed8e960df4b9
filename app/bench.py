"""Benchmark the app on two 45,000-gene bundles: page render time, gene query time, memory, and what a
person waits for in a real browser.

    python -m app.bench --dir bench-out/app --genes 45000 --out bench-out/app/bench.md
    python -m app.bench --dir bundles --names shared shared-pca --browser-only    # real bundles, browser part

Browser part (Chromium driven by Playwright against a streamlit server started here): for every page,
the time from navigation until its title is drawn (first paint) and until the app has finished running
(streamlit reports the script not running: the page complete), first and repeat visit; and gene queries typed into the
Gene neighbourhood page's search box: keystroke -> suggestion shown, Enter -> the gene's neighbour
table rendered.

Bundles are made once by ``python -m precompute synthetic`` (the pipeline on planted-block matrices)
in its own process: the app imports nothing but the bundle contract, never torch. Measurements run in a fresh
process that imports only the app: every page is rendered server-side with streamlit's AppTest
(first visit, which loads and caches the bundle, then a repeat visit), gene queries are timed
through the page and through the lookup functions, and the process's resident memory is read
from /proc after both bundles have been loaded by every page.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

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


def add_bundle_args(ap: argparse.ArgumentParser) -> None:
    """--dir, --genes, --dims, --names: which two bundles a benchmark runs on (`bundle_names`)."""
    ap.add_argument("--dir", type=Path, default=Path("bench-out/app"),
                    help="folder for the synthetic bundles (reused when present; default bench-out/app)")
    ap.add_argument("--genes", type=int, default=45000, help="genes per bundle (default 45000)")
    ap.add_argument("--dims", default='{"codebook": 767, "decoder": 768}',
                    help='JSON {matrix: width} for the generator (default the paper\'s TxFM-B widths)')
    ap.add_argument("--names", nargs=2, default=None, metavar=("A", "B"),
                    help="two existing bundles in --dir to measure instead of the synthetic ones")


def bundle_names(a: argparse.Namespace, build: bool = True) -> list[str]:
    """The two bundles of `add_bundle_args`: --names (refused when missing), else the synthetic pair,
    built in --dir when missing (with `build`)."""
    if a.names:
        from common.errors import UserError
        missing = [n for n in a.names if not (a.dir / n / "manifest.json").exists()]
        if missing:
            raise UserError(f"{a.dir}: no bundle {', '.join(missing)}; pass bundles that exist with --dir/--names")
        return list(a.names)
    names = [f"synthetic{a.genes // 1000}k_a", f"synthetic{a.genes // 1000}k_b"]
    if build:
        make_bundles(a.dir, a.genes, json.loads(a.dims), names)
    return names


@contextlib.contextmanager
def streamlit_server(d: Path, log_path: Path, port: int | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """`streamlit run app/main.py` on localhost over bundles folder `d` (output to `log_path`), once it
    answers its health check; yields (URL, process) and stops it afterwards."""
    import socket
    import urllib.request
    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.address",
                             "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--",
                             "--bundles", str(d)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"streamlit exited: {Path(log_path).read_text()[-2000:]}")
                time.sleep(0.3)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


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

    # Gene query through the neighbourhood page (a pick stores the gene -> page rerun), new gene each time.
    at.switch_page("views/neighbourhood.py").run()
    page_q = []
    for g in genes[1:]:
        at.session_state["_txfm_params"] = {**at.session_state["_txfm_params"], "gene": g}
        t = time.perf_counter()
        at.run()
        page_q.append(time.perf_counter() - t)
        shown = re.sub(r"\\(.)", r"\1", "".join(str(s.value) for s in at.subheader))   # Markdown escapes off
        assert f"{g}: " in shown, g

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


def measure_browser(d: Path, names: list[str], n_queries: int, port: int = 8765) -> dict:
    """What a person waits for in Chromium: page first paint / complete, type-ahead and gene query times."""
    import numpy as np
    from playwright.sync_api import expect, sync_playwright

    from precompute.bundle.reader import open_bundle
    a = open_bundle(d / names[0])
    rng = np.random.default_rng(1)
    genes = [str(a.symbols[i]) for i in rng.choice(a.n_genes, 4 * n_queries, replace=False)]
    genes = [g for g in genes if re.fullmatch(r"[A-Za-z0-9-]{3,}", g)][:n_queries]
    with streamlit_server(d, d / "bench-streamlit.log", port) as (url, _):
        query = "&".join(f"bundle={n}" for n in names) + f"&gene={genes[0]}"
        out: dict = {"pages": {}, "suggest_s": [], "query_s": [], "query_done_s": [], "genes": len(genes)}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                         args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(300_000)
            expect.set_options(timeout=300_000)
            # streamlit marks its root with the script's state; "notRunning" = the run has finished
            idle = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
            slugs = {"overview": "", "gene_map": "gene_map", "neighbourhood": "neighbourhood", "modules": "modules",
                     "enrichment": "enrichment", "compare": "compare", "subspaces": "subspaces"}
            for visit in ("first", "repeat"):
                for name, slug in slugs.items():
                    t = time.perf_counter()
                    page.goto(f"{url}/{slug}?{query}")
                    expect(page.locator("h1").first).to_be_visible()
                    paint = time.perf_counter() - t
                    expect(idle).to_have_count(1)
                    done = time.perf_counter() - t
                    out["pages"].setdefault(name, {})[visit] = {"paint": paint, "complete": done}
            page.goto(f"{url}/neighbourhood?{'&'.join(f'bundle={n}' for n in names)}")
            frame = page.frame_locator('iframe[title="streamlit_searchbox.searchbox"]')
            for g in genes[1:]:
                box = frame.locator("input")
                expect(box).to_be_editable()
                box.press_sequentially(g[:-1], delay=40)
                t = time.perf_counter()
                box.press_sequentially(g[-1])
                expect(frame.get_by_text(g, exact=True).first).to_be_visible()
                out["suggest_s"].append(time.perf_counter() - t)
                t = time.perf_counter()
                box.press("Enter")
                expect(page.get_by_text(f"{g}: 20 nearest genes")).to_be_visible()
                expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
                out["query_s"].append(time.perf_counter() - t)
                expect(idle).to_have_count(1)              # the run of the new gene has finished: the whole page
                out["query_done_s"].append(time.perf_counter() - t)
            browser.close()
        return out


def browser_report(r: dict, names: list[str], n_genes: list[int]) -> str:
    """Markdown for one browser measurement."""
    import numpy as np
    lines = ["", f"In Chromium (Playwright; server and browser on this machine), bundles "
                 f"{', '.join(f'`{n}` ({g:,} genes)' for n, g in zip(names, n_genes))}; seconds from navigation "
                 "until the page's title is drawn (first paint) and until the app has finished running (complete):",
             "", "| page | first visit: paint / complete, s | repeat visit: paint / complete, s |", "|---|---|---|"]
    for p, v in r["pages"].items():
        lines.append(f"| {p} | {v['first']['paint']:.2f} / {v['first']['complete']:.2f} | "
                     f"{v['repeat']['paint']:.2f} / {v['repeat']['complete']:.2f} |")
    sq, qq, qd = np.array(r["suggest_s"]), np.array(r["query_s"]), np.array(r["query_done_s"])
    lines += ["", f"Gene search in the browser ({len(qq)} genes typed into the Gene neighbourhood box): last "
                  f"keystroke -> suggestion shown, median {np.median(sq):.2f} s (max {sq.max():.2f}); Enter -> the "
                  f"gene's neighbour table rendered, median {np.median(qq):.2f} s (max {qq.max():.2f}); Enter -> the "
                  f"page complete (ego network and known partners too), median {np.median(qd):.2f} s "
                  f"(max {qd.max():.2f})."]
    return "\n".join(lines) + "\n"


def report(runs: list[dict], cmd: str, names: list[str] | None = None) -> str:
    """Markdown tables over repeated measurements: median (max) of each number."""
    import numpy as np

    def mm(get, scale=1.0, fmt="{:.2f}"):
        v = np.array([get(r) for r in runs], dtype=float) * scale
        return f"{fmt.format(np.median(v))} ({fmt.format(v.max())})"

    res = runs[0]
    load = os.getloadavg()
    lines = [f"Command: `{cmd}`", "",
             (f"Bundles: `{names[0]}` ({res['n_genes']:,} genes; the page tables below are its) and `{names[1]}`"
              if names else f"Bundles: 2 synthetic bundles x {res['n_genes']:,} genes (precompute's generator)")
             + f"; subspace widths "
             f"{res['widths']}, chosen ranks {res['ranks']}. {len(runs)} fresh measurement processes; each cell "
             f"is the median (max) over them. Machine: {os.cpu_count()} CPU cores shared with other jobs, "
             f"load average {load[0]:.1f} at the end.", "",
             "Server side (streamlit's AppTest runs each page script in the measuring process):", "",
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
    add_bundle_args(ap)
    ap.add_argument("--queries", type=int, default=20, help="gene queries timed (default 20)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="fresh measurement processes; tables show the median and the max over them (default 3)")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown report here")
    ap.add_argument("--browser-only", action="store_true", help="only the Chromium measurements")
    ap.add_argument("--no-browser", action="store_true", help="skip the Chromium measurements")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        print("RESULT " + json.dumps(measure(a.dir, bundle_names(a, build=False), a.queries)))
        return
    names = bundle_names(a)
    cmd = "python -m app.bench " + " ".join(sys.argv[1:] if argv is None else argv)
    browser_text = ""
    if not a.no_browser:
        from precompute.bundle.reader import open_bundle
        r = measure_browser(a.dir, names, min(a.queries, 10))
        browser_text = browser_report(r, names, [open_bundle(a.dir / n).n_genes for n in names])
        print(browser_text, flush=True)
    if a.browser_only:
        if a.out:
            from common.atomic import atomic_write_text
            atomic_write_text(a.out, f"Command: `{cmd.strip()}`\n" + browser_text)
        return
    runs = []
    for i in range(a.repeats):
        r = subprocess.run([sys.executable, "-m", "app.bench", "--worker", "--dir", str(a.dir), "--genes",
                            str(a.genes), "--queries", str(a.queries)] + (["--names", *a.names] if a.names else []),
                           cwd=ROOT, capture_output=True, text=True)
        line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
        if r.returncode != 0 or line is None:
            sys.exit(f"measurement process failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else '?'} "
                     "-- rerun `python -m app.bench --worker --dir DIR` to see its output")
        runs.append(json.loads(line[len("RESULT "):]))
        print(f"run {i + 1}/{a.repeats} done", flush=True)
    text = report(runs, cmd.strip(), a.names) + browser_text
    print(text)
    if a.out:
        from common.atomic import atomic_write_text
        atomic_write_text(a.out, text)


if __name__ == "__main__":
    from common.errors import run_main
    sys.exit(run_main(main))
