"""`python -m app.load` (the load benchmark) runs end to end on two small bundles with two users and
reports every step with no error; its CPU accounting reads this process tree. The benchmark's figures
are not asserted (they depend on the machine); docs/app.md has them."""
import json
import os
from pathlib import Path

import pytest

from app.load import _cpu_seconds, main
from precompute.bundle.synthetic import make_planted_bundle


def test_cpu_seconds_counts_this_process():
    t = os.times()
    own = _cpu_seconds(os.getpid())
    assert own >= 0.9 * (t.user + t.system) - 0.05            # clock ticks round down
    assert _cpu_seconds(os.getpid(), exclude=os.getpid()) == 0


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="/usr/bin/chromium is missing (make browser)")
def test_load_benchmark_runs_without_errors(tmp_path):
    for seed, name in enumerate(("a", "b")):
        make_planted_bundle(tmp_path / name, n_genes=300, n_programs=10, k=20, seed=seed)
    out = tmp_path / "load.md"
    main(["--dir", str(tmp_path), "--names", "a", "b", "--users", "2", "--seconds", "20", "--out", str(out)])
    r = json.loads(out.with_suffix(".json").read_text())
    assert r["errors"] == [] and r["errors_alone"] == []
    assert r["done"]["query"] >= 1 and r["peak_rss_mb"] > 0
    assert "| errors or exception pages | 0 under load, 0 alone | 0 | met |" in out.read_text()
