"""Readers: one hand-made fixture per format, counts checked cell by cell after reading."""
from __future__ import annotations

import gzip

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from data.readers import (DataError, H5adReader, TenxH5Reader, TenxMtxReader, TextReader, check_counts,
                          open_source, open_sources)
from data.readers.base import dataset_name

# 4 cells x 3 genes, written out by hand
COUNTS = np.array([[0, 3, 1],
                   [2, 0, 0],
                   [5, 1, 7],
                   [0, 0, 4]])
GENES = ["CD3E", "MS4A1", "LYZ"]
CELLS = ["c1", "c2", "c3", "c4"]


def read_all(reader, chunk_size=3) -> tuple[np.ndarray, pd.DataFrame]:
    chunks = list(reader.iter_chunks(chunk_size))
    assert [c.start for c in chunks] == list(range(0, reader.n_samples, chunk_size))
    x = sp.vstack([c.counts for c in chunks]).toarray()
    return x, pd.concat([c.obs for c in chunks])


def write_h5ad(path, X, layers=None, raw=None):
    a = anndata.AnnData(X=X, obs=pd.DataFrame({"cell_type": ["T", "B", "M", "M"]}, index=CELLS),
                        var=pd.DataFrame(index=GENES), layers=layers or {})
    if raw is not None:
        a.raw = raw
    a.write_h5ad(path)
    return path


@pytest.mark.parametrize("store", [np.asarray, sp.csr_matrix, sp.csc_matrix])
def test_h5ad_x_dense_and_sparse(tmp_path, store):
    p = write_h5ad(tmp_path / "x.h5ad", store(COUNTS.astype(np.float32)))
    r = H5adReader(p)
    assert r.layer == "X" and r.n_samples == 4 and list(r.genes) == GENES
    x, obs = read_all(r)
    np.testing.assert_array_equal(x, COUNTS)
    assert list(obs.index) == CELLS and list(obs["cell_type"]) == ["T", "B", "M", "M"]


def test_h5ad_layer_counts_detected_before_x(tmp_path):
    lognorm = np.log1p(COUNTS / COUNTS.sum(1, keepdims=True) * 1e4)
    p = write_h5ad(tmp_path / "l.h5ad", sp.csr_matrix(lognorm), layers={"counts": sp.csr_matrix(COUNTS)})
    r = H5adReader(p)
    assert r.layer == "counts" and "layers['counts']" in r.kind
    np.testing.assert_array_equal(read_all(r, 2)[0], COUNTS)
    # explicit choice of X gives the log values, which validation then refuses
    rx = H5adReader(p, layer="X")
    with pytest.raises(DataError, match="log-normalised") as e:
        check_counts(next(rx.iter_chunks(4)).counts, str(p), hint=rx.hint)
    assert "--layer" in str(e.value) and "counts" in str(e.value)


def test_h5ad_raw_detected_when_x_is_not_counts(tmp_path):
    raw = anndata.AnnData(X=sp.csr_matrix(COUNTS), var=pd.DataFrame(index=GENES), obs=pd.DataFrame(index=CELLS))
    scaled = (COUNTS - COUNTS.mean(0)) / (COUNTS.std(0) + 1)
    p = write_h5ad(tmp_path / "r.h5ad", scaled.astype(np.float32), raw=raw)
    r = H5adReader(p)
    assert r.layer == "raw" and r.kind.startswith("h5ad raw.X")
    np.testing.assert_array_equal(read_all(r)[0], COUNTS)


def test_h5ad_unknown_layer_lists_alternatives(tmp_path):
    p = write_h5ad(tmp_path / "x.h5ad", sp.csr_matrix(COUNTS))
    with pytest.raises(DataError, match=r"--layer 'spliced' not found; available: X"):
        H5adReader(p, layer="spliced")


