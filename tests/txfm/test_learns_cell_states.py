"""Slow: the CLS embedding learns planted cell types, and more so with more training.

Four cell types, each with 40 marker genes at 30x over a shared background of 2,000 genes;
K = 256 revealed genes. kNN accuracy of the CLS (3-fold, k = 15); chance is 0.25.
"""
import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from txfm.config import ModelConfig, TrainConfig
from txfm.corpus import CorpusWriter
from txfm.inference import embed
from txfm.trainer import train


@pytest.mark.slow
def test_cls_learns_planted_cell_types(tmp_path):
    rng = np.random.default_rng(0)
    g, n = 2000, 1200
    base = rng.gamma(0.3, 1.0, g)
    labels = rng.integers(0, 4, n)
    rate = np.tile(base, (n, 1))
    for t in range(4):
        rate[np.ix_(labels == t, rng.choice(g, 40, replace=False))] *= 30
    rate = rate / rate.sum(1, keepdims=True) * rng.lognormal(7, 0.3, n)[:, None]
    x = rng.poisson(rate)
    genes = [f"G{i}" for i in range(g)]
    with CorpusWriter(tmp_path / "c", genes) as w:
        w.add_samples(w.add_dataset("d", np.arange(g)), x, pd.DataFrame({"batch": rng.choice(["a", "b", "c"], n)}))
    acc = {}
    for steps in (300, 1200):
        out = tmp_path / f"run{steps}"
        train(TrainConfig(corpus=str(tmp_path / "c"), out=str(out), reveal=256, batch_size=32, max_steps=steps,
                          val_every=0, precision="fp32"), ModelConfig(n_genes=g, dim=64, depth=2, heads=4), quiet=True)
        e = embed(out / "last.pt", x, genes, progress=False).cls
        z = (e - e.mean(0)) / (e.std(0) + 1e-9)
        acc[steps] = cross_val_score(KNeighborsClassifier(15), z, labels, cv=3).mean()
    print(f"kNN accuracy of the CLS after 300 / 1200 steps: {acc[300]:.2f} / {acc[1200]:.2f} (chance 0.25)")
    assert acc[300] > 0.35 and acc[1200] > acc[300] + 0.08 and acc[1200] > 0.55
