"""Real browser: Debian's Chromium driven by Playwright against the app on a free localhost port.

Opens the gene map, searches a gene, opens its neighbourhood, downloads the CSV and checks it;
lasso-selects genes on the map and sends them to the Enrichment page.
"""
import contextlib
import csv
import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                 reason=f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` "
                                        "(or `make browser`)")]


# Sized for a busy 2-core machine (other jobs running): a cold Streamlit page, its Plotly bundle and
# a 300-point WebGL map can take well over Playwright's default 5 s there. Every wait below is on a
# condition (an element, a URL, a download), so a fast machine never waits this long.
UI_TIMEOUT_MS = 90_000
START_TIMEOUT_S = 120


def _expect():
    from playwright.sync_api import expect
    expect.set_options(timeout=UI_TIMEOUT_MS)
    return expect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(bundles: Path, log_path: Path):
    """`streamlit run app/main.py` on a free localhost port over the bundles folder; yields its URL."""
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--", "--bundles", str(bundles)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + START_TIMEOUT_S
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200:
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("streamlit did not start:\n" + Path(log_path).read_text())
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def open_page(pw, **kw):
    """(browser, page): Debian's Chromium, a 1400 x 1000 page with the UI timeout."""
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, **kw)
    page.set_default_timeout(UI_TIMEOUT_MS)
    return browser, page


@pytest.fixture(scope="module")
def server(bundles_dir, tmp_path_factory):
    with serve(bundles_dir, tmp_path_factory.mktemp("server") / "streamlit.log") as url:
        yield url


def test_map_search_neighbourhood_download(server, alpha, tmp_path):
    from playwright.sync_api import sync_playwright
    expect = _expect()

    with sync_playwright() as pw:
        browser, page = open_page(pw, accept_downloads=True)
        page.goto(f"{server}/gene_map")
        expect(page.get_by_role("heading", name="Gene map")).to_be_visible()
        expect(page.locator(".js-plotly-plot").first).to_be_visible()

        box = page.get_by_label("Highlight genes (comma or space separated)")
        expect(box).to_be_editable()
        box.fill("TP53")
        box.press("Enter")
        # The rerun has finished when the URL carries the gene (sync_url runs at the end of a run).
        expect(page).to_have_url(re.compile(r"gene=TP53"))
        # The map gains a "highlighted" trace (its legend entry is SVG; the label is drawn in WebGL).
        expect(page.locator(".js-plotly-plot .legendtext", has_text="highlighted").first).to_be_visible()
        page.screenshot(path=str(tmp_path / "gene_map.png"))

        page.get_by_role("link", name="Gene neighbourhood").click()
        expect(page.get_by_role("heading", name="Gene neighbourhood")).to_be_visible()
        expect(page.get_by_text("TP53: 20 nearest genes")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/neighbourhood\?.*gene=TP53"))   # the view is shareable
        # exact: the dataframe's own toolbar has a "Download as CSV" button when the mouse is over it
        csv_button = page.get_by_role("button", name="CSV", exact=True)
        expect(csv_button).to_be_enabled()
        with page.expect_download(timeout=UI_TIMEOUT_MS) as dl:
            csv_button.click()
        path = tmp_path / "neighbours.csv"
        dl.value.save_as(path)
        assert dl.value.suggested_filename == "TP53_codebook_r{}_neighbours.csv".format(alpha.default_rank("codebook"))
        page.screenshot(path=str(tmp_path / "neighbourhood.png"))
        browser.close()

    rows = list(csv.DictReader(io.StringIO(Path(path).read_text())))
    idx, sims = alpha.knn("codebook")
    assert [r["gene"] for r in rows] == [alpha.symbols[i] for i in idx[0, :20]]
    assert all(abs(float(r["cosine"]) - float(s)) <= 6e-5 for r, s in zip(rows, sims[0, :20]))  # 4 decimals
    assert rows[0]["rank"] == "1" and set(rows[0]) == {"rank", "gene", "cosine", "known", "sources", "shared_sets",
                                                       "evidence"}


def test_lasso_selection_goes_to_enrichment(server):
    from playwright.sync_api import sync_playwright
    expect = _expect()

    with sync_playwright() as pw:
        browser, page = open_page(pw)
        page.goto(f"{server}/gene_map?bundle=alpha")
        expect(page.locator(".js-plotly-plot").first).to_be_visible()
        area = page.locator(".js-plotly-plot .nsewdrag").first
        expect(area).to_be_visible()
        area.hover()                                      # the toolbar shows on hover; a drag pans by default
        page.locator('.js-plotly-plot .modebar-btn[data-title="Lasso Select"]').first.click()
        b = area.bounding_box()
        # A lasso around the whole plot area.
        corners = [(0.05, 0.05), (0.95, 0.05), (0.95, 0.95), (0.05, 0.95), (0.05, 0.07)]
        page.mouse.move(b["x"] + b["width"] * corners[0][0], b["y"] + b["height"] * corners[0][1])
        page.mouse.down()
        for fx, fy in corners[1:]:
            page.mouse.move(b["x"] + b["width"] * fx, b["y"] + b["height"] * fy, steps=8)
        page.mouse.up()
        heading = page.get_by_text(re.compile(r"^Selection: \d+ genes$"))
        expect(heading).to_be_visible()
        n = int(heading.inner_text().split()[1])
        assert 100 < n <= 300                      # most of the 300 genes lie inside the lasso
        page.get_by_role("button", name="Send selection to Enrichment").click()
        expect(page.get_by_text(f"{n} genes mapped to bundle alpha")).to_be_visible()
        expect(page.get_by_text(re.compile(r"gene sets overlap the list"))).to_be_visible()
        browser.close()


def test_type_ahead_search_in_the_browser(server):
    """Typing in the gene box asks the server for suggestions (no gene list in the page); Enter opens the
    first one: an alias resolves to its gene."""
    from playwright.sync_api import sync_playwright
    expect = _expect()

    with sync_playwright() as pw:
        browser, page = open_page(pw)
        page.goto(f"{server}/neighbourhood?bundle=alpha")
        expect(page.get_by_text("Pick a gene")).to_be_visible()
        frame = page.frame_locator('iframe[title="streamlit_searchbox.searchbox"]')
        box = frame.locator("input")
        expect(box).to_be_editable()
        box.press_sequentially("p21", delay=60)
        expect(frame.get_by_text("p21 → CDKN1A")).to_be_visible()
        box.press("Enter")
        expect(page.get_by_text("CDKN1A: 20 nearest genes")).to_be_visible()
        expect(page).to_have_url(re.compile(r"gene=CDKN1A"))
        # a broad prefix gets a dozen suggestions from the server, not the bundle's 300 genes
        box = frame.locator("input")
        expect(box).to_be_editable()
        box.press_sequentially("GENE", delay=60)
        expect(frame.get_by_text("GENE00", exact=False).first).to_be_visible()
        assert frame.locator('[id*="-option-"]').count() == 12
        browser.close()


def test_back_and_forward_return_to_the_previous_gene_and_page(server):
    """Each change of view is a browser history entry: Back returns to the previous gene, then to the
    previous page; Forward goes again."""
    from playwright.sync_api import sync_playwright
    expect = _expect()

    with sync_playwright() as pw:
        browser, page = open_page(pw)
        page.goto(f"{server}/modules?bundle=alpha&gene=TP53")
        expect(page.get_by_role("heading", name="Modules")).to_be_visible()
        page.get_by_role("link", name="Gene neighbourhood").click()
        expect(page.get_by_text("TP53: 20 nearest genes")).to_be_visible()
        box = page.frame_locator('iframe[title="streamlit_searchbox.searchbox"]').locator("input")
        expect(box).to_be_editable()
        box.press_sequentially("MDM2", delay=60)
        expect(page.frame_locator('iframe[title="streamlit_searchbox.searchbox"]')
               .get_by_text("MDM2", exact=True).first).to_be_visible()
        box.press("Enter")
        expect(page.get_by_text("MDM2: 20 nearest genes")).to_be_visible()
        expect(page).to_have_url(re.compile(r"gene=MDM2"))
        page.go_back()
        expect(page.get_by_text("TP53: 20 nearest genes")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/neighbourhood\?.*gene=TP53"))
        page.go_back()
        expect(page.get_by_role("heading", name="Modules")).to_be_visible()
        page.go_forward()
        expect(page.get_by_text("TP53: 20 nearest genes")).to_be_visible()
        page.go_forward()
        expect(page.get_by_text("MDM2: 20 nearest genes")).to_be_visible()
        browser.close()


def test_clicking_a_map_point_opens_that_gene(server):
    """A click on one gene of the map (not a box or lasso) opens its neighbourhood."""
    from playwright.sync_api import sync_playwright
    expect = _expect()

    with sync_playwright() as pw:
        browser, page = open_page(pw)
        page.goto(f"{server}/gene_map?bundle=alpha&gene=MDM2")
        expect(page.locator(".js-plotly-plot .legendtext", has_text="highlighted").first).to_be_visible()
        # the highlighted gene's pixel, from plotly's own axes (data -> pixel), then a click on it
        xy = page.evaluate("""() => {
            const gd = document.querySelector('.js-plotly-plot');
            const tr = gd._fullData.find(t => t.name === 'highlighted');
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
            return [box.left + xa.l2p(tr.x[0]), box.top + ya.l2p(tr.y[0])];
        }""")
        page.mouse.click(xy[0], xy[1])
        expect(page.get_by_text("MDM2: 20 nearest genes")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/neighbourhood\\?.*gene=MDM2"))
        browser.close()


# ---- the ego network: labels that overlap nothing, red edges that explain themselves ---------------------
LABEL_BOXES_JS = """() => {
    const gd = [...document.querySelectorAll('.js-plotly-plot')].find(g => g._fullData.some(t => t.name === 'labels'));
    const texts = [...gd.querySelectorAll('.textpoint text')];
    return texts.map(t => { const r = t.getBoundingClientRect();
        return {text: t.textContent, x0: r.left, y0: r.top, x1: r.right, y1: r.bottom,
                fill: getComputedStyle(t).fill}; });
}"""


def _ego_labels_do_not_overlap(page, gene: str, k: int):
    """The ego network's label boxes as drawn: one per gene, the query gene's in red, no two overlapping."""
    boxes = page.evaluate(LABEL_BOXES_JS)
    assert len(boxes) == k + 1, [b["text"] for b in boxes]
    mine = [b for b in boxes if b["text"] == gene]
    assert len(mine) == 1 and mine[0]["fill"] == "rgb(214, 39, 40)"          # the query gene's label, red
    for i, a in enumerate(boxes):
        assert a["x1"] - a["x0"] > 0 and a["y1"] - a["y0"] > 0
        for b in boxes[i + 1:]:
            assert not (a["x0"] < b["x1"] and b["x0"] < a["x1"] and a["y0"] < b["y1"] and b["y0"] < a["y1"]), (a, b)


def _hover_first_red_edge(page) -> tuple[str, str]:
    """Move the mouse onto the middle of the first red edge; returns (hover text plotly holds for it, the hover
    label drawn)."""
    found = page.evaluate("""() => {
        const gd = [...document.querySelectorAll('.js-plotly-plot')].find(g => g._fullData.some(t => t.name === 'labels'));
        const tr = gd._fullData.find(t => t.name === 'known pair');
        if (!tr) return null;
        gd.scrollIntoView({block: 'center'});
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
        return [box.left + xa.l2p(tr.x[0]), box.top + ya.l2p(tr.y[0]), tr.hovertext[0]];
    }""")
    assert found is not None, "no red edge in the ego network"
    page.mouse.move(found[0] - 30, found[1] - 30)
    page.mouse.move(found[0], found[1], steps=5)
    label = page.locator(".js-plotly-plot .hoverlayer .hovertext").first
    _expect()(label).to_be_visible()
    return found[2], label.text_content()


def test_ego_network_labels_and_red_edge_evidence(server, alpha):
    """k = 20: every gene labelled, no two label boxes overlapping as Chromium draws them; hovering the middle
    of a red edge shows the pair, the lists that hold it and the gene sets both genes belong to."""
    from playwright.sync_api import sync_playwright
    from app.evidence import SetIndex
    from app.neighbours import PairIndex
    from app.text import plain
    expect = _expect()
    with sync_playwright() as pw:
        browser, page = open_page(pw)
        page.goto(f"{server}/neighbourhood?bundle=alpha&gene=TP53&threshold=0.3")
        expect(page.get_by_text("TP53: 20 nearest genes")).to_be_visible()
        expect(page.locator(".js-plotly-plot .textpoint text").first).to_be_visible()
        _ego_labels_do_not_overlap(page, "TP53", 20)
        held, shown = _hover_first_red_edge(page)
        page.screenshot(path=str(Path(os.environ.get("TMPDIR", "/tmp")) / "ego_hover.png"))
        browser.close()
    # the pair named in the hover, and what its evidence must be, from the bundle's files
    pair = re.match(r"<b>(\S+) – (\S+)</b>", held)
    assert pair, held
    a, b = (int(np.flatnonzero(alpha.symbols == s)[0]) for s in pair.groups())
    sources = PairIndex.from_pairs(alpha.pairs, alpha.symbols).partners(a)[b]
    ix = SetIndex.from_libraries({lib: alpha.gene_sets(lib) for lib in alpha.gmt_libraries()}, alpha.symbols)
    shared = ix.shared(a, b, ix.default_libraries())
    assert f"known pair in {', '.join(sources)}" in held
    assert len(shared) > 0 and f"{len(shared)} shared gene sets" in held
    for line in ix.describe(shared).split(" | "):
        assert plain(line) in held
    # the label drawn says the same (plotly draws each <br> line as its own line of text)
    assert f"{pair.group(1)} – {pair.group(2)}" in shown and f"known pair in {', '.join(sources)}" in shown
    assert ix.describe(shared).split(" | ")[0] in shown


DEMO = ROOT / "bundles" / "demo"


@pytest.mark.skipif(not (DEMO / "manifest.json").exists(), reason=f"{DEMO} is absent: `make demo` builds it")
def test_ego_network_labels_on_the_demo_bundle(tmp_path):
    """The same check on the real demo bundle (real gene symbols, real references), on its most connected gene."""
    from playwright.sync_api import sync_playwright
    from precompute.bundle.reader import open_bundle
    expect = _expect()
    b = open_bundle(DEMO)
    counts = pd.concat([b.pairs["gene_a"], b.pairs["gene_b"]]).value_counts()
    gene = str(counts.index[0])
    with serve(DEMO.parent, tmp_path / "streamlit.log") as url, sync_playwright() as pw:
        browser, page = open_page(pw)
        page.goto(f"{url}/neighbourhood?bundle=demo&gene={gene}&matrix=decoder&threshold=0.3")
        expect(page.get_by_text(f"{gene}: 20 nearest genes")).to_be_visible()
        expect(page.locator(".js-plotly-plot .textpoint text").first).to_be_visible()
        _ego_labels_do_not_overlap(page, gene, 20)
        page.screenshot(path=str(tmp_path / "demo_ego.png"))
        browser.close()


def test_module_opens_in_string_and_enrichr(server, alpha):
    """The Modules page links the module to STRING (genes in the URL) and posts it to Enrichr from the browser
    (a form; the request is caught here, nothing leaves the machine)."""
    from urllib.parse import unquote
    from playwright.sync_api import sync_playwright
    expect = _expect()
    res = "res_0.5"
    home = int(alpha.modules("codebook")[res][0])                          # TP53's module
    genes = [str(alpha.symbols[r]) for r in np.flatnonzero(alpha.modules("codebook")[res].to_numpy() == home)]
    with sync_playwright() as pw:
        browser, page = open_page(pw)
        posted = []

        def catch(route):
            posted.append(route.request.post_data_buffer)
            route.fulfill(status=200, content_type="text/html", body="<html><body>caught</body></html>")

        page.context.route("https://maayanlab.cloud/**", catch)
        page.goto(f"{server}/modules?bundle=alpha&gene=TP53&resolution={res}")
        link = page.get_by_role("link", name="STRING")
        expect(link).to_be_visible()
        href = link.get_attribute("href")
        assert href.startswith("https://string-db.org/cgi/network?identifiers=") and href.endswith("&species=9606")
        assert unquote(href.split("identifiers=")[1].split("&")[0]).split("\r") == genes
        button = page.frame_locator('iframe[srcdoc*="Enrichr"]').get_by_role("button", name="Enrichr")
        expect(button).to_be_visible()
        with page.context.expect_page() as tab:
            button.click()
        expect(tab.value.get_by_text("caught")).to_be_visible()
        browser.close()
    body = posted[0].decode()
    assert 'name="list"' in body and "\r\n".join(genes) in body.replace("\n", "\r\n").replace("\r\r", "\r")
    assert f"TxFM alpha codebook {res} module {home}" in body