def write_mtx_folder(folder, with_antibody=True, gz=True):
    folder.mkdir()
    # features: the 3 genes plus one antibody feature that must be left out
    feats = [("ENSG00000198851", "CD3E", "Gene Expression"), ("ENSG00000156738", "MS4A1", "Gene Expression"),
             ("ENSG00000090382", "LYZ", "Gene Expression")]
    m = COUNTS.T.copy()  # genes x cells
    if with_antibody:
        feats.append(("CD3_TotalSeqB", "CD3", "Antibody Capture"))
        m = np.vstack([m, [[9, 9, 9, 9]]])
    op = (lambda n: gzip.open(folder / (n + ".gz"), "wt")) if gz else (lambda n: open(folder / n, "w"))
    with op("features.tsv") as fh:
        fh.writelines("\t".join(f) + "\n" for f in feats)
    with op("barcodes.tsv") as fh:
        fh.writelines(c + "\n" for c in CELLS)
    with (gzip.open(folder / "matrix.mtx.gz", "wb") if gz else open(folder / "matrix.mtx", "wb")) as fh:
        scipy.io.mmwrite(fh, sp.coo_matrix(m))
    return folder


@pytest.mark.parametrize("gz", [True, False])
def test_tenx_mtx_folder(tmp_path, gz):
    r = open_source(write_mtx_folder(tmp_path / "pbmc_tiny", gz=gz))
    assert isinstance(r, TenxMtxReader) and r.name == "pbmc_tiny"
    assert list(r.genes) == ["ENSG00000198851", "ENSG00000156738", "ENSG00000090382"]
    assert "left out 1 non-gene features (Antibody Capture)" in r.kind
    x, obs = read_all(r)
    np.testing.assert_array_equal(x, COUNTS)
    assert list(obs.index) == CELLS


def test_tenx_mtx_missing_barcodes(tmp_path):
    f = write_mtx_folder(tmp_path / "t")
    (f / "barcodes.tsv.gz").unlink()
    with pytest.raises(DataError, match="lacks barcodes.tsv"):
        TenxMtxReader(f)


def test_tenx_h5_v3(tmp_path):
    p = tmp_path / "filtered_feature_bc_matrix.h5"
    full = np.vstack([COUNTS.T, [[9, 9, 9, 9]]])  # genes (+1 antibody) x cells
    csc = sp.csc_matrix(full)
    with h5py.File(p, "w") as f:
        g = f.create_group("matrix")
        g["data"], g["indices"], g["indptr"] = csc.data.astype(np.int32), csc.indices, csc.indptr
        g["shape"] = np.array(full.shape)
        g["barcodes"] = np.array([c.encode() for c in CELLS])
        ft = g.create_group("features")
        ft["id"] = np.array([b"ENSG00000198851", b"ENSG00000156738", b"ENSG00000090382", b"CD3_TotalSeqB"])
        ft["name"] = np.array([g_.encode() for g_ in GENES] + [b"CD3"])
        ft["feature_type"] = np.array([b"Gene Expression"] * 3 + [b"Antibody Capture"])
    r = open_source(p)
    assert isinstance(r, TenxH5Reader) and r.n_samples == 4 and len(r.genes) == 3
    x, obs = read_all(r, chunk_size=3)
    np.testing.assert_array_equal(x, COUNTS)
    assert list(obs.index) == CELLS


def test_csv_genes_x_samples_gz_with_metadata(tmp_path):
    ids = ["ENSG00000198851", "ENSG00000156738", "ENSG00000090382"]
    table = pd.DataFrame(COUNTS.T, index=ids, columns=CELLS)
    p = tmp_path / "plate1.count.csv.gz"
    table.to_csv(p)  # header row has an empty first field, like CellBench
    pd.DataFrame({"cell_line": ["H1975", "H2228", "HCC827", "H1975"]}, index=CELLS).to_csv(
        tmp_path / "plate1.metadata.csv.gz")
    r = open_source(p)
    assert isinstance(r, TextReader) and r.name == "plate1"
    assert r.orientation == "genes_x_samples" and "row labels are gene ids" in r.kind
    x, obs = read_all(r)
    np.testing.assert_array_equal(x, COUNTS)
    assert list(obs["cell_line"]) == ["H1975", "H2228", "HCC827", "H1975"]


