"""Synthetic CRISPR screens and corpora with planted structure, for the evaluation tests."""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from txfm.corpus import CorpusWriter

N_GENES = 60
STRONG = ["G1", "G2", "G3"]         # perturbations that shift a gene program
WEAK = ["G4", "G5"]                  # perturbations without any effect


def screen_counts(seed=0, per_pert=40, n_control=150, n_unassigned=30, batches=("r1", "r2", "r3")):
    """Poisson counts (n, 60) of a screen in three batches with a multiplicative batch effect.

    G1 and G3 multiply their own block of 8 genes by 6; G2 divides G1's block by 6 (a related,
    anti-correlated pair: recall counts both tails); G4 and G5 change nothing. Labels include 'non-targeting' and 'unassigned'.
    """
    rng = np.random.default_rng(seed)
    base = rng.uniform(3, 10, N_GENES)
    blocks = {"G1": (slice(10, 18), 6.0), "G2": (slice(10, 18), 1 / 6), "G3": (slice(30, 38), 6.0)}
    xs, labels, batch = [], [], []
    for bi, b in enumerate(batches):
        effect = np.exp(rng.normal(0, 0.3, N_GENES))          # batch effect, same for all cells of the batch
        groups = [("non-targeting", n_control // len(batches)), ("unassigned", n_unassigned // len(batches))]
        groups += [(p, per_pert // len(batches)) for p in STRONG + WEAK]
        for lab, n in groups:
            lam = np.tile(base * effect, (n, 1)) * rng.gamma(20, 1 / 20, (n, 1))   # library size noise
            if lab in blocks:
                lam[:, blocks[lab][0]] *= blocks[lab][1]
            xs.append(rng.poisson(lam))
            labels += [lab] * n
            batch += [b] * n
    return sp.csr_matrix(np.vstack(xs).astype(np.int32)), np.array(labels), np.array(batch)


def write_screen_h5ad(path, seed=0):
    import anndata

    x, labels, batch = screen_counts(seed)
    a = anndata.AnnData(x, obs=pd.DataFrame({"grna_target": labels, "bio_rep": batch},
                                            index=[f"c{i}" for i in range(x.shape[0])]),
                        var=pd.DataFrame(index=[f"G{i}" for i in range(N_GENES)]))
    a.write_h5ad(path)
    return path


def write_corpus(path, seed=0):
    """A corpus of the screen plus a second dataset (a different cell type) measuring half the genes."""
    x, labels, batch = screen_counts(seed)
    rng = np.random.default_rng(seed + 1)
    genes = [f"G{i}" for i in range(N_GENES)]
    with CorpusWriter(path, genes, shard_size=128) as w:
        d = w.add_dataset("screen", np.arange(N_GENES))
        w.add_samples(d, x, pd.DataFrame({"sample_id": [f"s{i}" for i in range(x.shape[0])],
                                          "batch": batch, "perturbation": labels}))
        half = np.arange(0, N_GENES, 2)
        other = np.zeros((80, N_GENES), dtype=np.int32)
        other[:, half] = rng.poisson(rng.uniform(1, 20, half.size), (80, half.size))
        e = w.add_dataset("other", half)
        w.add_samples(e, other, pd.DataFrame({"sample_id": [f"o{i}" for i in range(80)], "batch": "o1",
                                              "perturbation": ""}))
    return path


def write_references(path):
    """A reference folder (docs/formats.md) whose CORUM pairs link genes of the same program."""
    (path / "pairs").mkdir(parents=True)
    pairs = [("G1", "G2")] + [(f"G{i}", f"G{i + 1}") for i in range(10, 17)] + [(f"G{i}", f"G{i + 1}") for i in range(30, 37)]
    pd.DataFrame(pairs, columns=["gene_a", "gene_b"]).to_csv(path / "pairs" / "CORUM.tsv", sep="\t", index=False)
    return path


@pytest.fixture(scope="session")
def eval_corpus(tmp_path_factory):
    return str(write_corpus(tmp_path_factory.mktemp("evalcorpus") / "corpus"))


@pytest.fixture(scope="session")
def eval_references(tmp_path_factory):
    return str(write_references(tmp_path_factory.mktemp("evalrefs") / "refs"))


@pytest.fixture(scope="session")
def tiny_checkpoint(eval_corpus, tmp_path_factory):
    """A TxFM checkpoint trained for a few steps on eval_corpus (seconds on CPU)."""
    from txfm.config import TrainConfig, model_config
    from txfm.trainer import train

    out = tmp_path_factory.mktemp("evalrun") / "run"
    tc = TrainConfig(corpus=eval_corpus, out=str(out), reveal=16, batch_size=16, max_steps=4, val_every=0,
                     save_every=4, log_every=2, device="cpu")
    return str(train(tc, model_config("tiny", N_GENES, dim=16, depth=1, heads=2), quiet=True))
