"""`python -m precompute series`: one light bundle per saved checkpoint of a run."""
import json

import pytest

from common.errors import UserError
from precompute.bundle.reader import read_series
from precompute.bundle.validate import validate_bundle


def test_series_of_the_real_run(real_bundles):
    """The real run saved steps 2 and 4 (last.pt is step 4, not repeated); every bundle is valid and holds
    what a direct `precompute run` of its checkpoint with the light parameters gives."""
    from precompute.checkpoint_source import load_gene_matrices
    from precompute.pipeline import build_bundle
    from precompute.series import light_params
    series_dir = real_bundles["root"] / "run-series"
    s = read_series(series_dir)
    assert [c["step"] for c in s["checkpoints"]] == [2, 4]
    assert [c["samples_seen"] for c in s["checkpoints"]] == [32, 64]            # batch 16
    for c in s["checkpoints"]:
        assert validate_bundle(series_dir / c["bundle"]) == []
    first = s["checkpoints"][0]
    mats, genes, source = load_gene_matrices(first["checkpoint"])
    refs = real_bundles["root"].parent / "refs"
    direct = build_bundle(mats, genes, refs, real_bundles["root"].parent / "direct-step2", source, light_params(),
                          progress=False)
    assert json.loads((direct / "recall" / "best.json").read_text()) == \
        json.loads((series_dir / first["bundle"] / "recall" / "best.json").read_text())


def test_series_refuses_what_it_should(real_bundles, tmp_path):
    from precompute.series import build_series
    refs = real_bundles["root"].parent / "refs"
    run = real_bundles["root"].parent / "run"
    with pytest.raises(UserError, match="already exists|--overwrite"):
        build_series(run, real_bundles["root"] / "run-series", refs, progress=False)
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(UserError, match="no checkpoints"):
        build_series(tmp_path / "empty-run", tmp_path / "s", refs, progress=False)
    with pytest.raises(UserError, match="run folder not found"):
        build_series(tmp_path / "nope", tmp_path / "s", refs, progress=False)
    assert not (tmp_path / "s").exists()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "series.json").write_text('{"format": "txfm-run-series", "checkpoints": [{"step": 1}]}')
    from precompute.bundle.files import BundleError
    with pytest.raises(BundleError, match="malformed"):
        read_series(tmp_path / "bad")
