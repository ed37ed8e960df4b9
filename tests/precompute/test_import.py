"""`python -m precompute import --embeddings`: another model's gene embedding becomes a bundle.

The round trip is the independent check: a bundle's own matrix, exported to each format (some rows named
by Ensembl id or alias instead of symbol) and imported with the bundle's population, gives back the
bundle's recall exactly. Malformed files are one clear error naming the file, and leave nothing behind.
"""
import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from data.readers.embeddings import read_gene_embedding
from data.readers.validate import DataError
from precompute.cli import main as precompute_main
from precompute.bundle.synthetic import make_synthetic_bundle, synthetic_matrices, write_synthetic_references
from precompute.params import BundleParams

N = 300
FAST = BundleParams(umap_epochs=20, null_size=150, n_nulls=2, k=8, resolutions=(1.0,))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A synthetic bundle with a support column (half the genes 'measured well') and its reference folder."""
    from precompute.pipeline import build_bundle
    tmp = tmp_path_factory.mktemp("import")
    mats, genes, blocks = synthetic_matrices(N, {"decoder": 32}, n_blocks=6, seed=0)
    genes["support"] = np.where(np.arange(N) % 2 == 0, 3, 1)            # every other gene in the population
    ref = write_synthetic_references(tmp / "references", genes["symbol"].tolist(), blocks, pairs_per_source=300)
    bundle = build_bundle(mats, genes, ref, tmp / "bundles" / "src", {"kind": "txfm", "checkpoint": "synthetic"},
                          FAST, progress=False)
    return {"tmp": tmp, "ref": ref, "bundle": bundle, "x": mats["decoder"], "genes": genes}


def _ids(genes: pd.DataFrame) -> list[str]:
    """Symbols, but every 7th gene by Ensembl id and every 11th by alias: the mapping must undo this."""
    out = []
    for i, s in enumerate(genes["symbol"]):
        out.append(genes["ensembl_id"].iloc[i] if i % 7 == 3 else (f"SYNA{i}" if i % 11 == 5 else s))
    return out


def _import(source, emb, out, *extra) -> int:
    return precompute_main(["import", "--embeddings", str(emb), "--out", str(out), "--name", "decoder",
                            "--references", str(source["ref"]), "--support-from", str(source["bundle"]),
                            "--quiet", "--umap-epochs", "20", "--null-size", "150", "--n-nulls", "2", "--k", "8",
                            "--resolutions", "1.0", *extra])


def test_round_trip_tsv_gives_the_bundles_recall(source):
    tmp, x = source["tmp"], source["x"]
    df = pd.DataFrame(x, columns=[f"dim{i}" for i in range(x.shape[1])])
    df.insert(0, "gene", _ids(source["genes"]))
    df.to_csv(tmp / "emb.tsv", sep="\t", index=False)
    assert _import(source, tmp / "emb.tsv", tmp / "bundles" / "imported") == 0
    out = tmp / "bundles" / "imported"
    got = json.loads((out / "recall" / "best.json").read_text())["decoder"]
    want = json.loads((source["bundle"] / "recall" / "best.json").read_text())["decoder"]
    assert got == want                                                  # same population, rank and recall
    genes = pd.read_parquet(out / "genes.parquet").sort_values("gene")
    assert genes["symbol"].tolist() == source["genes"]["symbol"].tolist()   # ids mapped back to symbols
    m = json.loads((out / "manifest.json").read_text())
    assert m["source"]["kind"] == "imported" and m["source"]["mapping"]["mapped"] == N
    from precompute.bundle.validate import validate_bundle
    assert validate_bundle(out) == []


@pytest.mark.parametrize("fmt", ["csv", "npy", "h5ad_rows", "h5ad_varm", "pt"])
def test_every_format_reads_the_same_matrix(source, fmt):
    import anndata as ad
    import torch
    tmp, x, ids = source["tmp"], source["x"], _ids(source["genes"])
    kw = {}
    if fmt == "csv":
        p = tmp / "emb.csv"
        pd.DataFrame(x).assign(symbol=ids)[["symbol", *range(x.shape[1])]].to_csv(p, index=False)
    elif fmt == "npy":
        p = tmp / "emb.npy"
        np.save(p, x)
        (tmp / "genes.txt").write_text("\n".join(ids) + "\n")
        kw["genes"] = tmp / "genes.txt"
    elif fmt == "h5ad_rows":
        p = tmp / "rows.h5ad"
        ad.AnnData(X=x, obs=pd.DataFrame(index=ids)).write_h5ad(p)
    elif fmt == "h5ad_varm":
        p = tmp / "varm.h5ad"
        a = ad.AnnData(X=np.zeros((2, N), np.float32), var=pd.DataFrame(index=ids))
        a.varm["PCs"] = x
        a.write_h5ad(p)
        kw["varm"] = "PCs"
    else:
        p = tmp / "emb.pt"
        torch.save({"gene_embedding": torch.from_numpy(x), "bias": torch.zeros(5), "genes": ids}, p)
    got, got_ids = read_gene_embedding(p, **kw)
    np.testing.assert_allclose(got, x, rtol=1e-6)
    assert got_ids == ids


def _bad(tmp, name, content):
    p = tmp / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    return p


@pytest.mark.parametrize("name,content,kw,says", [
    ("empty.tsv", "", {}, "empty"),
    ("words.tsv", "gene\td0\nTP53\t0.1\nMDM2\thigh\nBAX\t0.3\n", {}, "text 'high' in number column"),
    ("nan.tsv", "gene\td0\nTP53\t0.1\nMDM2\tnan\nBAX\t0.3\n", {}, "NaN or infinite values in 1 genes (e.g. MDM2)"),
    ("dup.tsv", "gene\td0\nTP53\t0.1\nTP53\t0.2\nBAX\t0.3\n", {}, "duplicate gene identifiers (e.g. TP53)"),
    ("one.tsv", "gene\nTP53\nMDM2\n", {}, "is it comma-separated"),
    ("nocol.tsv", "gene\td0\nTP53\t0.1\nMDM2\t0.2\nBAX\t0.3\n", {"gene_column": "symbol"}, "no column 'symbol'"),
    ("emb.parquet", b"PAR1", {}, "unknown embedding format"),
])
def test_malformed_text_files(tmp_path, name, content, kw, says):
    p = _bad(tmp_path, name, content)
    with pytest.raises(DataError) as e:
        read_gene_embedding(p, **kw)
    assert str(p) in str(e.value) and says in str(e.value), str(e.value)


def test_malformed_binary_files(tmp_path):
    import torch
    np.save(tmp_path / "flat.npy", np.zeros(5))
    (tmp_path / "g.txt").write_text("A\nB\nC\nD\nE\n")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "ok.npy", np.zeros((4, 2)))
    torch.save({"a": torch.zeros(3, 2), "b": torch.zeros(3, 2), "genes": ["A", "B", "C"]}, tmp_path / "two.pt")
    torch.save({"x": pathlib.PurePosixPath("a")}, tmp_path / "evil.pt")     # a class weights_only refuses
    cases = [(tmp_path / "flat.npy", {"genes": tmp_path / "g.txt"}, "expected a 2-D gene x dimension matrix"),
             (tmp_path / "obj.npy", {"genes": tmp_path / "g.txt"}, "not a plain numeric .npy array"),
             (tmp_path / "ok.npy", {}, "pass --genes FILE"),
             (tmp_path / "ok.npy", {"genes": tmp_path / "g.txt"}, "4 matrix rows but 5 gene identifiers"),
             (tmp_path / "two.pt", {}, "pass --key"),
             (tmp_path / "evil.pt", {}, "not a .pt file of plain tensors")]
    for p, kw, says in cases:
        with pytest.raises(DataError) as e:
            read_gene_embedding(p, **kw)
        msg = str(e.value)
        assert str(p) in msg and says in msg, msg
        assert "weights_only" not in msg and "allow_pickle" not in msg


def test_cli_refuses_unknown_genes_and_writes_nothing(source, capsys):
    from common.errors import run_main
    tmp = source["tmp"]
    p = _bad(tmp, "alien.tsv", "gene\td0\nfoo1\t0.1\nfoo2\t0.2\nfoo3\t0.3\n")
    out = tmp / "bundles" / "alien"
    code = run_main(lambda argv: _import(source, p, out), [])
    err = capsys.readouterr().err
    assert code == 2 and "none of its 3 gene identifiers" in err and str(p) in err
    assert not out.exists() and not list(out.parent.glob(".alien*"))
