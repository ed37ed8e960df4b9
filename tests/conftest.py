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
