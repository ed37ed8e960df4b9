"""Links from data (issue 24): in a real browser, nothing a bundle supplies becomes a link.

Streamlit's Markdown renderer (remark-gfm) auto-links ``http://...``, ``www.`` and ``a@b.org`` in text
after backslash escapes are resolved, so escaping alone left three links to a hostile host on the Gene
neighbourhood page. Here a bundle whose gene symbols, official names, bundle folder name and
gene-set terms carry links and formulas is served to Debian's Chromium; on every page the test counts
the ``<a href>`` elements (in the page and its iframes) whose target is outside the app itself and the
hosts the app builds links to (NCBI, Ensembl, UniProt, GeneCards): zero. It also checks that the
hostile text is on the page (as text), so the count cannot pass by showing nothing.
"""
from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.app.test_browser import CHROMIUM, _expect, open_page, serve
from tests.reliability.conftest import reseal

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason=f"{CHROMIUM} is missing: install it with `make browser`")]

# the links the app builds itself: gene cards (NCBI, Ensembl, UniProt, GeneCards) and a module's STRING network
# (its genes URL-encoded in the query; Enrichr is a form the browser posts, not a link)
ALLOWED_HOSTS = {"127.0.0.1", "www.ncbi.nlm.nih.gov", "www.ensembl.org", "www.uniprot.org", "www.genecards.org",
                 "string-db.org"}
HOSTILE = ["[phish](http://evil.example/login)", '=HYPERLINK("http://evil.example/x","open")',
           "see https://evil.example/a", "www.evil.example", "ops@evil.example"]
OTHER = "mail@evil.example"          # the second bundle's folder name


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory):
    """Two planted bundles: `alpha`, whose TP53 neighbours, names and a gene-set term are hostile, and
    a copy named like an e-mail address (for Compare and the sidebar)."""
    from precompute.bundle.reader import open_bundle
    from precompute.bundle.synthetic import make_planted_bundle
    root = tmp_path_factory.mktemp("links")
    b = make_planted_bundle(root / "alpha", n_genes=300, n_programs=10, k=20, seed=0)
    g = pd.read_parquet(b / "genes.parquet")
    tp53 = int(np.flatnonzero(g["symbol"].to_numpy() == "TP53")[0])
    idx, _ = open_bundle(b).knn("codebook")
    rows = [int(r) for r in idx[tp53, :len(HOSTILE)]]
    g.loc[rows, "symbol"] = HOSTILE
    g.loc[rows, "name"] = "see http://evil.example/name and www.evil.example"
    g.loc[tp53, "name"] = "tumor protein p53, http://evil.example/p53"
    g.to_parquet(b / "genes.parquet", index=False)
    gmt = sorted((b / "references" / "gmt").glob("*.gmt"))[0]
    lines = gmt.read_text().splitlines()
    first = lines[0].split("\t")
    lines[0] = "\t".join(["www.evil.example pathway", "http://evil.example/term", *first[2:]])
    gmt.write_text("\n".join(lines) + "\n")
    reseal(b)
    import shutil
    shutil.copytree(b, root / OTHER)
    return root


def _outside_links(page) -> tuple[list[str], str]:
    """(absolute targets of <a href> outside ALLOWED_HOSTS, in the page and every iframe; the page text)."""
    bad, text = [], ""
    for frame in page.frames:
        try:
            hrefs = frame.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
            text += frame.evaluate("() => document.body ? document.body.innerText : ''")
        except Exception:  # noqa: BLE001 -- a frame that went away while reading
            continue
        for h in hrefs:
            u = urllib.parse.urlsplit(h)
            if u.scheme in ("http", "https") and u.hostname in ALLOWED_HOSTS:
                continue
            if u.scheme in ("about", "blob", "data") and "evil" not in h:
                continue
            bad.append(h)
    return bad, text


PAGES = [   # (path and query, text that shows the page finished, hostile text it must show)
    (f"/neighbourhood?bundle=alpha&gene={urllib.parse.quote(HOSTILE[0])}", "20 nearest genes", "evil.example/login"),
    ("/neighbourhood?bundle=alpha&gene=TP53", "TP53: 20 nearest genes", "evil.example/p53"),
    ("/?bundle=alpha", "Overview", "Overview"),
    ("/modules?bundle=alpha&gene=TP53", "genes", "evil.example"),
    (f"/enrichment?bundle=alpha&genes={urllib.parse.quote(','.join(HOSTILE[:3] + ['TP53']))}",
     "gene sets overlap the list", "evil.example"),
    (f"/compare?bundle=alpha&bundle={urllib.parse.quote(OTHER)}&gene=TP53", "Aligned maps", OTHER),
    (f"/gene_map?bundle=alpha&gene={urllib.parse.quote(HOSTILE[3])}", "Gene map", "Gene map"),
    ("/subspaces?bundle=alpha&gene=TP53", "Subspaces", "Subspaces"),
]


def test_no_link_from_data_on_any_page(hostile_root, tmp_path):
    from playwright.sync_api import sync_playwright
    expect = _expect()
    found = {}
    with serve(hostile_root, tmp_path / "streamlit.log") as url, sync_playwright() as pw:
        browser, page = open_page(pw)
        for path, ready, shown in PAGES:
            page.goto(url + path)
            expect(page.get_by_text(re.compile(re.escape(ready))).first).to_be_visible()
            page.wait_for_timeout(1500)                   # the rest of the run (cards, tables) renders
            bad, text = _outside_links(page)
            found[path] = bad
            assert shown in text, f"{path}: {shown!r} is not on the page, so the check proves nothing"
            assert "Traceback" not in text and "Internal error" not in text, path
        browser.close()
    assert all(not v for v in found.values()), {k: v for k, v in found.items() if v}
