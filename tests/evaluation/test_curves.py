"""Learning-curve measures worked out by hand."""
import numpy as np
from scipy.stats import skew

from evaluation.curves import hubness


def test_hubness_counts_top_k_in_degrees():
    # angles 0, .0997, -.1194, .3367, -.3805 rad: nearest neighbours (k=1) are
    # v0->v1, v1->v0, v2->v0, v3->v1, v4->v2, so in-degrees are 2, 2, 1, 0, 0
    x = np.array([[1, 0], [1, 0.1], [1, -0.12], [1, 0.35], [1, -0.4]], dtype=np.float32)
    hub_max, hub_skew = hubness(x, k=1)
    assert hub_max == 2
    assert np.isclose(hub_skew, skew([2, 2, 1, 0, 0]))


def test_stream_mix_reports_single_dataset_batches(tmp_path):
    """Shards holding one dataset each: one shard at a time gives single-dataset batches, pooling does not."""
    from evaluation.curves import stream_mix
    from tests.txfm.conftest import make_corpus

    corpus = make_corpus(tmp_path / "c", n_samples=192, shard_size=32)   # datasets a (96 rows) then b (96)
    table = stream_mix(corpus, "b", n_batches=20, batch_size=8).set_index("stream")
    one, pooled = table.iloc[0], table.iloc[1]
    # only a batch that straddles a shard boundary (at most one per shard) mixes datasets
    assert one.median_datasets_per_batch == 1 and one.batches_ge_98pct + one.batches_without >= 20 - 6
    assert pooled.median_datasets_per_batch == 2 and pooled.batches_ge_98pct < 5
    assert 0.4 < pooled.share < 0.6                     # b is half the rows


