"""Real browser on bundles made by the real pipeline (tests/app/real_bundles.py): Compare TxFM against PCA,
an embedding imported with `precompute import` browsed like any bundle, and a run series followed."""
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.app.test_browser import CHROMIUM, _expect, open_page, serve

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not __import__("os").path.exists(CHROMIUM),
                                 reason=f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` "
                                        "(or `make browser`)")]


@pytest.fixture(scope="module")
def served(real_bundles, tmp_path_factory):
    """A copy of the real bundles plus `imported` (the PCA bundle's matrix exported to TSV and imported),
    served by streamlit on a free port."""
    from common.errors import run_main
    from precompute.cli import main as precompute_main
    tmp = tmp_path_factory.mktemp("served")
    root = tmp / "bundles"
    root.mkdir()
    for name in ("txfm", "pca"):
        shutil.copytree(real_bundles[name], root / name)
    shutil.copytree(real_bundles["root"] / "run-series", root / "run-series")
    genes = pd.read_parquet(root / "pca" / "genes.parquet").sort_values("gene")
    x = np.load(root / "pca" / "matrices" / "pca.npy")
    table = pd.DataFrame(x, columns=[f"d{i}" for i in range(x.shape[1])])
    table.insert(0, "gene", genes["symbol"].to_numpy())
    table.to_csv(tmp / "published.tsv", sep="\t", index=False)
    refs = real_bundles["root"].parent / "refs"
    assert run_main(precompute_main, ["import", "--embeddings", str(tmp / "published.tsv"), "--out",
                                      str(root / "imported"), "--name", "pca", "--references", str(refs),
                                      "--support-from", str(root / "pca"), "--quiet", "--n-nulls", "1", "--null-size", "100",
                                      "--k", "10", "--umap-epochs", "10", "--resolutions", "1",
                                      "--min-set-size", "3"]) == 0
    with serve(root, tmp / "streamlit.log") as url:
        yield url


def test_compare_txfm_decoder_with_pca(served):
    from playwright.sync_api import sync_playwright
    expect = _expect()
    with sync_playwright() as pw:
        browser, page = open_page(pw)
        page.goto(f"{served}/compare?bundle=txfm&bundle=pca&gene=GENE3&cmp_a=txfm:decoder&cmp_b=pca:pca")
        expect(page.get_by_role("heading", name="Compare gene matrices")).to_be_visible()
        expect(page.get_by_role("heading", name="Recall of known relationships, side by side")).to_be_visible()
        expect(page.get_by_text(re.compile(r"^Both matrices scored on the same [\d,]+ genes"))).to_be_visible()
        expect(page.get_by_text(re.compile(r"GENE3: \d+ of its top-10 neighbours kept"))).to_be_visible()
        expect(page.get_by_role("heading", name="Modules: how A's modules are spread over B's")).to_be_visible()
        expect(page.get_by_text("Adjusted Rand index")).to_be_visible()
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0
        browser.close()


def test_imported_embedding_is_browsed_like_any_bundle(served):
    from playwright.sync_api import sync_playwright
    expect = _expect()
    with sync_playwright() as pw:
        browser, page = open_page(pw)
        page.goto(f"{served}/neighbourhood?bundle=imported&gene=GENE3")
        expect(page.get_by_text("GENE3: 20 nearest genes in pca")).to_be_visible()
        expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
        page.goto(f"{served}/?bundle=imported")
        expect(page.get_by_text("Kind")).to_be_visible()
        expect(page.get_by_text("imported", exact=True).first).to_be_visible()
        # the imported copy of PCA against the PCA bundle itself: the same neighbours for every gene
        page.goto(f"{served}/compare?bundle=imported&bundle=pca&cmp_a=imported:pca&cmp_b=pca:pca")
        expect(page.get_by_text("Mean overlap of top-10 neighbours")).to_be_visible()
        expect(page.locator('[data-testid="stMetricValue"]', has_text="1.000").first).to_be_visible()
        browser.close()


def test_training_run_series_page(served):
    from playwright.sync_api import sync_playwright
    expect = _expect()
    with sync_playwright() as pw:
        browser, page = open_page(pw)
        page.goto(f"{served}/run?bundle=txfm&gene=GENE5")
        expect(page.get_by_role("heading", name="Recall of known relationships along the run")).to_be_visible()
        expect(page.get_by_text(re.compile(r"2 checkpoints, steps 2 to 4"))).to_be_visible()
        expect(page.get_by_text(re.compile(r"GENE5: its 10 nearest genes"))).to_be_visible()
        expect(page.get_by_text(re.compile(r"^(codebook|decoder) at step 4 \(64 samples\)$"))).to_be_visible()
        handle = page.get_by_role("slider", name="Checkpoint")
        handle.focus()
        handle.press("ArrowLeft")                                      # one checkpoint back
        expect(page).to_have_url(re.compile(r"step=2"))
        expect(page.get_by_text(re.compile(r"^(codebook|decoder) at step 2 \(32 samples\)$"))).to_be_visible()
        assert page.locator('[data-testid="stException"]').count() == 0
        browser.close()
