"""Small synthetic corpora with real structure (gene programs), built with the Corpus writer."""
import numpy as np
import pandas as pd
import pytest

from txfm.corpus import CorpusWriter


def make_corpus(path, n_samples=96, n_genes=40, n_programs=4, seed=0, shard_size=32, partial=True):
    """Counts from a few gene programs; with ``partial`` a second dataset measures only half the genes."""
    rng = np.random.default_rng(seed)
    programs = rng.integers(0, n_programs, n_genes)
    activity = rng.gamma(2.0, 1.0, (n_samples, n_programs))
    rate = activity[:, programs] * rng.gamma(2.0, 1.0, n_genes) * 3
    counts = rng.poisson(rate)
    genes = [f"G{i}" for i in range(n_genes)]
    half = np.arange(0, n_genes, 2)
    n_a = n_samples // 2
    with CorpusWriter(path, genes, [f"ENSG{i:011d}" for i in range(n_genes)], shard_size=shard_size) as w:
        a = w.add_dataset("a", np.arange(n_genes))
        w.add_samples(a, counts[:n_a], pd.DataFrame({"batch": np.repeat(["r1", "r2"], [n_a // 2, n_a - n_a // 2])}))
        b = w.add_dataset("b", half if partial else np.arange(n_genes))
        cb = counts[n_a:].copy()
        if partial:
            cb[:, np.setdiff1d(np.arange(n_genes), half)] = 0
        w.add_samples(b, cb, pd.DataFrame({"batch": ["r3"] * (n_samples - n_a)}))
    return path


@pytest.fixture
def tiny_corpus(tmp_path):
    return str(make_corpus(tmp_path / "corpus"))
