"""Reading bundles: discovery, lazy memory-mapped access, validator messages, no torch in the import chain."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from precompute.bundle.reader import BundleError, discover_bundles, open_bundle, validate

ROOT = Path(__file__).resolve().parents[2]


def test_discover_and_open(bundles_dir, alpha):
    assert [p.name for p in discover_bundles(bundles_dir)] == ["alpha", "beta"]
    assert discover_bundles(bundles_dir / "alpha") == [bundles_dir / "alpha"]   # a bundle folder itself
    assert discover_bundles(bundles_dir / "missing") == []
    assert alpha.matrix_names == ["codebook", "decoder", "pca"]
    assert alpha.n_genes == 300 and alpha.symbols[0] == "TP53"
    sub = alpha.subspace("codebook")
    assert isinstance(sub, np.memmap) and sub.dtype == np.float32 and sub.shape[0] == 300
    idx, sims = alpha.knn("codebook")
    assert idx.shape == (300, 20) and np.all(np.diff(sims, axis=1) <= 1e-6)
    # The chosen rank is the manifest's (kNN were built there), not best.json's best-recall rank.
    assert alpha.default_rank("codebook") == 8
    assert json.loads((alpha.path / "recall/best.json").read_text())["codebook"]["rank"] != 8
    assert set(alpha.gmt_libraries()) == {"GO_synthetic", "Hallmark_synthetic"}
    validate(alpha.path)


def test_validator_message_names_file_and_fix(bad_bundles_dir, tmp_path):
    with pytest.raises(BundleError, match=r"knn/codebook\.indices\.npy.*\n.*Rebuild it with"):
        validate(bad_bundles_dir / "broken")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "manifest.json").write_text(json.dumps({"format": "something-else", "format_version": 1}))
    with pytest.raises(BundleError, match=r"manifest\.json: format is 'something-else'"):
        open_bundle(tmp_path / "x")


def test_missing_file_is_named(bundles_dir, tmp_path):
    shutil.copytree(bundles_dir / "alpha", tmp_path / "a")
    (tmp_path / "a" / "knn" / "decoder.sims.npy").unlink()
    b = open_bundle(tmp_path / "a")
    with pytest.raises(BundleError, match=r"decoder\.sims\.npy: file is missing"):
        b.knn("decoder")


def test_app_modules_never_import_torch():
    code = ("import sys; import app.params, app.loaders, app.ui, precompute.bundle.reader, app.enrichment, app.neighbours, app.export, "
            "app.network, app.charts, app.search, precompute.bundle.validate, precompute.bundle.compare; "
            "bad = [m for m in ('torch', 'sklearn', 'umap', 'txfm') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
