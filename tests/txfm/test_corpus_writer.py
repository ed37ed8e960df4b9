"""CorpusWriter's metadata: written shard by shard (memory does not grow with the corpus), merged in row order."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from txfm.corpus import Corpus, CorpusError, CorpusWriter

GENES = ["A", "B", "C"]


def _rows(n: int, start: int) -> sp.csr_matrix:
    x = np.zeros((n, 3), dtype=np.int64)
    x[:, 0] = np.arange(start, start + n) + 1          # row i holds i + 1 in gene A: order is checkable
    return sp.csr_matrix(x)


def test_obs_streamed_per_shard_in_row_order_with_the_union_of_columns(tmp_path):
    with CorpusWriter(tmp_path / "c", GENES, shard_size=4) as w:
        d0 = w.add_dataset("d0", [0, 1, 2])
        d1 = w.add_dataset("d1", [0])
        n = 0
        for k in range(5):                              # 5 chunks of 3: shards of 4 cut across chunks and datasets
            d = d0 if k % 2 == 0 else d1
            obs = pd.DataFrame({"sample_id": [f"s{n + i}" for i in range(3)]})
            if d == d1:
                obs["tissue"] = "blood"
            w.add_samples(d, _rows(3, n), obs)
            n += 3
            assert sum(len(o) for o in w._obs) < 4      # only the rows of the shard being filled stay in memory
    c = Corpus(tmp_path / "c")
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert c.n_samples == 15 and [s["n_samples"] for s in manifest["shards"]] == [4, 4, 4, 3]
    assert c.obs["sample_id"].tolist() == [f"s{i}" for i in range(15)]
    assert c.read_rows(range(15))[0][:, 0].toarray().ravel().tolist() == list(range(1, 16))
    assert list(c.obs.columns) == ["dataset", "sample_id", "batch", "tissue"]
    tissue = c.obs["tissue"].tolist()
    assert tissue[3:6] == ["blood"] * 3 and all(t is None for t in tissue[:3])
    assert not list((tmp_path / "c").glob("obs-part-*"))


def test_duplicate_sample_ids_across_shards_refused_and_nothing_left(tmp_path):
    with pytest.raises(CorpusError, match=r"duplicate sample ids, e\.g\. 's1'"):
        with CorpusWriter(tmp_path / "c", GENES, shard_size=2) as w:
            d = w.add_dataset("d", [0, 1, 2])
            w.add_samples(d, _rows(3, 0), pd.DataFrame({"sample_id": ["s0", "s1", "s2"]}))
            w.add_samples(d, _rows(3, 3), pd.DataFrame({"sample_id": ["s3", "s1", "s5"]}))
    assert list(tmp_path.iterdir()) == []
