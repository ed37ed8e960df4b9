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
