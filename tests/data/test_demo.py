"""Demo corpus: count recovery checked on a hand-made matrix; the real build (registry downloads) is slow."""
from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from data.corpus.demo import build_demo, recover_pbmc68k_counts
from data.readers import DataError
from txfm.corpus import Corpus


def _lognorm_like_scanpy(counts: np.ndarray, n_counts: np.ndarray) -> anndata.AnnData:
    """raw.X = log1p(counts / n_counts * 1e4) rounded to 3 decimals, as stored in pbmc68k_reduced."""
    raw = np.round(np.log1p(counts / n_counts[:, None] * 1e4), 3).astype(np.float32)
    a = anndata.AnnData(X=np.zeros_like(raw), obs=pd.DataFrame({"n_counts": n_counts}, index=["a", "b"]))
    a.raw = anndata.AnnData(X=sp.csr_matrix(raw), obs=a.obs)
    return a


def test_recover_counts_exactly_from_rounded_log_values():
    counts = np.array([[1, 0, 7, 250], [0, 3, 1, 40]])
    n_counts = np.array([2557.0, 1800.0])  # the full-transcriptome totals, larger than these 4 genes
    got = recover_pbmc68k_counts(_lognorm_like_scanpy(counts, n_counts))
    assert got.dtype == np.int32 and got.toarray().tolist() == counts.tolist()


def test_recover_counts_refuses_other_normalisation():
    a = _lognorm_like_scanpy(np.array([[1, 0, 7, 250], [0, 3, 1, 40]]), np.array([2557.0, 1800.0]))
    a.obs["n_counts"] = a.obs["n_counts"] * 1.37  # wrong scale factor: values fall between integers
    with pytest.raises(DataError, match="recovered counts are not integers"):
        recover_pbmc68k_counts(a)


@pytest.mark.slow
def test_build_demo_from_registries(tmp_path):
    """Downloads scanpy (PyPI) and r-bioc-degreport (Debian) into a fresh cache; needs the registries."""
    try:
        build_demo(out=tmp_path / "demo", cache=tmp_path / "cache", log=lambda m: None)
    except Exception as e:  # noqa: BLE001 - only registry failures are skipped
        from data.references.registry import RegistryError
        if isinstance(e, RegistryError):
            pytest.skip(f"package registry unreachable: {e}")
        raise
    c = Corpus(tmp_path / "demo")
    assert [(d.name, d.n_samples) for d in c.datasets] == [("pbmc68k_reduced", 700), ("humanGender", 85)]
    assert set(c.obs.loc[c.obs["dataset"] == "humanGender", "condition"]) == {"Female", "Male"}
    assert c.obs.loc[c.obs["dataset"] == "pbmc68k_reduced", "cell_type"].nunique() == 10
    x, _ = c.read_rows(np.arange(700))
    # 486,651 counts recovered over 765 genes; 2 genes detected in < 7 cells (1% of 700) leave the vocabulary
    assert x.dtype == np.int32 and x.sum() == 486_637 and c.measured_mask(0).sum() == 763
    assert (tmp_path / "demo" / "report.md").exists()
