"""Public corpora as build-corpus sources: TileDB-SOMA experiments (CELLxGENE Census layout) and ARCHS4 files.

Real counts from ../shared/data are written into each layout here (``tiledbsoma.io.from_h5ad``, h5py),
and the corpus built from them is compared with the one built from the h5ad itself. The Census-specific
parts (a Census root, the feature-dataset presence matrix, Ensembl ids with names) use a hand-made store
whose expected corpus is worked out in the test. Bad inputs end in one ``error:`` line and leave nothing.
"""
from __future__ import annotations

import re
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import scipy.sparse as sp

from common.errors import run_main
from data.__main__ import main
from data.corpus.build import BuildConfig, build_corpus
from data.corpus.curation import CurationConfig
from data.genes.table import GeneTable
from data.readers import DataError
from txfm.corpus import Corpus

tiledbsoma = pytest.importorskip("tiledbsoma")
import tiledbsoma.io  # noqa: E402

LOOSE = CurationConfig(min_cells=1, min_genes=1, deduplicate=False)
KANG = "kang2018_pbmc_stim"


def quiet(_msg):
    pass


def leftovers(folder: Path) -> list[str]:
    """Outputs or staging folders left in ``folder`` by a failed build."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name == "out")


def rows_by_id(c: Corpus) -> dict[str, np.ndarray]:
    x = c.read_rows(np.arange(c.n_samples))[0].toarray()
    return dict(zip(c.obs["sample_id"], x))


@pytest.fixture(scope="module")
def kang(shared_data, tmp_path_factory):
    """400 real cells of Kang 2018 (200 ctrl, 200 stim) as an h5ad and as a SOMA experiment (X layer 'raw'),
    with a numeric obs column to filter on."""
    root = tmp_path_factory.mktemp("kang")
    a = anndata.read_h5ad(shared_data / f"{KANG}.h5ad")
    rng = np.random.default_rng(0)
    idx = np.sort(np.concatenate([rng.choice(1000, 200, replace=False), 1000 + rng.choice(1000, 200, replace=False)]))
    a = a[idx].copy()
    a.obs["n_counts"] = np.asarray(a.X.sum(axis=1)).ravel().astype(np.int64)
    h5ad = root / f"{KANG}.h5ad"
    a.write_h5ad(h5ad)
    soma = root / "soma" / KANG
    soma.parent.mkdir()
    tiledbsoma.io.from_h5ad(str(soma), str(h5ad), measurement_name="RNA", X_layer_name="raw")
    return {"h5ad": h5ad, "soma": soma, "adata": a}


def test_soma_experiment_builds_the_same_corpus_as_its_h5ad(kang, tmp_path):
    cfg = BuildConfig()     # the default curation, so the same filters must act on the same cells
    build_corpus([kang["h5ad"]], tmp_path / "from_h5ad", cfg, gene_table="none", log=quiet)
    r = build_corpus([kang["soma"]], tmp_path / "from_soma", cfg, gene_table="none", log=quiet)
    a, b = Corpus(tmp_path / "from_h5ad"), Corpus(tmp_path / "from_soma")
    assert b.genes == a.genes and b.gene_ids == a.gene_ids
    assert [(d.name, d.n_samples) for d in b.datasets] == [(d.name, d.n_samples) for d in a.datasets]
    np.testing.assert_array_equal(b.datasets[0].measured, a.datasets[0].measured)
    assert b.obs["sample_id"].tolist() == a.obs["sample_id"].tolist()
    assert b.obs["condition"].tolist() == a.obs["condition"].tolist()
    xa, xb = a.read_rows(np.arange(a.n_samples))[0], b.read_rows(np.arange(b.n_samples))[0]
    assert (xa != xb).nnz == 0 and xa.nnz > 100_000
    # SOMA sources keep their obs columns: soma_joinid traces each sample back to the store
    kept = b.obs["sample_id"].str.split(":", n=1).str[1]
    joinid = {name: i for i, name in enumerate(kang["adata"].obs_names)}
    assert b.obs["soma_joinid"].astype(int).tolist() == [joinid[k] for k in kept]
    assert r["sources"][0]["kind"] == "single-cell" and r["sources"][0]["format"].startswith("SOMA RNA/X/raw")


def test_soma_value_filter_keeps_exactly_the_matching_cells(kang, tmp_path):
    obs = kang["adata"].obs
    cases = {"condition == 'stim'": obs["condition"] == "stim",
             "condition == 'ctrl' and n_counts > 1500": (obs["condition"] == "ctrl") & (obs["n_counts"] > 1500),
             "condition in ['ctrl', 'stim'] and n_counts <= 700": obs["n_counts"] <= 700}
    for i, (expr, want) in enumerate(cases.items()):
        assert 0 < want.sum() < len(obs), expr
        build_corpus([kang["soma"]], tmp_path / f"c{i}", BuildConfig(soma_filter=expr, curation=LOOSE),
                     gene_table="none", log=quiet)
        got = Corpus(tmp_path / f"c{i}").obs["sample_id"].tolist()
        assert got == [f"{KANG}:{c}" for c in obs.index[want.to_numpy()]], expr


def test_soma_datasets_split_by_dataset_id_measure_what_they_detect(shared_data, tmp_path):
    """Two real datasets with different gene panels in one experiment (outer join, as in Census): each
    becomes a corpus dataset; without a presence matrix, a dataset measures the genes its cells detect."""
    parts = {}
    for name, n in (("kang2018_pbmc_stim", 150), ("pbmc_sorted_reference_mudan", 150)):
        a = anndata.read_h5ad(shared_data / f"{name}.h5ad")[:n].copy()
        a.obs = pd.DataFrame({"dataset_id": name}, index=[f"{name[:4]}-{c}" for c in a.obs_names])
        parts[name] = a
    both = anndata.concat(list(parts.values()), join="outer")
    both.X = sp.csr_matrix(both.X)
    both.write_h5ad(tmp_path / "both.h5ad")
    tiledbsoma.io.from_h5ad(str(tmp_path / "both"), str(tmp_path / "both.h5ad"), "RNA", X_layer_name="raw")
    build_corpus([tmp_path / "both"], tmp_path / "out", BuildConfig(curation=LOOSE), gene_table="none", log=quiet)
    c = Corpus(tmp_path / "out")
    assert [d.name for d in c.datasets] == list(parts)
    detected = {n: set(np.asarray(a.var_names)[np.asarray((a.X > 0).sum(axis=0)).ravel() > 0]) for n, a in parts.items()}
    assert c.genes == sorted(set.union(*detected.values()))
    got = rows_by_id(c)
    for i, (name, a) in enumerate(parts.items()):
        assert {c.genes[j] for j in c.datasets[i].measured} == detected[name]
        assert len(detected[name]) < a.n_vars        # the panel's never-detected genes are not claimed
        col = {g: j for j, g in enumerate(c.genes)}
        x = sp.csr_matrix(a.X).toarray()
        for k, cell in enumerate(a.obs_names):
            row = got[f"{name}:{cell}"]
            assert row.sum() == x[k].sum()
            for g in np.asarray(a.var_names)[x[k] > 0][:50]:
                assert row[col[g]] == x[k][list(a.var_names).index(g)]


def _census(root: Path) -> None:
    """A Census root by hand: census_info/datasets, census_data/homo_sapiens with a presence matrix.

    5 cells x 4 genes; datasets A (cells 0, 1) and B (cells 2-4). The presence matrix says A measured
    genes 0-2 and B genes 1-3. Gene 2's Ensembl id is unknown to the gene table, its name is known.
    """
    ds_schema = pa.schema([("soma_joinid", pa.int64()), ("dataset_id", pa.large_string())])
    obs_schema = pa.schema([("soma_joinid", pa.int64()), ("dataset_id", pa.large_string()),
                            ("cell_type", pa.large_string()), ("tissue_general", pa.large_string()),
                            ("donor_id", pa.large_string()), ("is_primary_data", pa.bool_())])
    var = pa.table({"soma_joinid": np.arange(4, dtype=np.int64),
                    "feature_id": ["ENSG00000198851", "ENSG00000156738", "ENSG00000999999", "ENSG00000090382"],
                    "feature_name": ["CD3E", "MS4A1", "NEWGENE", "LYZ"]})
    counts = np.array([[3, 1, 0, 0],       # A, blood
                       [5, 0, 0, 0],       # A, lung
                       [0, 2, 0, 7],       # B, blood
                       [0, 0, 4, 1],       # B, blood
                       [0, 6, 0, 2]], dtype=np.float32)   # B, blood
    r, c = np.nonzero(counts)
    with tiledbsoma.Collection.create(str(root)) as census:
        info = census.add_new_collection("census_info")
        info.add_new_dataframe("datasets", schema=ds_schema, index_column_names=["soma_joinid"],
                               domain=[(0, 1)]).write(pa.table({"soma_joinid": [0, 1], "dataset_id": ["A", "B"]},
                                                               schema=ds_schema))
        exp = census.add_new_collection("census_data").add_new_collection("homo_sapiens", tiledbsoma.Experiment)
        exp.add_new_dataframe("obs", schema=obs_schema, index_column_names=["soma_joinid"], domain=[(0, 4)]).write(
            pa.table({"soma_joinid": np.arange(5, dtype=np.int64), "dataset_id": ["A", "A", "B", "B", "B"],
                      "cell_type": ["T cell", "T cell", "B cell", "monocyte", "B cell"],
                      "tissue_general": ["blood", "lung", "blood", "blood", "blood"],
                      "donor_id": ["d1", "d1", "d2", "d3", "d3"], "is_primary_data": [True] * 5}, schema=obs_schema))
        rna = exp.add_new_collection("ms").add_new_collection("RNA", tiledbsoma.Measurement)
        rna.add_new_dataframe("var", schema=var.schema, index_column_names=["soma_joinid"], domain=[(0, 3)]).write(var)
        rna.add_new_collection("X").add_new_sparse_ndarray("raw", type=pa.float32(), shape=(5, 4)).write(
            pa.table({"soma_dim_0": r.astype(np.int64), "soma_dim_1": c.astype(np.int64), "soma_data": counts[r, c]}))
        presence = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 3)]
        rna.add_new_sparse_ndarray("feature_dataset_presence_matrix", type=pa.bool_(), shape=(2, 4)).write(
            pa.table({"soma_dim_0": np.array([p[0] for p in presence], dtype=np.int64),
                      "soma_dim_1": np.array([p[1] for p in presence], dtype=np.int64),
                      "soma_data": np.ones(len(presence), dtype=bool)}))


def test_census_root_presence_matrix_ensembl_ids_and_kept_obs(tmp_path):
    _census(tmp_path / "soma")
    table = GeneTable.from_frame(pd.DataFrame({
        "symbol": ["CD3E", "MS4A1", "LYZ", "NEWGENE"],
        "ensembl_id": ["ENSG00000198851", "ENSG00000156738", "ENSG00000090382", ""]}))
    cfg = BuildConfig(soma_filter="tissue_general == 'blood' and is_primary_data == True", curation=LOOSE)
    r = build_corpus([tmp_path / "soma"], tmp_path / "out", cfg, gene_table=table, log=quiet)
    c = Corpus(tmp_path / "out")
    assert c.genes == ["CD3E", "LYZ", "MS4A1", "NEWGENE"]     # NEWGENE through its name, the others by Ensembl id
    assert [(d.name, d.n_samples) for d in c.datasets] == [("A", 1), ("B", 3)]
    # A measured CD3E, MS4A1, NEWGENE (presence matrix), though its blood cell has no NEWGENE count
    assert c.measured_mask(0).tolist() == [True, False, True, True]
    assert c.measured_mask(1).tolist() == [False, True, True, True]
    assert c.obs["sample_id"].tolist() == ["A:0", "B:2", "B:3", "B:4"]          # no obs_id: soma_joinid
    x = c.read_rows(range(4))[0].toarray()
    assert x.tolist() == [[3, 0, 1, 0], [0, 7, 2, 0], [0, 1, 0, 4], [0, 2, 6, 0]]
    assert c.obs["cell_type"].tolist() == ["T cell", "B cell", "monocyte", "B cell"]
    assert c.obs["batch"].tolist() == ["d1", "d2", "d3", "d3"]                   # donor_id
    assert {"tissue_general", "is_primary_data", "dataset_id", "soma_joinid"} <= set(c.obs.columns)
    assert {s["dataset"]: s["gene_mapping"]["mapped"] for s in r["sources"]} == {"A": 4, "B": 4}
    # --keep-obs chooses the columns; a name no source has is refused before reading
    build_corpus([tmp_path / "soma"], tmp_path / "out2", BuildConfig(keep_obs=("tissue_general",), curation=LOOSE),
                 gene_table=table, log=quiet)
    assert set(Corpus(tmp_path / "out2").obs.columns) == {"dataset", "sample_id", "batch", "cell_type", "condition",
                                                           "perturbation", "tissue_general"}
    with pytest.raises(DataError, match=r"--keep-obs tissue: not a metadata column of any source"):
        build_corpus([tmp_path / "soma"], tmp_path / "out3", BuildConfig(keep_obs=("tissue",)), gene_table=table)


def _cli_error(tmp_path, capsys, args: list[str]) -> str:
    """Run build-corpus expecting one error line (exit 2) and no output left; return the line."""
    out = tmp_path / "out"
    assert run_main(main, ["build-corpus", "--out", str(out), "--gene-table", "none", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert not out.exists() and leftovers(tmp_path) == []
    return err[0]


def test_soma_bad_inputs_one_error_line_nothing_written(kang, tmp_path, capsys):
    soma = str(kang["soma"])
    blank = tmp_path / "not_soma"
    (blank / "__group").mkdir(parents=True)        # TileDB-looking, but no SOMA object
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("x")
    cases = [
        ([soma + "/obs"], r"a SOMA DataFrame, not an Experiment \(.*the experiment is its parent\)"),
        ([str(blank)], r"not_soma: (not a TileDB-SOMA experiment|cannot open as TileDB-SOMA).*--source"),
        ([str(tmp_path / "plain"), "--soma-filter", "a == 'b'"], r"plain: --soma-\* options were given but no source "
                                                                  r"is a TileDB-SOMA experiment"),
        ([str(kang["h5ad"]), "--soma-filter", "a == 'b'"], r"--soma-\* options were given but no source is a "
                                                           r"TileDB-SOMA experiment"),
        ([soma, "--soma-measurement", "ATAC"], r"no measurement 'ATAC'; this experiment has RNA; pass "
                                               r"--soma-measurement NAME"),
        ([soma, "--soma-layer", "counts"], r"has no X layer 'counts'; it has raw; pass --soma-layer NAME"),
        ([soma, "--soma-filter", "condition == 'STIM'"], r"matches none of the 400 cells; condition has e\.g\. "
                                                         r".*'stim'.*Check the column names and values"),
        ([soma, "--soma-filter", "celltype == 'B'"], r"cannot be applied .*obs columns: soma_joinid, obs_id, "
                                                     r"condition, n_counts"),
        ([soma, "--soma-split-by", "donor"], r"--soma-split-by 'donor' is not an obs column"),
        ([soma, "--soma-config", "vfs.s3.region"], r"--soma-config 'vfs.s3.region': expected KEY=VALUE"),
    ]
    for args, pattern in cases:
        line = _cli_error(tmp_path, capsys, ["--source", *args])
        assert re.search(pattern, line), (args, line)
        if "--soma-config" not in args:
            assert args[0] in line, line


# ---------------------------------------------------------------------- ARCHS4
FADISTA = "fadista2014_islets_bulk"


def write_archs4(path: Path, a: anndata.AnnData, series: list[str], ensembl: list[str] | None = None) -> Path:
    """An ARCHS4 v2-layout file of ``a``'s counts: genes x samples uint32, gzip, chunked by samples."""
    x = sp.csr_matrix(a.X).toarray().T.astype(np.uint32)
    with h5py.File(path, "w") as f:
        f.create_dataset("data/expression", data=x, chunks=(x.shape[0], 8), compression="gzip")
        f.create_dataset("meta/genes/symbol", data=np.array(a.var_names, dtype="S"))
        if ensembl is not None:
            f.create_dataset("meta/genes/ensembl_gene", data=np.array(ensembl, dtype="S"))
        s = f.create_group("meta/samples")
        s.create_dataset("geo_accession", data=np.array(a.obs["SubjectName"], dtype="S"))
        s.create_dataset("series_id", data=np.array(series, dtype="S"))
        s.create_dataset("title", data=np.array([f"islets {i}" for i in a.obs_names], dtype="S"))
        s.create_dataset("singlecellprobability", data=np.linspace(0, 0.1, a.n_obs))
    return path


