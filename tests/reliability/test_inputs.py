"""Bad-input catalogue, part 3 of docs/reliability.md: wrong data is refused in one line, never silently used.

Every case runs a command in-process (tests/reliability/conftest.py) and asserts a non-zero exit,
one error line holding a stable fragment (no traceback), inputs byte-identical afterwards and no
output folder or staging file left behind. Fixtures are tiny (a synthetic gene table of ~10,000
genes with real symbols for the genes used, corpora of a few dozen samples).
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tests.reliability.conftest import no_leftovers

REAL = ["CD3E", "MS4A1", "LYZ", "CD74", "ACTB", "GAPDH", "CD14", "NKG7", "GNLY", "CD8A", "IL7R", "S100A8"]
ENSEMBL = {"CD3E": "ENSG00000198851", "MS4A1": "ENSG00000156738", "LYZ": "ENSG00000090382"}
MOUSE = ["Cd74", "Actb", "Gapdh", "Lyz2", "Cd3e", "Ms4a1", "Cd14", "Nkg7", "Gnly", "Cd8a", "Il7r", "S100a8"]


def refused(res, fragment: str) -> None:
    """Non-zero exit, no traceback, exactly one error line that holds `fragment` (prefix-agnostic)."""
    assert res.code != 0, f"exit 0; stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert "Traceback" not in res.stderr, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.lower().startswith(("error", "internal error"))]
    assert len(errors) == 1, f"expected one error line, got:\n{res.stderr}"
    assert not errors[0].lower().startswith("internal"), errors[0]
    assert fragment.lower() in errors[0].lower(), f"{fragment!r} not in {errors[0]!r}"


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def gene_table(tmp_path_factory) -> Path:
    """A complete-looking human genes.tsv: the real genes above (CD20 an alias of MS4A1) + 10,000 fillers."""
    rows = [{"symbol": g, "ensembl_id": ENSEMBL.get(g, ""), "entrez_id": str(100 + i),
             "aliases": "CD20" if g == "MS4A1" else ""} for i, g in enumerate(REAL)]
    rows += [{"symbol": f"FILL{i}", "ensembl_id": "", "entrez_id": str(100000 + i), "aliases": ""}
             for i in range(10_000)]
    df = pd.DataFrame(rows)
    for c in ("name", "previous_symbols", "gene_type", "other_ensembl_ids"):
        df[c] = ""
    p = tmp_path_factory.mktemp("genes") / "genes.tsv"
    df.to_csv(p, sep="\t", index=False)
    return p


def counts(n=12, g=len(REAL), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(4.0, (n, g)).astype(np.float32) + 1


def write_h5ad(path: Path, x, genes, cells=None) -> Path:
    cells = cells or [f"c{i}" for i in range(np.shape(x)[0])]
    anndata.AnnData(X=x, obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=list(genes))).write_h5ad(path)
    return path


def bad_file(kind: str, d: Path) -> Path:
    """The input file of a bad-input case."""
    x = counts()
    if kind == "transposed_h5ad":
        return write_h5ad(d / "t.h5ad", x.T.copy(), [f"c{i}" for i in range(x.shape[0])], cells=REAL)
    if kind == "csv_genes_rows_more_cells":  # 5 genes as rows, 12 cells as columns: auto reads cells as genes
        pd.DataFrame(x[:, :5].T, index=REAL[:5], columns=[f"cell{i}" for i in range(12)]).to_csv(d / "g.csv")
        return d / "g.csv"
    if kind == "mouse_symbols":
        return write_h5ad(d / "m.h5ad", x, MOUSE)
    if kind == "ensmusg":
        return write_h5ad(d / "e.h5ad", x, [f"ENSMUSG{i:011d}" for i in range(x.shape[1])])
    if kind == "low_mapped":
        return write_h5ad(d / "low.h5ad", x, REAL[:3] + [f"junk{i}" for i in range(x.shape[1] - 3)])
    if kind == "ragged_csv":
        (d / "r.csv").write_text("gene,c1,c2,c3\nCD3E,1,2,3\nLYZ,4,5\nACTB,1,1,1\n")
        return d / "r.csv"
    if kind == "semicolon_csv":
        (d / "s.csv").write_text("gene;c1;c2\nCD3E;1;2\nLYZ;4;5\n")
        return d / "s.csv"
    if kind == "comma_tsv":
        (d / "c.tsv").write_text("gene,c1,c2\nCD3E,1,2\nLYZ,4,5\n")
        return d / "c.tsv"
    if kind == "empty_csv":
        (d / "empty.csv").write_bytes(b"")
        return d / "empty.csv"
    if kind == "duplicate_genes":
        (d / "dup.csv").write_text("cell,CD3E,LYZ,CD3E\nc1,1,2,3\nc2,4,5,6\n")
        return d / "dup.csv"
    if kind in ("nan", "negative", "lognorm", "non_integer", "all_zero"):
        y = x.copy()
        if kind == "nan":
            y[0, 1] = np.nan
        elif kind == "negative":
            y[1, 2] = -2
        elif kind == "lognorm":
            y = np.log1p(y / y.sum(1, keepdims=True) * 1e4).astype(np.float32)
        elif kind == "non_integer":
            y = y * 10.5
        else:
            y = np.zeros_like(y)
        return write_h5ad(d / f"{kind}.h5ad", sp.csr_matrix(y) if kind == "all_zero" else y, REAL)
    if kind == "not_gzip":
        (d / "plain.csv.gz").write_text("gene,c1\nCD3E,1\n")
        return d / "plain.csv.gz"
    if kind == "not_hdf5":
        (d / "x.h5ad").write_text("this is not HDF5\n")
        return d / "x.h5ad"
    if kind == "unknown_format":
        (d / "counts.xlsx").write_bytes(b"PK\x03\x04 not really a spreadsheet")
        return d / "counts.xlsx"
    raise KeyError(kind)


BUILD_CASES = {
    "transposed_h5ad": "the gene ids are on the other axis",
    "csv_genes_rows_more_cells": "--orientation genes_x_samples",
    "mouse_symbols": "look mouse",
    "ensmusg": "look mouse",
    "low_mapped": "only 3 of 12 gene ids",
    "ragged_csv": "line 3 has 3 fields, expected 4",
    "semicolon_csv": "separator looks like ';'",
    "comma_tsv": "separator looks like ','",
    "empty_csv": "the file is empty",
    "duplicate_genes": "duplicate labels in the header",
    "nan": "1 NaN",
    "negative": "1 negative values",
    "lognorm": "log-normalised",
    "non_integer": "not integers",
    "all_zero": "every count is zero",
    "not_gzip": "not a gzip file",
    "not_hdf5": "not an HDF5 file",
    "unknown_format": "unknown format '.xlsx'",
}


@pytest.mark.parametrize("case", sorted(BUILD_CASES))
def test_build_corpus_refuses(cli, unchanged, tmp_path, gene_table, case):
    src = bad_file(case, tmp_path)
    with unchanged(src, gene_table):
        res = cli("data", "build-corpus", "--source", src, "--out", "out", "--gene-table", gene_table,
                  "--min-cells", "1", "--min-genes", "1")
    refused(res, BUILD_CASES[case])
    assert str(src.name) in res.stderr
    assert not (tmp_path / "out").exists()
    no_leftovers(tmp_path)


@pytest.mark.parametrize("case", ["nan", "negative", "lognorm", "all_zero", "mouse_symbols", "transposed_h5ad",
                                  "semicolon_csv"])
def test_data_embed_applies_the_same_checks(cli, unchanged, tmp_path, gene_table, embed_setup, case):
    src = bad_file(case, tmp_path)
    with unchanged(src, gene_table, embed_setup["checkpoint"]):
        res = cli("data", "embed", "--checkpoint", embed_setup["checkpoint"], "--input", src, "--out", "o/e.npz",
                  "--gene-table", gene_table)
    refused(res, BUILD_CASES[case])
    assert not (tmp_path / "o").exists()
    no_leftovers(tmp_path)


def good_csv(tmp_path):
    p = tmp_path / "ok.csv"
    pd.DataFrame(counts()[:, :5], index=[f"c{i}" for i in range(12)], columns=REAL[:5]).to_csv(p)
    return p


@pytest.mark.parametrize("case,fragment", [
    ("truncated", "only 2999 genes"),
    ("cut_mid_line", "fields, expected 8"),
    ("binary", "not a text table"),
    ("latin1", "not UTF-8"),
    ("no_symbol_column", "no 'symbol' column"),
])
def test_bad_gene_table_refused_naming_the_file(cli, unchanged, tmp_path, gene_table, case, fragment):
    lines = gene_table.read_text().splitlines(keepends=True)
    bad = tmp_path / "bad_genes.tsv"
    if case == "truncated":
        bad.write_text("".join(lines[:3000]))
    elif case == "cut_mid_line":
        bad.write_text("".join(lines[:5000]) + lines[5000][:8])
    elif case == "binary":
        bad.write_bytes(bytes(range(256)) * 40)
    elif case == "latin1":
        bad.write_bytes("".join(lines).replace("FILL1\t", "FILL\u00e91\t", 1).encode("latin-1"))
    else:
        bad.write_text("gene\tid\nCD3E\t1\n")
    src = good_csv(tmp_path)
    with unchanged(src, bad):
        res = cli("data", "build-corpus", "--source", src, "--out", "out", "--gene-table", bad, "--orientation",
                  "samples_x_genes", "--min-cells", "1", "--min-genes", "1")
    refused(res, fragment)
    assert "bad_genes.tsv" in res.stderr
    assert not (tmp_path / "out").exists()
    no_leftovers(tmp_path)


# ------------------------------------------------------------------ corpora, training, baseline
def _corpus(path: Path, seed=0) -> Path:
    from tests.txfm.conftest import make_corpus
    return make_corpus(path, n_samples=48, n_genes=24, seed=seed, shard_size=16)


def _edit_manifest(c: Path) -> None:
    m = json.loads((c / "manifest.json").read_text())
    m["genes"][0], m["genes"][1] = m["genes"][1], m["genes"][0]
    (c / "manifest.json").write_text(json.dumps(m))


def _negative_shard(c: Path) -> None:
    f = c / "shards" / "shard-00001.npz"
    z = dict(np.load(f))
    z["data"] = z["data"].copy()
    z["data"][3] = -5
    np.savez(f, **z)


TRAIN = ("--reveal", "8", "--batch-size", "8", "--max-steps", "2", "--dim", "16", "--depth", "1", "--heads", "2",
         "--device", "cpu", "--val-every", "0")


@pytest.mark.parametrize("case,damage,fragment", [
    ("train", _edit_manifest, "does not match its recorded fingerprint"),
    ("train", _negative_shard, "negative counts"),
    ("baseline-pca", _negative_shard, "negative counts"),
    ("baseline-pca", _edit_manifest, "does not match its recorded fingerprint"),
])
def test_damaged_corpus_refused(cli, unchanged, tmp_path, case, damage, fragment):
    c = _corpus(tmp_path / "corpus")
    damage(c)
    with unchanged(c):
        if case == "train":
            res = cli("txfm", "train", "--corpus", c, "--out", "run", *TRAIN)
        else:
            res = cli("txfm", "baseline-pca", "--corpus", c, "--out", "pca/pca.pt", "--n-components", "4")
    refused(res, fragment)
    assert not (tmp_path / "run").exists() and not (tmp_path / "pca").exists()
    no_leftovers(tmp_path)


def test_verify_accepts_a_good_corpus(tmp_path):
    from txfm.corpus import Corpus
    info = Corpus(_corpus(tmp_path / "c")).verify()
    assert info["shards"] == 3 and info["nnz"] > 0


# ------------------------------------------------------------------ nonsense options
@pytest.fixture(scope="module")
def option_corpus(tmp_path_factory):
    return _corpus(tmp_path_factory.mktemp("optcorpus") / "corpus")


OPTION_CASES = [
    ("txfm", ["train", "--out", "run", "--reveal", "0"], "--reveal 0: must be >= 1"),
    ("txfm", ["train", "--out", "run", "--batch-size", "0"], "--batch-size 0: must be >= 1"),
    ("txfm", ["train", "--out", "run", "--lr", "-1"], "--lr -1.0: must be > 0"),
    ("txfm", ["train", "--out", "run", "--val-fraction", "1"], "--val-fraction 1.0: must be in [0, 1)"),
    ("txfm", ["train", "--out", "run", "--save-every", "0"], "--save-every 0: must be >= 1"),
    ("txfm", ["train", "--out", "run", "--warmup", "1.5"], "--warmup 1.5: must be in [0, 1)"),
    ("txfm", ["train", "--out", "run", "--heads", "0"], "--heads 0: must be >= 1"),
    ("txfm", ["baseline-pca", "--out", "pca.pt", "--n-components", "0"], "--n-components 0: must be >= 1"),
    ("txfm", ["baseline-pca", "--out", "pca.pt", "--max-samples", "1"], "--max-samples 1: must be >= 2"),
    ("data", ["build-corpus", "--out", "out", "--chunk-size", "0"], "--chunk-size 0: must be >= 1"),
    ("data", ["build-corpus", "--out", "out", "--shard-size", "-3"], "--shard-size -3: must be >= 1"),
    ("data", ["build-corpus", "--out", "out", "--min-mapped-fraction", "2"], "--min-mapped-fraction 2.0: must be in [0, 1]"),
    ("data", ["build-corpus", "--out", "out", "--max-mito-fraction", "1.5"], "--max-mito-fraction 1.5: must be in [0, 1]"),
    ("data", ["build-corpus", "--out", "out", "--min-counts", "-1"], "--min-counts -1: must be >= 0"),
    ("data", ["build-corpus", "--out", "out", "--phenoprint-alpha", "0"], "--phenoprint-alpha 0.0: must be in (0, 1]"),
    ("precompute", ["run", "--checkpoint", "ck.pt", "--out", "b", "--k", "0"], "--k 0: must be >= 1"),
    ("precompute", ["run", "--checkpoint", "ck.pt", "--out", "b", "--null-size", "1"], "--null-size 1: must be >= 2"),
    ("precompute", ["run", "--checkpoint", "ck.pt", "--out", "b", "--ranks", "8", "0"], "--ranks 0: must be >= 1"),
    ("evaluation", ["perturbation", "--input", "x.h5ad", "--out", "ev", "--n-components", "0"],
     "--n-components 0: must be >= 1"),
    ("evaluation", ["perturbation", "--input", "x.h5ad", "--out", "ev", "--alpha", "0"], "--alpha 0.0: must be in (0, 1]"),
    ("evaluation", ["perturbation", "--input", "x.h5ad", "--out", "ev", "--max-cells", "0"], "--max-cells 0: must be >= 2"),
    ("evaluation", ["celltype", "--input", "x.h5ad:cell_type", "--out", "ev", "--k", "0"], "--k 0: must be >= 1"),
    ("evaluation", ["celltype", "--input", "x.h5ad:cell_type", "--out", "ev", "--batch-size", "0"],
     "--batch-size 0: must be >= 1"),
]


@pytest.mark.parametrize("room,argv,fragment", OPTION_CASES, ids=[f"{r}-{a[0]}-{a[-2]}" for r, a, _ in OPTION_CASES])
def test_nonsense_option_refused_with_range(cli, unchanged, tmp_path, option_corpus, room, argv, fragment):
    argv = list(argv)
    if room == "txfm":
        argv[1:1] = ["--corpus", str(option_corpus)]
    if room == "data":
        src = good_csv(tmp_path)
        argv[1:1] = ["--source", str(src)]
    with unchanged(option_corpus):
        res = cli(room, *argv)
    refused(res, fragment)
    for out in ("run", "pca.pt", "out", "b", "ev"):
        assert not (tmp_path / out).exists(), out
    no_leftovers(tmp_path)


def test_embed_options_refused(cli, tmp_path, embed_setup):
    res = cli("data", "embed", "--checkpoint", embed_setup["checkpoint"], "--input", embed_setup["source"],
              "--out", "e.npz", "--gene-table", embed_setup["gene_table"], "--batch-size", "0")
    refused(res, "--batch-size 0: must be >= 1")
    res = cli("txfm", "embed", "--checkpoint", embed_setup["checkpoint"], "--input", embed_setup["corpus"],
              "--out", "e.npz", "--max-genes", "0")
    refused(res, "--max-genes 0: must be >= 1")
    assert not (tmp_path / "e.npz").exists()


# ------------------------------------------------------------------ embedding user files
@pytest.fixture(scope="module")
def embed_setup(tmp_path_factory, gene_table):
    """A source with an alias (CD20 for MS4A1) and an Ensembl id, its corpus, and a 2-step checkpoint."""
    from common.errors import run_main
    from data.__main__ import main as data_main
    from txfm.config import TrainConfig, model_config
    from txfm.trainer import train

    d = tmp_path_factory.mktemp("embed")
    genes = ["CD3E", "CD20", ENSEMBL["LYZ"]] + REAL[3:]
    src = write_h5ad(d / "pbmc.h5ad", counts(n=24, seed=3), genes)
    corpus = d / "corpus"
    assert run_main(data_main, ["build-corpus", "--source", str(src), "--out", str(corpus), "--gene-table",
                                str(gene_table), "--min-cells", "1", "--min-genes", "1"]) == 0
    from txfm.corpus import Corpus
    n_genes = Corpus(corpus).n_genes
    tc = TrainConfig(corpus=str(corpus), out=str(d / "run"), reveal=64, batch_size=8, max_steps=2, val_every=0,
                     val_fraction=0.0, save_every=2, log_every=1, device="cpu")
    ck = train(tc, model_config("tiny", n_genes, dim=16, depth=1, heads=2), quiet=True)
    return {"source": str(src), "corpus": str(corpus), "checkpoint": str(ck), "gene_table": str(gene_table)}


def test_data_embed_maps_aliases_like_build_corpus(cli, unchanged, tmp_path, embed_setup):
    from txfm.corpus import Corpus
    assert "MS4A1" in Corpus(embed_setup["corpus"]).genes and "LYZ" in Corpus(embed_setup["corpus"]).genes
    with unchanged(embed_setup["source"], embed_setup["corpus"], embed_setup["checkpoint"]):
        a = cli("data", "embed", "--checkpoint", embed_setup["checkpoint"], "--input", embed_setup["source"],
                "--out", "file.npz", "--gene-table", embed_setup["gene_table"])
        b = cli("txfm", "embed", "--checkpoint", embed_setup["checkpoint"], "--input", embed_setup["corpus"],
                "--out", "corpus.npz")
    assert a.code == 0, a.stderr
    assert b.code == 0, b.stderr
    assert f"{len(REAL)}/{len(REAL)} genes mapped" in a.stdout
    za, zb = np.load(tmp_path / "file.npz"), np.load(tmp_path / "corpus.npz")
    np.testing.assert_allclose(za["cls"], zb["cls"], rtol=1e-5, atol=1e-6)
    assert [s.split(":")[-1] for s in zb["sample_id"]] == list(za["sample_id"])
    no_leftovers(tmp_path)


@pytest.mark.parametrize("suffix", [".h5ad", ".csv"])
def test_txfm_embed_on_a_file_points_to_data_embed(cli, unchanged, tmp_path, embed_setup, suffix):
    src = Path(embed_setup["source"]) if suffix == ".h5ad" else good_csv(tmp_path)
    with unchanged(src):
        res = cli("txfm", "embed", "--checkpoint", embed_setup["checkpoint"], "--input", src, "--out", "o/e.npz")
    refused(res, "python -m data embed")
    assert not (tmp_path / "o").exists()
    no_leftovers(tmp_path)


def test_evaluation_input_goes_through_data_checks(cli, unchanged, tmp_path, gene_table):
    src = bad_file("negative", tmp_path)
    with unchanged(src):
        res = cli("evaluation", "celltype", "--input", f"{src}:cell_type", "--out", "ev", "--dataset-pca", "2")
    refused(res, "1 negative values")
    assert not (tmp_path / "ev").exists()
    no_leftovers(tmp_path)
