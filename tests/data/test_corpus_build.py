"""Corpus building: bad inputs leave nothing behind; gene harmonisation, metadata, real shared datasets."""
from __future__ import annotations

import json

import anndata
import numpy as np
import pandas as pd
import pytest

from common.errors import UserError, run_main
import scipy.sparse as sp

from data.__main__ import main
from data.corpus.build import BuildConfig, build_corpus
from data.corpus.curation import CurationConfig
from data.genes.table import GeneTable
from data.readers import DataError
from txfm.corpus import Corpus

GENES = ["CD3E", "MS4A1", "LYZ"]
LOOSE = BuildConfig(curation=CurationConfig(min_cells=1, min_genes=1))


def h5ad(path, X, genes=GENES, cells=None, obs=None):
    n = np.asarray(X).shape[0] if not sp.issparse(X) else X.shape[0]
    cells = cells or [f"c{i}" for i in range(n)]
    a = anndata.AnnData(X=X, obs=obs if obs is not None else pd.DataFrame(index=cells),
                        var=pd.DataFrame(index=genes))
    a.obs_names = cells
    a.write_h5ad(path)
    return path


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name == "out")


BAD_CASES = {
    "nan": (np.array([[1.0, np.nan, 0.0], [0.0, 1.0, 2.0]]), r"1 NaN and 0 infinite values"),
    "inf": (np.array([[1.0, np.inf, 0.0], [0.0, 1.0, 2.0]]), r"0 NaN and 1 infinite values"),
    "negative": (np.array([[1.0, -1.0, 0.0], [0.0, 1.0, 2.0]]), r"1 negative values \(min -1\).*looks centred"),
    "lognorm": (np.array([[1.2, 0.7, 0.0], [0.0, 2.3, 4.0]]),
                r"values look log-normalised \(max 4, 75% of non-zero values non-integer.*--allow-non-integer"),
    "empty": (np.zeros((0, 3)), r"the count matrix is empty \(0 samples x 3 genes\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_message_and_nothing_left(tmp_path, case):
    X, msg = BAD_CASES[case]
    src = h5ad(tmp_path / f"{case}.h5ad", X)
    with pytest.raises(DataError, match=msg) as e:
        build_corpus([src], tmp_path / "out", LOOSE, gene_table="none", log=lambda m: None)
    assert str(src) in str(e.value)
    assert leftovers(tmp_path) == []


def test_duplicate_sample_ids(tmp_path):
    src = h5ad(tmp_path / "d.h5ad", np.ones((2, 3)), cells=["a", "a"])
    with pytest.raises(DataError, match=r"d.h5ad: 1 duplicate sample ids \(e.g. \['a'\]\).*obs_names_make_unique"):
        build_corpus([src], tmp_path / "out", LOOSE, gene_table="none")
    assert leftovers(tmp_path) == []


def test_existing_output_and_all_filtered(tmp_path):
    src = h5ad(tmp_path / "s.h5ad", np.array([[1, 0, 0], [0, 1, 0]]))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="exists and is not a corpus.*left untouched"):
        build_corpus([src], tmp_path / "taken", BuildConfig(overwrite=True), gene_table="none")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    strict = BuildConfig(curation=CurationConfig(min_cells=1, min_genes=5, kinds={"s": "single-cell"}))
    with pytest.raises(DataError, match="the filters removed every sample"):
        build_corpus([src], tmp_path / "out", strict, gene_table="none", log=lambda m: None)
    assert leftovers(tmp_path) == []


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    src = h5ad(tmp_path / "s.h5ad", np.array([[1, 0, 2], [0, 1, 0]]))
    from txfm import corpus as tc

    def boom(self, *a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(tc.CorpusWriter, "add_samples", boom)
    with pytest.raises(OSError, match="disk full"):
        build_corpus([src], tmp_path / "out", LOOSE, gene_table="none", log=lambda m: None)
    assert leftovers(tmp_path) == []


def test_non_integer_allowed_rounds_and_reports(tmp_path):
    src = h5ad(tmp_path / "est.h5ad", np.array([[1.4, 0.0, 2.6], [0.0, 3.0, 1.0]]))
    cfg = BuildConfig(allow_non_integer=True, curation=CurationConfig(min_cells=1, min_genes=1))
    r = build_corpus([src], tmp_path / "out", cfg, gene_table="none", log=lambda m: None)
    assert r["sources"][0]["values_rounded"] == 2
    c = Corpus(tmp_path / "out")
    x, _ = c.read_rows([0, 1])
    col = {g: i for i, g in enumerate(c.genes)}
    assert [x[0, col[g]] for g in GENES] == [1, 0, 3] and [x[1, col[g]] for g in GENES] == [0, 3, 1]


def test_duplicate_gene_names_summed_and_reported(tmp_path):
    src = h5ad(tmp_path / "dup.h5ad", np.array([[1, 2, 5], [3, 0, 1]]), genes=["CD3E", "LYZ", "CD3E"])
    r = build_corpus([src], tmp_path / "out", LOOSE, gene_table="none", log=lambda m: None)
    m = r["sources"][0]["gene_mapping"]
    assert m["duplicate_ids_in_file"] == 1 and m["genes_with_summed_inputs"] == 1 and m["summed_examples"] == ["CD3E"]
    c = Corpus(tmp_path / "out")
    assert c.genes == ["CD3E", "LYZ"]
    assert c.read_rows([0, 1])[0].toarray().tolist() == [[6, 2], [4, 0]]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "1 duplicate ids in the file; 1 genes summed from several ids (e.g. CD3E)" in md


def test_gene_table_aligns_symbols_aliases_and_ensembl(tmp_path):
    table = GeneTable.from_frame(pd.DataFrame({
        "symbol": ["CD3E", "MS4A1", "LYZ"],
        "ensembl_id": ["ENSG00000198851", "ENSG00000156738", "ENSG00000090382"],
        "aliases": ["", "CD20", ""]}))
    a = h5ad(tmp_path / "sym.h5ad", np.array([[1, 2, 3, 4], [0, 1, 0, 9]]), genes=["CD3E", "CD20", "MS4A1", "XIST1"])
    b = h5ad(tmp_path / "ens.h5ad", np.array([[7, 0], [1, 1]]), genes=["ENSG00000090382.14", "ENSG00000198851"])
    r = build_corpus([a, b], tmp_path / "out", LOOSE, gene_table=table, log=lambda m: None)
    c = Corpus(tmp_path / "out")
    assert c.genes == ["CD3E", "LYZ", "MS4A1", "XIST1"]
    assert c.gene_ids == ["ENSG00000198851", "ENSG00000090382", "ENSG00000156738", ""]
    x = c.read_rows(range(4))[0].toarray()
    # sym: CD20 (alias) + MS4A1 summed; XIST1 unmapped, kept under its id
    assert x.tolist() == [[1, 0, 5, 4], [0, 0, 1, 9], [0, 7, 0, 0], [1, 1, 0, 0]]
    assert c.measured_mask(0).tolist() == [True, False, True, True]
    assert c.measured_mask(1).tolist() == [True, True, False, False]
    ms = r["sources"][0]["gene_mapping"]
    assert (ms["mapped"], ms["unmapped"], ms["kept_under_original_id"], ms["unmapped_examples"]) == (3, 1, 1, ["XIST1"])
    drop = BuildConfig(unmapped="drop", curation=CurationConfig(min_cells=1, min_genes=1))
    r2 = build_corpus([a], tmp_path / "out2", drop, gene_table=table, log=lambda m: None)
    assert Corpus(tmp_path / "out2").genes == ["CD3E", "MS4A1"] and r2["sources"][0]["gene_mapping"]["dropped_not_mapped"] == 1


def test_obs_columns_normalised_and_obs_map(tmp_path):
    obs = pd.DataFrame({"bio_rep": ["rep_1", "rep_2"], "grna_target": ["STAT1", "non-targeting"],
                        "Annotation": ["T_CD4", "B"], "stim": ["ctrl", "stim"]}, index=["x", "y"])
    src = h5ad(tmp_path / "scr.h5ad", np.array([[1, 2, 0], [0, 1, 3]]), cells=["x", "y"], obs=obs)
    build_corpus([src], tmp_path / "out", BuildConfig(obs_map=("scr:stim=condition",),
                                                      curation=CurationConfig(min_cells=1, min_genes=1)),
                 gene_table="none", log=lambda m: None)
    o = Corpus(tmp_path / "out").obs
    assert o["sample_id"].tolist() == ["scr:x", "scr:y"]
    assert o["batch"].tolist() == ["rep_1", "rep_2"] and o["perturbation"].tolist() == ["STAT1", "non-targeting"]
    assert o["cell_type"].tolist() == ["T_CD4", "B"] and o["condition"].tolist() == ["ctrl", "stim"]


def test_duplicate_cells_removed_and_bulk_kept(tmp_path):
    sc = h5ad(tmp_path / "sc.h5ad", np.array([[1, 2, 0]] * 2 + [[0, 0, 0]] + [[1, 1, 1]] * 200 + [[3, 0, 1]]))
    bulk = h5ad(tmp_path / "bulk.h5ad", np.array([[900_000, 200_000, 0], [800_000, 0, 400_000]]))
    r = build_corpus([sc, bulk], tmp_path / "out", BuildConfig(), gene_table="none", log=lambda m: None)
    s, b = r["sources"]
    assert s["kind"] == "single-cell" and b["kind"] == "bulk"
    assert s["removed"] == {"fewer than 1 counts (empty)": 1, "exact duplicate of an earlier sample": 200}
    assert s["samples_kept"] == 3 and b["samples_kept"] == 2 and b["thresholds"]["min_genes_per_cell"] == 0


def test_cli_build_corpus_and_error_exit(tmp_path, capsys):
    src = h5ad(tmp_path / "s.h5ad", np.array([[1, 2, 0], [0, 1, 3]]))
    out = tmp_path / "corpus"
    assert main(["build-corpus", "--source", str(src), "--out", str(out), "--gene-table", "none",
                 "--min-cells", "1", "--min-genes", "1"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["n_samples"] == 2 and rep["n_genes"] == 3 and Corpus(out).n_samples == 2
    bad = h5ad(tmp_path / "bad.h5ad", np.array([[1.5, 2.0, 0.0]]))
    assert run_main(main, ["build-corpus", "--source", str(bad), "--out", str(tmp_path / "o2"),
                           "--gene-table", "none"]) == 2
    assert "values look log-normalised" in capsys.readouterr().err and not (tmp_path / "o2").exists()


def _expected(paths):
    """Vocabulary and per-dataset data computed independently with anndata (no filter beyond empty cells)."""
    data = {}
    for p in paths:
        a = anndata.read_h5ad(p)
        x = sp.csr_matrix(a.X)
        data[p.stem] = (x, list(a.var_names), np.asarray(x.sum(1)).ravel() > 0, np.asarray((x > 0).sum(0)).ravel())
    vocab = sorted({g for x, genes, _, det in data.values() for g, d in zip(genes, det) if d > 0})
    return vocab, data


def test_build_from_two_real_datasets(shared_data, tmp_path):
    paths = [shared_data / "kang2018_pbmc_stim.h5ad", shared_data / "pbmc1k_pisces.h5ad"]
    cfg = BuildConfig(curation=CurationConfig(min_cells=1, min_genes=1, deduplicate=False))
    r = build_corpus(paths, tmp_path / "out", cfg, gene_table="none", log=lambda m: None)
    vocab, data = _expected(paths)
    c = Corpus(tmp_path / "out")
    assert c.genes == vocab
    assert [d.name for d in c.datasets] == ["kang2018_pbmc_stim", "pbmc1k_pisces"]
    assert [d.n_samples for d in c.datasets] == [int(v[2].sum()) for v in data.values()]
    for i, (x, genes, nonempty, det) in enumerate(data.values()):
        gs = set(genes)
        assert c.measured_mask(i).tolist() == [g in gs for g in vocab]
    # pisces measures the genes it never detects (all-zero in the file) that kang detects
    x, genes, _, det = data["pbmc1k_pisces"]
    zero_in_pisces = {g for g, d in zip(genes, det) if d == 0}
    kx, kgenes, keep, kdet = data["kang2018_pbmc_stim"]
    expected = zero_in_pisces & {g for g, d in zip(kgenes, kdet) if d > 0}
    mask = c.measured_mask(1)
    assert len(expected) > 10
    assert {g for j, g in enumerate(vocab) if mask[j] and g in zero_in_pisces} == expected
    # counts of every kept kang cell, gene by gene
    index = {g: j for j, g in enumerate(vocab)}
    col = np.array([index.get(g, -1) for g in kgenes])
    got = c.read_rows(np.arange(c.datasets[0].n_samples))[0].toarray()
    want = kx[np.flatnonzero(keep)].toarray()
    np.testing.assert_array_equal(got[:, col[col >= 0]], want[:, col >= 0])
    assert want[:, col < 0].sum() == 0
    assert r["sources"][1]["genes_measured"] == int(mask.sum())


def test_build_real_perturbation_screen_with_phenoprint(shared_data, tmp_path):
    src = shared_data / "papalexi2021_thp1_crispr.h5ad"
    cfg = BuildConfig(phenoprint="pca")
    r = build_corpus([src], tmp_path / "out", cfg, gene_table="none", log=lambda m: None)
    s = r["sources"][0]
    scores = pd.DataFrame(s["phenoprint"])
    assert len(scores) == 25 and set(scores.columns) >= {"perturbation", "p_value", "kept"}
    obs = Corpus(tmp_path / "out").obs
    dropped = set(scores.loc[~scores["kept"], "perturbation"])
    assert dropped and not set(obs["perturbation"]) & dropped
    assert {"non-targeting"} <= set(obs["perturbation"]) and set(obs["batch"]) == {"rep_1", "rep_2", "rep_3"}
    assert s["samples_kept"] == s["samples_in"] - sum(s["removed"].values())