@pytest.fixture(scope="module")
def fadista(shared_data, tmp_path_factory):
    """The 77 real islet samples as an h5ad and as an ARCHS4 file; samples 40-76 also belong to a second series."""
    root = tmp_path_factory.mktemp("fadista")
    a = anndata.read_h5ad(shared_data / f"{FADISTA}.h5ad")
    series = ["GSE50398"] * 40 + ["GSE50398,GSE50399"] * (a.n_obs - 40)
    return {"h5ad": shared_data / f"{FADISTA}.h5ad", "adata": a,
            "h5": write_archs4(root / f"{FADISTA}.h5", a, series)}


def test_archs4_file_builds_the_same_corpus_as_its_h5ad(fadista, tmp_path):
    build_corpus([fadista["h5ad"]], tmp_path / "from_h5ad", BuildConfig(), gene_table="none", log=quiet)
    r = build_corpus([fadista["h5"]], tmp_path / "from_h5", BuildConfig(chunk_size=10), gene_table="none", log=quiet)
    a, b = Corpus(tmp_path / "from_h5ad"), Corpus(tmp_path / "from_h5")
    assert b.genes == a.genes and [d.name for d in b.datasets] == [FADISTA]
    np.testing.assert_array_equal(b.datasets[0].measured, a.datasets[0].measured)
    gsm = dict(zip(fadista["adata"].obs_names, fadista["adata"].obs["SubjectName"]))
    assert b.obs["sample_id"].tolist() == [f"{FADISTA}:{gsm[s.split(':', 1)[1]]}" for s in a.obs["sample_id"]]
    xa, xb = a.read_rows(np.arange(a.n_samples))[0], b.read_rows(np.arange(b.n_samples))[0]
    assert (xa != xb).nnz == 0 and xa.nnz > 1_000_000
    assert r["sources"][0]["kind"] == "bulk" and r["sources"][0]["format"].startswith("ARCHS4 h5")
    assert b.obs["batch"].tolist()[:2] == ["GSE50398", "GSE50398"] and "title" in b.obs and "series_id" in b.obs


