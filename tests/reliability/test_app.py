"""Bad-input catalogue for the app (docs/reliability.md): hostile links and data, damaged
bundles, edge ranks. Every case runs the real app under Streamlit's AppTest on bundles written by the
real pipeline (the session fixture `real_bundles`, shared with tests/app) and asserts: no exception
escapes, and the page shows the expected one-line problem (or nothing wrong at all).
"""
import io
import json

import numpy as np
import pandas as pd
import pytest

from tests.reliability.conftest import (app_run, assert_inert_markdown, assert_one_problem, copy_bundle,
                                        md_unescape, page_markdown, reseal)

LINK = "[click me](https://evil.example/steal)"
FORMULAS = ['=HYPERLINK("https://evil.example","click")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3*cmd",
            "\tTAB", " =1+1"]
HOSTILE = [LINK, "`x` <a href='https://evil.example'>y</a> www.evil.example :red[boom]"] + FORMULAS


def _plotly_json(at) -> str:
    return "\n".join(str(c.proto.spec) for c in at.get("plotly_chart"))


def _assert_payload_inert(at, token: str = "evil") -> None:
    hits = [m for m in page_markdown(at) if token in md_unescape(m)]
    assert hits, f"{token!r} is not shown anywhere"
    for m in hits:
        assert_inert_markdown(m)
    assert "<a href" not in _plotly_json(at).replace("\\u003c", "<")


@pytest.fixture(scope="module")
def hostile(real_bundles, tmp_path_factory):
    """A copy of the TxFM bundle whose first gene symbols are links, HTML and spreadsheet formulas
    (as a data file could supply them), resealed so it is a valid bundle."""
    root = tmp_path_factory.mktemp("hostile")
    b = copy_bundle(real_bundles["txfm"], root)
    g = pd.read_parquet(b / "genes.parquet")
    g.loc[: len(HOSTILE) - 1, "symbol"] = HOSTILE
    g.to_parquet(b / "genes.parquet", index=False)
    reseal(b)
    return root


# ---- 1-3: links and HTML from a URL or a data file are shown as text --------------------------------
@pytest.mark.parametrize("gene", [LINK, "a`[x](https://evil.example)`b"])
def test_gene_url_param_with_markdown_link_is_text(real_bundles, gene):
    at = app_run(real_bundles["root"], "neighbourhood", bundle="txfm", gene=gene)
    msg = assert_one_problem(at, "is not in bundle", kind="warning")
    assert gene in msg                                  # shown verbatim, as text
    assert_inert_markdown(at.warning[0].value)
    assert not at.error


def test_gene_url_param_breaking_out_of_code_span_is_text(real_bundles):
    evil = "a`[x](https://evil.example)`b www.evil.example"
    at = app_run(real_bundles["root"], "gene_map", bundle="txfm", gene=evil)
    assert not at.error
    _assert_payload_inert(at)


@pytest.mark.parametrize("page", ["neighbourhood", "gene_map", "subspaces"])
def test_gene_names_from_data_are_text(hostile, page):
    at = app_run(hostile, page, bundle="txfm", gene=LINK)
    assert not at.error, [e.value for e in at.error]
    if page == "neighbourhood":
        assert md_unescape(at.subheader[0].value).startswith(LINK + ": 20 nearest genes")
    _assert_payload_inert(at)


def test_bundle_folder_name_and_manifest_fields_are_text(real_bundles, tmp_path):
    name = "evil](javascript:alert(1)) [x](https:evil.example)"
    b = copy_bundle(real_bundles["pca"], tmp_path, name)
    m = json.loads((b / "manifest.json").read_text())
    m["source"]["checkpoint"] = "`` [ckpt](https://evil.example/ckpt) <img src=x>"
    m["created"] = "[today](https://evil.example/today)"
    (b / "manifest.json").write_text(json.dumps(m))
    at = app_run(tmp_path, "overview", bundle=name)
    assert not at.error, [e.value for e in at.error]
    _assert_payload_inert(at)
    assert name in md_unescape(at.header[0].value)


# ---- 4-6: exports neutralise spreadsheet formulas and still parse -------------------------------------
def test_csv_export_neutralises_formulas(hostile):
    from precompute.bundle.reader import open_bundle
    from app.export import table_csv
    from app.neighbours import neighbour_table
    b = open_bundle(hostile / "txfm")
    rows = np.arange(len(HOSTILE))
    df = neighbour_table(b.symbols, rows, np.linspace(-0.5, 0.9, len(rows)).astype(np.float32), {})
    back = pd.read_csv(io.BytesIO(table_csv(df)), keep_default_na=False)
    for got, want in zip(back["gene"], HOSTILE):
        assert got == ("'" + want if want.lstrip(" ").startswith(("=", "+", "-", "@", "\t")) else want)
        assert not got.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert back["cosine"].iloc[0] == pytest.approx(-0.5)  # numbers stay numbers


def test_gmt_export_neutralises_formulas_and_rereads(hostile):
    from app.export import gmt_bytes
    from common.gmt import gmt_sets
    sets = {"=cmd|'/C calc'!A0": FORMULAS, "plain": ["TP53", "MDM2"]}
    back = gmt_sets(gmt_bytes(sets).decode())
    assert list(back) == ["'=cmd|'/C calc'!A0", "plain"]
    assert back["plain"] == ["TP53", "MDM2"]
    for field in [f for line in gmt_bytes(sets).decode().splitlines() for f in line.split("\t")]:
        assert not field.startswith(("=", "+", "-", "@", "\r")), field
    # whitespace is collapsed (a tab would break the line), then formula-like genes get the quote
    assert back["'=cmd|'/C calc'!A0"] == ["'" + g if g.lstrip().startswith(("=", "+", "-", "@")) else g.strip()
                                          for g in (" ".join(f.split()) for f in FORMULAS)]


