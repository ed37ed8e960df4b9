"""Fixtures for the app tests: small synthetic bundles with planted gene programs (built once)."""
import json
import shutil
from pathlib import Path

import pytest

from precompute.bundle.synthetic import make_planted_bundle as make_bundle


@pytest.fixture(scope="session")
def bundles_dir(tmp_path_factory) -> Path:
    """A bundles folder with two valid bundles of the same 300 genes: `alpha` and `beta` (another variant)."""
    root = tmp_path_factory.mktemp("bundles")
    make_bundle(root / "alpha", n_genes=300, n_programs=10, k=20, seed=0)
    make_bundle(root / "beta", n_genes=300, n_programs=10, k=20, seed=0, variant=1)
    return root


@pytest.fixture(scope="session")
def bad_bundles_dir(bundles_dir, tmp_path_factory) -> Path:
    """A bundles folder holding one bundle whose knn file was truncated after it was written."""
    root = tmp_path_factory.mktemp("bad")
    shutil.copytree(bundles_dir / "alpha", root / "broken")
    p = root / "broken" / "knn" / "codebook.indices.npy"
    p.write_bytes(p.read_bytes()[:200])
    return root


@pytest.fixture(scope="session")
def alpha(bundles_dir):
    from precompute.bundle.reader import open_bundle
    return open_bundle(bundles_dir / "alpha")


def manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())