def test_archs4_sample_list_keeps_the_listed_samples_and_series(fadista, tmp_path, monkeypatch):
    from data.readers import archs4
    monkeypatch.setattr(archs4, "_BLOCK_BYTES", 3 * 32581 * 4)     # reads of at most 3 samples' columns
    a = fadista["adata"]
    gsm = list(a.obs["SubjectName"])
    ids = tmp_path / "keep.txt"
    ids.write_text(f"# samples of interest\n{gsm[3]}, {gsm[17]}\n{gsm[5].lower()}\tGSE50399  # the second series\n")
    build_corpus([fadista["h5"]], tmp_path / "out", BuildConfig(archs4_samples=str(ids), chunk_size=7),
                 gene_table="none", log=quiet)
    c = Corpus(tmp_path / "out")
    want = [3, 5, 17] + list(range(40, a.n_obs))
    assert c.obs["sample_id"].tolist() == [f"{FADISTA}:{gsm[i]}" for i in want]
    col = {g: j for j, g in enumerate(c.genes)}
    x = sp.csr_matrix(a.X)[want].toarray()
    got = c.read_rows(np.arange(c.n_samples))[0].toarray()
    genes = np.asarray(a.var_names)
    keep = np.array([g in col for g in genes])
    np.testing.assert_array_equal(got[:, [col[g] for g in genes[keep]]], x[:, keep])
    assert x[:, ~keep].sum() == 0