@pytest.mark.slow  # `data map-genes` loads the gene table: ~40 s on a busy 2-core machine
def test_tsv_mapping_export_neutralises_formulas(cli, real_bundles, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(["GENE1", '=HYPERLINK("https://evil.example","x")', "@SUM(1)"]) + "\n")
    res = cli("data", "map-genes", str(ids), "--references", str(real_bundles["root"].parent / "refs"),
              "--out", str(tmp_path / "out"))
    assert res.code == 0, res.stderr
    tsv = pd.read_csv(tmp_path / "out" / "ids.txt.mapping.tsv", sep="\t", keep_default_na=False, dtype=str)
    cells = tsv.to_numpy().ravel().tolist()
    assert not any(str(c).startswith(("=", "+", "@")) for c in cells), cells
    assert "'=HYPERLINK(\"https://evil.example\",\"x\")" in cells and "GENE1" in cells


# ---- 7-9: damaged bundle files of the right size: one line on the page --------------------------------
def test_nan_similarities_one_line(real_bundles, tmp_path):
    b = copy_bundle(real_bundles["txfm"], tmp_path)
    p = b / "knn" / "codebook.sims.npy"
    a = np.load(p)
    size = p.stat().st_size
    a[:] = np.nan
    np.save(p, a)
    assert p.stat().st_size == size                       # the validator's size check cannot see it
    at = app_run(tmp_path, "neighbourhood", bundle="txfm", gene="GENE0", matrix="codebook")
    assert_one_problem(at, "codebook.sims.npy: ")
    assert "non-finite" in md_unescape(at.error[0].value)


def test_garbage_gmt_one_line(real_bundles, tmp_path):
    b = copy_bundle(real_bundles["txfm"], tmp_path)
    p = sorted((b / "references" / "gmt").glob("*.gmt"))[0]
    p.write_bytes(np.random.default_rng(0).integers(0, 256, p.stat().st_size, dtype=np.uint8).tobytes())
    at = app_run(tmp_path, "enrichment", bundle="txfm")
    assert_one_problem(at, "not a GMT gene-set file")


def test_nan_subspace_one_line(real_bundles, tmp_path):
    b = copy_bundle(real_bundles["pca"], tmp_path)
    p = b / "subspaces" / "pca.npy"
    a = np.load(p)
    a[5, :] = np.nan
    np.save(p, a)
    at = app_run(tmp_path, "neighbourhood", bundle="pca", gene="GENE0", rank="3")
    assert_one_problem(at, "pca.npy: ")


def test_truncated_file_one_line(real_bundles, tmp_path):
    b = copy_bundle(real_bundles["txfm"], tmp_path)
    p = b / "knn" / "decoder.indices.npy"
    p.write_bytes(p.read_bytes()[:100])
    at = app_run(tmp_path, "overview", bundle="txfm")
    assert_one_problem(at, "is not valid")
    assert "decoder.indices.npy" in at.error[0].value.replace("\\", "")


# ---- 10-11: clutter and missing folders ----------------------------------------------------------------
def test_stray_ds_store_is_ignored(real_bundles, tmp_path):
    b = copy_bundle(real_bundles["pca"], tmp_path)
    (b / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    (b / "knn" / "._pca.sims.npy").write_bytes(bytes(10))
    (b / "umap" / "Thumbs.db").write_bytes(bytes(10))
    at = app_run(tmp_path, "neighbourhood", bundle="pca", gene="GENE0")
    assert not at.error, [e.value for e in at.error]
    assert "GENE0: 20 nearest genes" in md_unescape(at.subheader[0].value)


def test_missing_bundle_folder_one_line(tmp_path):
    at = app_run(tmp_path / "no-such-folder", "neighbourhood", gene="GENE0")
    assert_one_problem(at, "No bundles found")


# ---- 12-15: ranks and URL values at and beyond the edges --------------------------------------------------
@pytest.mark.parametrize("bundle,matrix", [("pca", "pca"), ("txfm", "decoder"), ("txfm", "codebook")])
def test_rank_equal_to_width(real_bundles, bundle, matrix):
    width = int(np.load(real_bundles[bundle] / "subspaces" / f"{matrix}.npy", mmap_mode="r").shape[1])
    for page in ("neighbourhood", "modules"):
        at = app_run(real_bundles["root"], page, bundle=bundle, gene="GENE2", matrix=matrix, rank=str(width))
        assert not at.error, (page, [e.value for e in at.error])
        if page == "neighbourhood":
            assert f"at rank {width}" in at.subheader[0].value


def test_unknown_gene_in_url_one_warning(real_bundles):
    at = app_run(real_bundles["root"], "neighbourhood", bundle="txfm", gene="NOTAGENE")
    assert_one_problem(at, "is not in bundle", kind="warning")
    assert not at.error and len(at.dataframe) == 0


def test_junk_url_values_fall_back(real_bundles):
    at = app_run(real_bundles["root"], "neighbourhood", bundle=["txfm", "nope"], gene="GENE1", matrix="nope",
                 rank="99999", k="abc", threshold="nan%")
    assert not at.error, [e.value for e in at.error]
    width = int(np.load(real_bundles["txfm"] / "subspaces" / "codebook.npy", mmap_mode="r").shape[1])
    assert f"GENE1: 20 nearest genes in `codebook` at rank {width}" in md_unescape(at.subheader[0].value)


def test_unknown_bundle_in_url_uses_first(real_bundles):
    at = app_run(real_bundles["root"], "subspaces", bundle="../../etc")
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Subspaces"
