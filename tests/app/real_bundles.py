"""Real bundles for the app tests: tiny corpus -> `txfm train` (a few steps of a very small model)
-> `txfm baseline-pca` -> `precompute run` for both, with small/fast parameters (about 30-60 s on
2 busy cores). Built once per test session (see tests/conftest.py `real_bundles`)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

N_GENES = 120
N_PROGRAMS = 6


def gene_symbols(n: int) -> list[str]:
    return [f"GENE{i}" for i in range(n)]


def make_corpus(path: Path, n_samples: int = 160, seed: int = 0) -> tuple[Path, np.ndarray]:
    from txfm.corpus import CorpusWriter
    rng = np.random.default_rng(seed)
    programs = rng.integers(0, N_PROGRAMS, N_GENES)
    activity = rng.gamma(2.0, 1.0, (n_samples, N_PROGRAMS))
    counts = rng.poisson(activity[:, programs] * rng.gamma(2.0, 1.0, N_GENES) * 3)
    with CorpusWriter(path, gene_symbols(N_GENES), [f"ENSG9{i:010d}" for i in range(N_GENES)], shard_size=64) as w:
        d = w.add_dataset("a", np.arange(N_GENES))
        w.add_samples(d, counts, pd.DataFrame({"batch": ["r1"] * n_samples}))
    return path, programs


def build(root: Path) -> dict[str, Path]:
    """Build corpus, runs, references, the bundles `txfm` and `pca` under root/bundles, and the run's
    series `run-series` (checkpoints at steps 2 and 4) beside them."""
    from common.errors import run_main
    from precompute.cli import main as precompute_main
    from precompute.bundle.synthetic import write_synthetic_references
    from txfm.__main__ import main as txfm_main

    root = Path(root)
    corpus, programs = make_corpus(root / "corpus")
    refs = write_synthetic_references(root / "refs", gene_symbols(N_GENES), programs, pairs_per_source=120,
                                      n_random_sets=8)
    run = root / "run"
    argv = ["train", "--corpus", str(corpus), "--out", str(run), "--dim", "16", "--depth", "1", "--heads", "2",
            "--reveal", "32", "--batch-size", "16", "--max-steps", "4", "--val-every", "0", "--save-every", "2",
            "--workers", "0"]
    assert run_main(txfm_main, argv) == 0, "txfm train failed"
    assert run_main(txfm_main, ["baseline-pca", "--corpus", str(corpus), "--out", str(root / "pca" / "pca.pt"),
                                "--min-cells", "1"]) == 0, "txfm baseline-pca failed"
    fast = ["--references", str(refs), "--quiet", "--n-nulls", "1", "--null-size", "100", "--k", "10",
            "--umap-epochs", "10", "--resolutions", "1", "--min-set-size", "3"]
    out = {"txfm": root / "bundles" / "txfm", "pca": root / "bundles" / "pca"}
    assert run_main(precompute_main, ["run", "--checkpoint", str(run / "last.pt"), "--out", str(out["txfm"]),
                                      "--rank", "codebook=8"]
                    + fast) == 0, "precompute run (txfm) failed"
    assert run_main(precompute_main, ["run", "--checkpoint", str(root / "pca" / "pca.pt"), "--baseline", "pca",
                                      "--out", str(out["pca"])] + fast) == 0, "precompute run (pca) failed"
    from precompute.series import build_series
    build_series(run, root / "bundles" / "run-series", refs, pca=out["pca"], progress=False, log=lambda *_: None)
    return out


if __name__ == "__main__":
    t = time.time()
    print(build(Path(sys.argv[1])), f"{time.time() - t:.1f}s")
