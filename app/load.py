"""The app under load: N concurrent Chromium pages against one streamlit server on two bundles.

    python -m app.load --dir bench-out/app --genes 45000 --users 10 --seconds 120 --out bench-out/app/load.md

A benchmark, not a test (its figures depend on the machine; it never fails on a slow one). It starts
`streamlit run app/main.py` on a free localhost port over two bundles (the synthetic 45,000-gene pair of
`python -m app.bench`, built once, or --names of existing ones) and drives, in one Chromium (Playwright,
one browser context = one streamlit session per user), N users who each loop until the time is up
through: the Overview, a gene query (a gene typed into the Gene neighbourhood search box: Enter until
its neighbour table is drawn, the latency measured as in `python -m app.bench`), Modules and Compare.
A step counts as done when streamlit reports the script finished; a page showing an exception or an
error box (`Internal error`, `Bundle problem`, a streamlit exception) counts as an error, as does a
step that times out.

It reports the steps done and failed, the median and 95th percentile gene query latency under load,
each page's median time under load, the server's peak resident memory (VmHWM of the streamlit
process, memory-mapped bundle pages included), and a single user's gene query and Overview times
measured alone before the load and again after it (is the server as fast afterwards?), with the
machine's load average beside them (the cores may be shared with other jobs).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEP_TIMEOUT_MS = 180_000
# streamlit marks its root with the script's state; "notRunning" = the page's run has finished
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
TARGETS = {"p95_query_s": 3.0, "peak_rss_mb": 2048.0}
AFTER_RATIO = 1.25       # "after the run a single page as fast as before it", within the machine's noise


def _status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return float(line.split()[1]) / 1024
    return float("nan")


def _processes() -> dict[int, tuple[int, float]]:
    """{pid: (parent pid, CPU seconds used so far, user + system)} of every process, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                f = (p / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(p.name)] = (int(f[1]), (int(f[11]) + int(f[12])) / tick)
    return out


def _descendants(procs: dict[int, tuple[int, float]], root: int, exclude: int | None = None) -> list[int]:
    """`root` and the processes under it, without `exclude` and the processes under that."""
    def under(pid: int, top: int) -> bool:
        seen = set()
        while pid > 1 and pid not in seen:
            if pid == top:
                return True
            seen.add(pid)
            pid = procs.get(pid, (1, 0.0))[0]
        return False
    return [pid for pid in procs if under(pid, root) and not (exclude and under(pid, exclude))]


def _cpu_seconds(root: int, exclude: int | None = None) -> float:
    """CPU seconds (user + system) used so far by process `root` and its descendants, without process
    `exclude` and its descendants."""
    procs = _processes()
    return sum(procs[pid][1] for pid in _descendants(procs, root, exclude))


def _genes(d: Path, name: str, n: int, seed: int) -> list[str]:
    """`n` random gene symbols of bundle `name` that a person would type (letters, digits, dashes)."""
    import numpy as np

    from precompute.bundle.reader import open_bundle
    b = open_bundle(d / name)
    rng = np.random.default_rng(seed)
    picked = [str(b.symbols[i]) for i in rng.choice(b.n_genes, min(b.n_genes, 6 * n), replace=False)]
    return [g for g in picked if re.fullmatch(r"[A-Za-z0-9-]{3,}", g)][:n]


# step -> (the sidebar link a person clicks, the page's title)
STEPS = {"overview": ("Overview", "Overview"), "query": ("Gene neighbourhood", "Gene neighbourhood"),
         "modules": ("Modules", "Modules"), "compare": ("Compare matrices", "Compare gene matrices")}
CYCLE = ("overview", "query", "modules", "compare")