def _fake_cells(n=300, seed=0):
    import pandas as pd
    import scipy.sparse as sp

    from evaluation.inputs import LabelledCounts
    rng = np.random.default_rng(seed)
    labels = np.repeat(["a", "b", "c"], n // 3)
    counts = sp.csr_matrix(rng.poisson(2.0, (n, 20)))
    return LabelledCounts(counts, [f"G{i}" for i in range(20)], pd.DataFrame({"cell_type": labels}), "fake")


def test_cls_anatomy_tells_a_label_cls_from_a_reveal_noise_cls(monkeypatch):
    import evaluation.embeddings as emb
    import evaluation.inputs as inputs
    from evaluation.curves import cls_anatomy

    cells = _fake_cells()
    monkeypatch.setattr(inputs, "read_corpus_dataset", lambda corpus, dataset: cells)
    labels = cells.column("cell_type")
    centres = {"a": [10, 0, 0, 0], "b": [0, 10, 0, 0], "c": [0, 0, 10, 0]}

    def by_label(checkpoint, data, seed=0, progress=False):  # CLS = the cell's label + small reveal noise
        rng = np.random.default_rng(seed)
        return np.array([centres[v] for v in labels], float) + 0.1 * rng.normal(size=(len(labels), 4)), {}

    def by_draw(checkpoint, data, seed=0, progress=False):    # CLS = which genes were revealed only
        return np.random.default_rng(seed).normal(size=(len(labels), 4)), {}

    monkeypatch.setattr(emb, "txfm_embedding", by_label)
    good = cls_anatomy("ck", "corpus", n_components=2)
    assert (good.between_label_share > 0.99).all() and (good.reveal_seed_stability > 0.99).all()
    assert abs(good.variance_share.sum() - 1.0) < 0.01   # two label axes hold (nearly) all variance
    monkeypatch.setattr(emb, "txfm_embedding", by_draw)
    bad = cls_anatomy("ck", "corpus", n_components=2)
    assert (bad.between_label_share < 0.05).all() and (bad.reveal_seed_stability.abs() < 0.15).all()


def _curves(recalls, minutes, pca=0.4):
    import pandas as pd
    rows = [{"kind": "pca", "matrix": "pca", "step": 0, "samples_seen": 100, "train_minutes": float("nan"),
             "recall": pca}]
    for i, (r, m) in enumerate(zip(recalls, minutes)):
        rows.append({"kind": "txfm", "matrix": "decoder", "step": 100 * (i + 1), "samples_seen": 3200 * (i + 1),
                     "train_minutes": m, "recall": r})
    return pd.DataFrame(rows)


def test_time_to_quality_measured_extrapolated_or_none():
    from evaluation.curves import time_to_quality

    hit = time_to_quality(_curves([0.2, 0.41, 0.45], [1.0, 2.0, 3.0])).iloc[0]
    assert hit.reached and hit.step == 200 and hit.samples_seen == 6400 and hit.minutes == 2.0
    # last half (steps >= 200): 0.30 -> 0.35 over 2 minutes = 0.025 / min; 0.05 short at minute 4 -> 6
    ext = time_to_quality(_curves([0.1, 0.3, 0.32, 0.35], [1.0, 2.0, 3.0, 4.0])).iloc[0]
    assert not ext.reached and abs(ext.minutes - 6.0) < 1e-9 and ext.estimate.startswith("linear")
    flat = time_to_quality(_curves([0.3, 0.35, 0.35, 0.34], [1.0, 2.0, 3.0, 4.0])).iloc[0]
    assert not flat.reached and np.isnan(flat.minutes) and flat.estimate.startswith("none")


def test_time_to_quality_command_writes_a_readable_table(tmp_path):
    import subprocess
    import sys

    csv, doc = tmp_path / "curves.csv", tmp_path / "ttq.md"
    _curves([0.2, 0.41, 0.45], [1.0, 2.0, 3.0]).to_csv(csv, index=False)
    r = subprocess.run([sys.executable, "-m", "evaluation", "time-to-quality", "--curves", str(csv), "--doc", str(doc)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    row = next(line for line in doc.read_text().splitlines() if line.startswith("| decoder"))
    # reached at step 200 (6,400 samples, 2.0 minutes); no Python None/True leaks into the table
    assert row.split(" | ")[1:8] == ["0.400", "0.450 (300)", "3.0", "yes", "200", "6,400", "2.0"]
    assert "None" not in doc.read_text() and "True" not in doc.read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    r = subprocess.run([sys.executable, "-m", "evaluation", "time-to-quality", "--curves", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "not a learning-curve table" in r.stderr


def test_reveal_ceiling_sees_cell_type_only_when_the_reveal_shows_the_markers(monkeypatch):
    """Three types, each with 5 marker genes always expressed, in 200 genes that are otherwise zero
    (plus one housekeeping gene every cell expresses): every gene, or K = 4 drawn from the non-zero
    genes, shows markers and separates the types; K = 4 drawn uniformly shows a marker in about 1 cell
    in 10 and cannot."""
    import pandas as pd
    import scipy.sparse as sp

    import evaluation.inputs as inputs
    from evaluation.curves import reveal_ceiling
    from evaluation.inputs import LabelledCounts

    rng = np.random.default_rng(0)
    n, g = 150, 200
    labels = np.repeat(["a", "b", "c"], n // 3)
    x = np.zeros((n, g))
    for t, lab in enumerate("abc"):
        x[np.ix_(labels == lab, range(5 * t, 5 * t + 5))] = rng.poisson(20, (n // 3, 5)) + 1
    x[:, 199] = 7
    cells = LabelledCounts(sp.csr_matrix(x), [f"G{i}" for i in range(g)], pd.DataFrame({"cell_type": labels}), "fake")
    monkeypatch.setattr(inputs, "read_corpus_dataset", lambda corpus, dataset: cells)
    t = reveal_ceiling("corpus", reveals=(4,), detected_shares=(0.0, 1.0), n_components=10)
    everything, uniform, detected = t.iloc[0], t.iloc[1], t.iloc[2]
    assert everything.reveal == 200 and everything.nonzero_revealed == 6 and everything.knn_accuracy == 1.0
    assert uniform.nonzero_revealed == 0 and uniform.knn_accuracy < 0.6
    assert detected.nonzero_revealed == 4 and detected.knn_accuracy > 0.95
