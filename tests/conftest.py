"""Shared fixtures: the real data folder beside the project, skipped when absent."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when it is absent (a user's clone)."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (it sits beside the project in CI)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def real_bundles(tmp_path_factory) -> dict[str, Path]:
    """Bundles made by the real pipeline, once per session (~40 s on 2 busy cores): a tiny corpus ->
    `txfm train` (4 steps of a 1-layer, 16-wide model) -> `txfm baseline-pca` -> `precompute run`.

    Returns {"root": a bundles folder holding `txfm`, `pca` and a copy of each (`txfm-b`, `pca-b`, so
    Compare has a pair with the same matrices), "txfm": ..., "pca": ...}. Treat them as read-only;
    copy one (see tests/reliability) to damage it.
    """
    import shutil
    import sys
    sys.path.insert(0, str(ROOT / "tests" / "app"))
    from real_bundles import build

    work = tmp_path_factory.mktemp("real")
    out = build(work)
    root = out["txfm"].parent
    for name in ("txfm", "pca"):
        shutil.copytree(root / name, root / f"{name}-b")
    return {"root": root, **out}