def test_tsv_samples_x_genes_symbols_detected_by_shape(tmp_path):
    # symbols are not id-like, so orientation falls back to "the longer axis is genes": here 4 samples x 3
    # genes has more rows than columns, so it must be given explicitly
    p = tmp_path / "bulk.tsv"
    pd.DataFrame(COUNTS, index=CELLS, columns=GENES).to_csv(p, sep="\t")
    auto = TextReader(p)
    assert auto.orientation == "genes_x_samples" and "pass --orientation" in auto.kind
    r = TextReader(p, orientation="samples_x_genes")
    assert list(r.genes) == GENES
    x, obs = read_all(r, chunk_size=3)
    np.testing.assert_array_equal(x, COUNTS)
    assert list(obs.index) == CELLS


def test_text_non_numeric_value(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text(",c1,c2\nENSG00000198851,1,x\nENSG00000156738,0,2\n")
    with pytest.raises(DataError, match="non-numeric value"):
        list(open_source(p).iter_chunks(10))


def test_directory_of_formats(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    write_h5ad(d / "a.h5ad", sp.csr_matrix(COUNTS))
    write_mtx_folder(d / "b_10x")
    pd.DataFrame(COUNTS.T, index=["ENSG00000198851", "ENSG00000156738", "ENSG00000090382"],
                 columns=CELLS).to_csv(d / "c.csv.gz")
    pd.DataFrame({"x": [1, 2, 3, 4]}, index=CELLS).to_csv(d / "c.metadata.csv.gz")
    (d / "README.md").write_text("not data")
    rs = open_sources([d])
    assert [r.name for r in rs] == ["a", "b_10x", "c"]
    for r in rs:
        np.testing.assert_array_equal(read_all(r)[0], COUNTS)


def test_duplicate_dataset_names_refused(tmp_path):
    (tmp_path / "x").mkdir()
    write_h5ad(tmp_path / "s.h5ad", sp.csr_matrix(COUNTS))
    pd.DataFrame(COUNTS.T, index=GENES, columns=CELLS).to_csv(tmp_path / "x" / "s.csv")
    with pytest.raises(DataError, match="dataset name 's' is also used"):
        open_sources([tmp_path / "s.h5ad", tmp_path / "x" / "s.csv"])


def test_dataset_names_from_stems(tmp_path):
    assert dataset_name(tmp_path / "sc_celseq2.count.csv.gz") == "sc_celseq2"
    assert dataset_name(tmp_path / "kang2018_pbmc_stim.h5ad") == "kang2018_pbmc_stim"
    assert dataset_name(tmp_path / "filtered_feature_bc_matrix.h5") == "filtered_feature_bc_matrix"


def test_check_counts_messages():
    ok, n = check_counts(sp.csr_matrix(np.array([[1.0, 0.0], [2.0, 3.0]])), "f")
    assert n == 0 and ok.dtype == np.int64 and ok.toarray().tolist() == [[1, 0], [2, 3]]
    with pytest.raises(DataError, match=r"f: 1 NaN and 1 infinite values"):
        check_counts(sp.csr_matrix(np.array([[np.nan, 1.0], [np.inf, 0.0]])), "f")
    with pytest.raises(DataError, match=r"f: 1 negative values \(min -2\)"):
        check_counts(np.array([[1, -2]]), "f")
    tpm = np.array([[5e5, 5e5], [2.5e5, 7.5e5]]) + np.array([[0.5, -0.5], [0.25, -0.25]])
    with pytest.raises(DataError, match="look like TPM/CPM"):
        check_counts(tpm, "f")
    # log-normalised: 3 of the 4 non-zero values are non-integer -> "75%"
    with pytest.raises(DataError, match=r"values look log-normalised \(max 8.1, 75% of non-zero values"):
        check_counts(np.array([[8.1, 2.0], [1.5, 0.3]]), "f")
    rounded, n = check_counts(np.array([[8.1, 2.0], [1.5, 0.3]]), "f", allow_non_integer=True)
    assert n == 3 and rounded.toarray().tolist() == [[8, 2], [2, 0]]