class User:
    """One browser context (one streamlit session) going round the four steps as a person does: the
    app is opened once by its URL, then every page is reached through the sidebar's links (no page
    reload), and the gene is typed into the Gene neighbourhood search box. Collects timings and errors."""

    def __init__(self, browser, url: str, names: list[str], genes: list[str], uid: int, think: float = 0.0):
        self.browser, self.url, self.names, self.genes, self.uid = browser, url, names, genes, uid
        self.think = think
        self.times: dict[str, list[float]] = {k: [] for k in CYCLE}
        self.errors: list[str] = []
        self.page = None

    async def start(self) -> None:
        ctx = await self.browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = await ctx.new_page()
        self.page.set_default_timeout(STEP_TIMEOUT_MS)
        await self.page.goto(f"{self.url}/?" + "&".join(f"bundle={n}" for n in self.names))
        await self.page.locator("h1", has_text="Overview").first.wait_for()
        await self._finished("opening the app")

    async def _finished(self, what: str) -> None:
        """Wait until streamlit's run has finished; an exception or error box on the page is an error."""
        await self.page.locator(IDLE).wait_for(state="attached")
        if await self.page.locator(ERRORS).count():
            text = (await self.page.locator(ERRORS).first.inner_text())[:160]
            raise RuntimeError(f"{what}: error on the page: {text}")

    async def open(self, kind: str) -> float:
        """Click the page's sidebar link; seconds until its run has finished."""
        link, title = STEPS[kind]
        t = time.perf_counter()
        await self.page.get_by_role("link", name=link, exact=True).click()
        await self.page.locator("h1", has_text=title).first.wait_for()
        await self._finished(kind)
        return time.perf_counter() - t

    async def gene_query(self, gene: str) -> float:
        """On the Gene neighbourhood page, type `gene` into the search box; seconds from Enter until its
        neighbour table is drawn (as `python -m app.bench` times it)."""
        frame = self.page.frame_locator('iframe[title="streamlit_searchbox.searchbox"]')
        box = frame.locator("input")
        await box.wait_for()
        await box.press_sequentially(gene, delay=40)
        await frame.get_by_text(gene, exact=True).first.wait_for()        # the server's suggestion is shown
        t = time.perf_counter()
        await box.press("Enter")
        await self.page.get_by_text(f"{gene}: 20 nearest genes").wait_for()
        await self.page.locator('[data-testid="stDataFrame"]').first.wait_for()
        took = time.perf_counter() - t
        await self._finished("gene query")
        return took

    async def step(self, i: int) -> None:
        kind = CYCLE[i % len(CYCLE)]
        try:
            if self.page is None:
                await self.start()
            if kind == "query":
                if self.page.url.split("?")[0].rstrip("/").rsplit("/", 1)[-1] != "neighbourhood":
                    await self.open("query")
                took = await self.gene_query(self.genes[(i // len(CYCLE) + self.uid * 7) % len(self.genes)])
            else:
                took = await self.open(kind)
            self.times[kind].append(took)
        except Exception as e:  # noqa: BLE001 -- every failure of a step is counted, the run goes on
            self.errors.append(f"user {self.uid} {kind}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            if self.page is not None:                      # start again from a fresh page
                await self.page.context.close()
                self.page = None
        if self.think:
            await asyncio.sleep(self.think)

    async def loop(self, deadline: float, delay: float) -> None:
        await asyncio.sleep(delay)                 # users arrive one by one over the first seconds
        i = 1 + self.uid                           # the app opens on the Overview; users start at different
        while time.perf_counter() < deadline:
            await self.step(i)
            i += 1
        if self.page is not None:
            await self.page.context.close()


async def _drive(url: str, names: list[str], genes: list[str], users: int, seconds: float, rss, alone: bool,
                 cpu=None, think: float = 0.0, cycles: int = 3):
    """`alone`: one user going round the four steps `cycles` times -> [User] (the first round, which
    computes the caches of a cold server, is dropped). Else `users` users until `seconds` are up -> their
    Users, and `cpu()` read before the browser closes (its processes still count)."""
    from playwright.async_api import async_playwright
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        if alone:
            u = User(browser, url, names, genes, 0)
            for i in range(1, cycles * len(CYCLE) + 1):
                await u.step(i)
            for k in CYCLE:
                del u.times[k][:1]
            await browser.close()
            return [u]
        deadline = time.perf_counter() + seconds
        crowd = [User(browser, url, names, genes, k, think) for k in range(users)]
        sampler = asyncio.create_task(rss(deadline))
        await asyncio.gather(*(u.loop(deadline, delay=k * 1.0) for k, u in enumerate(crowd)))
        await sampler
        used = cpu() if cpu is not None else None
        await browser.close()
        return crowd, used


def run_load(d: Path, names: list[str], users: int, seconds: float, think: float = 0.0, cycles: int = 3) -> dict:
    """Start the server; one user alone goes round the steps `cycles` times; `users` users for `seconds`
    (each waiting `think` seconds between steps); one user alone again. The three phases query disjoint
    sets of genes, so nothing the load cached helps the "after" queries."""
    import numpy as np

    from app.bench import streamlit_server
    samples: list[float] = []
    with streamlit_server(d, d / "load-streamlit.log") as (url, proc):
        async def rss(deadline: float) -> None:
            while time.perf_counter() < deadline:
                samples.append(_status_mb(proc.pid, "VmRSS:"))
                await asyncio.sleep(0.5)

        def cpu() -> tuple[float, float]:     # (server, browser and driver) CPU seconds so far
            return _cpu_seconds(proc.pid), _cpu_seconds(os.getpid(), exclude=proc.pid)

        genes = _genes(d, names[0], 40 + 2 * cycles, seed=2)
        load0 = os.getloadavg()
        before = asyncio.run(_drive(url, names, genes[:cycles], 1, 0, rss, alone=True, cycles=cycles))[0]
        rss_before = _status_mb(proc.pid, "VmRSS:")
        server0 = cpu()[0]
        t0 = time.perf_counter()
        crowd, (server1, browser1) = asyncio.run(_drive(url, names, genes[2 * cycles:], users, seconds, rss,
                                                        alone=False, cpu=cpu, think=think))
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()
        after = asyncio.run(_drive(url, names, genes[cycles:2 * cycles], 1, 0, rss, alone=True, cycles=cycles))[0]
        peak = _status_mb(proc.pid, "VmHWM:")
        rss_end = _status_mb(proc.pid, "VmRSS:")
        load2 = os.getloadavg()
    q = np.array([t for u in crowd for t in u.times["query"]])
    pages = {k: [t for u in crowd for t in u.times[k]] for k in ("overview", "modules", "compare")}
    med = lambda v: float(np.median(v)) if len(v) else float("nan")  # noqa: E731
    return {
        "users": users, "seconds": seconds, "think_s": think, "wall_s": wall, "names": names,
        "done": {k: sum(len(u.times[k]) for u in crowd) for k in CYCLE},
        "errors": [e for u in crowd for e in u.errors],
        "errors_alone": before.errors + after.errors,
        "query_median_s": float(np.median(q)) if q.size else float("nan"),
        "query_p95_s": float(np.percentile(q, 95)) if q.size else float("nan"),
        "query_max_s": float(q.max()) if q.size else float("nan"),
        "pages_median_s": {k: float(np.median(v)) if v else float("nan") for k, v in pages.items()},
        "pages_p95_s": {k: float(np.percentile(v, 95)) if v else float("nan") for k, v in pages.items()},
        "alone_before": {k: med(before.times[k]) for k in CYCLE},
        "alone_after": {k: med(after.times[k]) for k in CYCLE},
        "peak_rss_mb": peak, "rss_before_mb": rss_before, "rss_end_mb": rss_end,
        "rss_sampled_max_mb": max(samples) if samples else float("nan"),
        "cpu_s": {"server": server1 - server0, "browser": browser1, "available": wall * (os.cpu_count() or 1)},
        "loadavg": {"start": load0[0], "end_of_load": load1[0], "end": load2[0]}, "cpus": os.cpu_count(),
    }


def report(r: dict, cmd: str, n_genes: list[int]) -> str:
    """Markdown of one load run, with the targets and whether each is met."""
    b, a = r["alone_before"], r["alone_after"]
    ok = lambda good: "met" if good else "**missed**"  # noqa: E731
    n_err = len(r["errors"])
    lines = [
        f"Command: `{cmd}`", "",
        f"{r['users']} concurrent Chromium pages (one browser, one context each) for {r['seconds']:.0f} s "
        f"({r['wall_s']:.0f} s with the last steps finishing) against one streamlit server on "
        f"{', '.join(f'`{n}` ({g:,} genes)' for n, g in zip(r['names'], n_genes))}; each page opens the app once "
        f"and then loops through the Overview, a gene query (typed into the Gene neighbourhood box), Modules and "
        f"Compare by the sidebar's links, "
        + (f"{r['think_s']:g} s between steps. " if r['think_s'] else "back to back (no pause between steps). ")
        + "The browser runs on the server's cores (as the users' machines would not). Machine: "
        f"{r['cpus']} CPU cores shared with other jobs; load average (1 min) {r['loadavg']['start']:.1f} before, "
        f"{r['loadavg']['end_of_load']:.1f} at the end of the load, {r['loadavg']['end']:.1f} at the end.", "",
        "| steps done under load | Overview | gene query | Modules | Compare | errors or exception pages |",
        "|---|---:|---:|---:|---:|---:|",
        f"| count | {r['done']['overview']} | {r['done']['query']} | {r['done']['modules']} | {r['done']['compare']} "
        f"| {n_err} |", "",
        "| figure | value | target | |", "|---|---:|---:|---|",
        f"| gene query under load, median | {r['query_median_s']:.2f} s | | |",
        f"| gene query under load, 95th percentile | {r['query_p95_s']:.2f} s | <= {TARGETS['p95_query_s']:.0f} s "
        f"| {ok(r['query_p95_s'] <= TARGETS['p95_query_s'])} |",
        f"| gene query under load, max | {r['query_max_s']:.2f} s | | |",
        f"| Overview / Modules / Compare under load, median | {r['pages_median_s']['overview']:.1f} / "
        f"{r['pages_median_s']['modules']:.1f} / {r['pages_median_s']['compare']:.1f} s | | |",
        f"| Overview / Modules / Compare under load, 95th percentile | {r['pages_p95_s']['overview']:.1f} / "
        f"{r['pages_p95_s']['modules']:.1f} / {r['pages_p95_s']['compare']:.1f} s | | |",
        f"| server peak resident memory (VmHWM) | {r['peak_rss_mb']:,.0f} MB | <= {TARGETS['peak_rss_mb']:,.0f} MB "
        f"| {ok(r['peak_rss_mb'] <= TARGETS['peak_rss_mb'])} |",
        f"| server memory before the load / at the end | {r['rss_before_mb']:,.0f} / {r['rss_end_mb']:,.0f} MB | | |",
        f"| CPU seconds used during the load: server / the {r['users']} Chromium pages and their driver / all cores' total | "
        f"{r['cpu_s']['server']:.0f} / {r['cpu_s']['browser']:.0f} / {r['cpu_s']['available']:.0f} | | |",
        *[f"| one user alone, {STEPS[k][0] if k != 'query' else 'gene query'} (warm, median): before / after the "
          f"load | {b[k]:.2f} / {a[k]:.2f} s | after <= {AFTER_RATIO} x before | {ok(a[k] <= AFTER_RATIO * b[k])} |"
          for k in CYCLE],
        f"| errors or exception pages | {n_err} under load, {len(r['errors_alone'])} alone | 0 | {ok(n_err == 0 and not r['errors_alone'])} |",
    ]
    if r["errors"] or r["errors_alone"]:
        lines += ["", "Errors (first 10):", ""] + [f"- {e}" for e in (r["errors"] + r["errors_alone"])[:10]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    from app.bench import add_bundle_args, bundle_names
    from common.errors import UserError
    from common.options import check_range
    ap = argparse.ArgumentParser(prog="python -m app.load", description=__doc__.split("\n\n")[0])
    add_bundle_args(ap)
    ap.add_argument("--users", type=int, default=10, help="concurrent browser pages (default 10)")
    ap.add_argument("--seconds", type=float, default=120, help="duration of the load (default 120)")
    ap.add_argument("--think", type=float, default=0.0,
                    help="seconds each user waits between steps (default 0: back to back, the hardest case)")
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown report here (and a .json)")
    a = ap.parse_args(argv)
    check_range("users", a.users, lo=1, integer=True)
    check_range("seconds", a.seconds, lo=0, lo_open=True)
    check_range("think", a.think, lo=0)
    if not Path(CHROMIUM).exists():
        raise UserError(f"{CHROMIUM}: Chromium is missing; install it with `make browser`")
    names = bundle_names(a)
    from precompute.bundle.reader import open_bundle
    r = run_load(a.dir, names, a.users, a.seconds, a.think)
    cmd = "python -m app.load " + " ".join(sys.argv[1:] if argv is None else argv)
    text = report(r, cmd.strip(), [open_bundle(a.dir / n).n_genes for n in names])
    print(text)
    if a.out:
        from common.atomic import atomic_write_json, atomic_write_text
        atomic_write_text(a.out, text)
        atomic_write_json(a.out.with_suffix(".json"), r)


if __name__ == "__main__":
    from common.errors import run_main
    sys.exit(run_main(main))