def test_archs4_bad_inputs_one_error_line_nothing_written(fadista, tmp_path, capsys):
    h5 = str(fadista["h5"])
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("foo/bar", data=np.arange(3))
    broken = tmp_path / "broken.h5"
    with h5py.File(broken, "w") as f:
        f.create_dataset("data/expression", data=np.ones((4, 3), dtype=np.uint32))
        f.create_dataset("meta/genes/symbol", data=np.array(["A", "B", "C", "D"], dtype="S"))
        f.create_dataset("meta/samples/geo_accession", data=np.array(["GSM1", "GSM2"], dtype="S"))
    unknown = tmp_path / "unknown.txt"
    unknown.write_text(f"{fadista['adata'].obs['SubjectName'].iloc[0]}\nGSM999\nGSE1\n")
    junk = tmp_path / "junk.txt"
    junk.write_text("GSM1216753\nfoo\n")
    cases = [
        ([str(other)], str(other), r"an HDF5 file of neither known \.h5 layout \(top-level groups: foo\); supported are "
                                   r"ARCHS4 .* and the 10x feature-barcode matrix"),
        ([str(broken)], str(broken), r"meta/samples/geo_accession has 2 entries but data/expression is 4 genes x 3 "
                                     r"samples"),
        ([h5, "--archs4-samples", str(unknown)], str(unknown), r"2 of the 3 listed ids are not in .* \(e\.g\. GSM999, "
                                                              r"GSE1\); remove them from the list"),
        ([h5, "--archs4-samples", str(junk)], str(junk), r"line 2: 'foo' is neither a GSM sample id nor a GSE"),
        ([h5, "--archs4-samples", str(tmp_path / "nope.txt")], "nope.txt", r"no such sample list"),
        ([str(fadista["h5ad"]), "--archs4-samples", str(unknown)], str(unknown),
         r"--archs4-samples was given but no source is an ARCHS4 \.h5 file"),
    ]
    for args, names, pattern in cases:
        line = _cli_error(tmp_path, capsys, ["--source", *args])
        assert re.search(pattern, line) and names in line, (args, line)
