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
