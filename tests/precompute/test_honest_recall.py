"""The honest recall population: rarely measured genes with noise vectors inflate the
whole-vocabulary recall; restricted to well-measured genes (support >= 2) the recall does not move."""
import json

import numpy as np
import pandas as pd

from precompute.params import BundleParams
from precompute.pipeline import build_bundle
from precompute.bundle.recall import (POPULATION_ALL, POPULATION_SUPPORTED, recall_population, recall_sweep,
                               restrict_pairs)
from precompute.subspaces import pca_scores
from precompute.bundle.synthetic import write_synthetic_references

FAST = BundleParams(umap_epochs=10, null_size=300, n_nulls=2, k=10, resolutions=(1.0,), ranks=(16,))


def _matrix(n_good: int, n_rare: int, seed: int = 0):
    """Well-measured genes share an abundance direction (plus blocks of related genes); rare genes are
    near-initial noise. Returns (matrix, genes table with support, block of each good gene)."""
    rng = np.random.default_rng(seed)
    d = 16
    common = rng.normal(size=d)
    blocks = rng.integers(0, 8, n_good)
    centres = rng.normal(size=(8, d))
    good = 3 * common + centres[blocks] + 0.5 * rng.normal(size=(n_good, d))
    rare = 0.02 * rng.normal(size=(n_rare, d))
    m = np.vstack([good, rare]).astype(np.float32)
    genes = pd.DataFrame({"symbol": [f"G{i}" for i in range(n_good + n_rare)], "ensembl_id": "",
                          "support": np.r_[np.full(n_good, 3), rng.integers(0, 2, n_rare)]})
    return m, genes, blocks


def _recall(m, pairs, keep):
    sub = restrict_pairs(pairs, keep, len(m))
    df = recall_sweep(m[keep], sub, [m.shape[1]], n_nulls=2, null_size=400, seed=0)
    return df.set_index("source").recall_mean


def test_noise_genes_inflate_whole_vocabulary_recall_but_not_the_honest_one():
    n_good = 400
    m, genes, blocks = _matrix(n_good, 4000)
    rng = np.random.default_rng(1)
    unrelated = np.stack([rng.integers(0, n_good, 300), rng.integers(0, n_good, 300)], 1)
    unrelated = unrelated[(unrelated[:, 0] != unrelated[:, 1]) & (blocks[unrelated[:, 0]] != blocks[unrelated[:, 1]])]
    related = np.array([(i, j) for i in range(n_good) for j in range(i + 1, min(i + 40, n_good))
                        if blocks[i] == blocks[j]])
    pairs = {"unrelated": unrelated, "related": related}

    pop, label = recall_population(genes)
    assert label == POPULATION_SUPPORTED and pop.tolist() == list(range(n_good))
    whole = _recall(m, pairs, np.arange(len(m)))
    honest = _recall(m, pairs, pop)
    # in the whole vocabulary every pair of well-measured genes looks "related" (null = noise genes)
    assert whole["unrelated"] > 0.9
    # on the honest population unrelated pairs are at chance and related ones well above it
    assert honest["unrelated"] < 0.2
    assert honest["related"] > 0.3  # 4x chance (raw vectors: the shared direction still dominates)
    # more rare genes change the whole-vocabulary figure's null but not the honest recall at all
    m2, genes2, _ = _matrix(n_good, 8000)
    pop2, _ = recall_population(genes2)
    assert (pop2 == pop).all()
    pd.testing.assert_series_equal(_recall(m2, pairs, pop2), honest)


def test_table_without_support_is_scored_and_labelled_as_whole_vocabulary():
    genes = pd.DataFrame({"symbol": ["A", "B", "C"], "ensembl_id": ""})
    pop, label = recall_population(genes)
    assert label == POPULATION_ALL and pop.tolist() == [0, 1, 2]


def test_restrict_pairs_reindexes_and_drops_outside_pairs():
    pairs = {"s": np.array([[0, 2], [1, 3], [2, 4]])}
    out = restrict_pairs(pairs, np.array([0, 2, 4]), 5)
    assert out["s"].tolist() == [[0, 1], [1, 2]]


def test_bundle_recall_is_on_the_honest_population(tmp_path):
    m, genes, blocks = _matrix(300, 1500)
    all_blocks = np.r_[blocks, np.full(1500, 99)]
    ref = write_synthetic_references(tmp_path / "refs", genes.symbol.tolist(), all_blocks, pairs_per_source=200)
    out = build_bundle({"decoder": m}, genes, ref, tmp_path / "b", {"kind": "txfm"}, FAST, progress=False)
    rec = pd.read_parquet(out / "recall" / "recall.parquet")
    assert set(rec.population) == {POPULATION_SUPPORTED} and set(rec.n_genes) == {300}
    assert pd.read_parquet(out / "genes.parquet")["support"].tolist() == genes.support.tolist()
    # the subspace is fitted on the population and every gene projected: the population's scores are
    # those of a fit on the population alone (what `evaluation curves` and `evaluation results` score),
    # so a bundle and the learning curves give one recall figure for one matrix
    sub = np.load(out / "subspaces" / "decoder.npy")
    alone, _ = pca_scores(m[:300])
    np.testing.assert_allclose(sub[:300], alone, atol=1e-4)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["steps"]["subspaces"]["summary"]["n_fit_genes"] == 300


def test_pca_scores_fit_rows_projects_every_row_onto_axes_of_the_fit_rows():
    rng = np.random.default_rng(0)
    # fit rows vary along axes 0 and 2 (not 1); other rows along axis 1 only: the first fitted axis is in the 0-2 plane
    fit = np.zeros((50, 3), np.float32)
    fit[:, 0] = rng.normal(size=50) * 5
    fit[:, 2] = rng.normal(size=50) * 0.1
    other = np.zeros((500, 3), np.float32)
    other[:, 1] = rng.normal(size=500) * 100
    m = np.vstack([fit, other])
    scores, ev = pca_scores(
        m, standardise=False, fit_rows=np.arange(50))
    # projection of the others onto the fitted axis 0 (after centring on the fit rows' mean) is ~0
    assert abs(ev[0] - fit[:, 0].var(ddof=1)) < 1e-3 * ev[0]
    np.testing.assert_allclose(np.abs(scores[50:, 0]), np.abs(fit[:, 0].mean()), atol=1e-4)
    # without fit_rows the huge axis-1 spread of the other rows is the first axis instead
    _, ev_all = pca_scores(m, standardise=False)
    assert ev_all[0] > 100 * ev[0]
