"""The trust badge: levels worked out by hand from recall, chance and the PCA bundle's recall."""
import pytest

from app.quality import verdict


@pytest.mark.parametrize("recall,pca,is_pca,level", [
    (None, 0.37, False, "unknown"),
    (0.101, 0.373, False, "noise"),          # the shared TxFM codebook: at chance
    (0.12, 0.373, False, "noise"),           # within 0.03 of chance
    (0.25, 0.373, False, "weak"),            # 0.67x PCA
    (0.19, 0.215, False, "close"),           # the demo decoder: 0.88x
    (0.384, 0.373, False, "good"),           # the shared TxFM decoder: 1.03x
    (0.373, None, True, "baseline"),
    (0.30, None, False, "close"),            # above chance, no PCA bundle to compare with
])
def test_levels(recall, pca, is_pca, level):
    v = verdict(recall, 0.10, pca, is_pca)
    assert v.level == level
    if level in ("weak", "close", "good") and pca:
        assert f"{recall / pca:.2f}x" in v.label and f"{pca:.3f}" in v.text


def test_overview_start_panel_and_badges(monkeypatch, bundles_dir):
    from tests.app.test_pages import make_app, texts
    at = make_app(monkeypatch, bundles_dir, bundle="alpha").run()
    assert not at.exception and not at.error
    md = texts(at.markdown)
    for term in ("Bundle.", "Codebook.", "Decoder.", "PCA.", "Rank."):
        assert f"**{term}**" in md
    assert "Start here" in texts(at.subheader)
    # the planted fixture has no PCA bundle: its matrices are judged against chance only
    assert "no PCA bundle of the same data" in texts(at.caption)
