"""A small corpus of REAL count data obtainable from the package registries alone.

Sources (downloads cached under ``cache/demo/downloads``):

* ``pbmc68k_reduced``: 700 PBMCs x 765 genes shipped in the scanpy wheel
  (PyPI ``scanpy==1.11.4``, ``scanpy/datasets/10x_pbmc68k_reduced.h5ad``).
  ``X`` is scaled, ``raw.X`` is log1p(counts / n_counts * 1e4) over the full
  transcriptome, so raw counts are ``expm1(raw.X) * obs.n_counts / 1e4``; the
  recovery is checked (every value close to an integer) before use;
  ``raw.X`` is stored with 3 decimals, so the check allows 0.02 + 0.05% of
  the value (measured maximum: 70% of that allowance).
  ``bulk_labels`` (the FACS-sorted population) becomes ``cell_type``.
* ``humanGender``: 85 lymphoblastoid bulk RNA-seq samples x 10,101 genes
  (Ensembl ids), integer counts, from Debian ``r-bioc-degreport``
  (``DEGreport/data/humanGender.rda``, a SummarizedExperiment read with
  ``rdata``). ``group`` (Female/Male) becomes ``condition``.

Each is written as an ``.h5ad`` under ``cache/demo/sources`` and the corpus is
built with ``data.corpus.build.build_corpus`` (gene ids mapped with the
offline gene table when it can be obtained, else kept as given, and said so).
"""
from __future__ import annotations

import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import scipy.sparse as sp

from data.references import registry
from data.readers import DataError

SCANPY_VERSION = "1.11.4"
SCANPY_MEMBER = "scanpy/datasets/10x_pbmc68k_reduced.h5ad"
DEGREPORT_PACKAGE = "r-bioc-degreport"
DEGREPORT_MEMBER = "DEGreport/data/humanGender.rda"
RECOVERY_TOLERANCE = (0.02, 5e-4)  # absolute + relative: raw.X holds log values rounded to 3 decimals


def _write_h5ad(adata: anndata.AnnData, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".h5ad", dir=path.parent)
    Path(tmp).unlink()
    try:
        adata.write_h5ad(tmp)
        Path(tmp).replace(path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def recover_pbmc68k_counts(adata: anndata.AnnData) -> sp.csr_matrix:
    """Raw counts (700, 765) int32 from pbmc68k_reduced's log-normalised ``raw.X`` and ``obs.n_counts``.

    Raises DataError when a recovered value is further from an integer than
    0.02 + 0.05% of its size (the 3-decimal rounding of ``raw.X`` allows ~0.05%).
    """
    x = sp.csr_matrix(adata.raw.X, dtype=np.float64)
    scale = adata.obs["n_counts"].to_numpy(dtype=np.float64) / 1e4
    x = sp.diags(scale) @ sp.csr_matrix((np.expm1(x.data), x.indices, x.indptr), shape=x.shape)
    dev = np.abs(x.data - np.rint(x.data))
    allowed = RECOVERY_TOLERANCE[0] + RECOVERY_TOLERANCE[1] * np.abs(x.data)
    if dev.size and np.any(dev > allowed):
        raise DataError(f"pbmc68k_reduced: recovered counts are not integers (max deviation {dev.max():.3f}); "
                        f"the file's normalisation is not log1p(counts/n_counts*1e4), so it cannot be used")
    out = sp.csr_matrix((np.rint(x.data).astype(np.int32), x.indices, x.indptr), shape=x.shape)
    out.eliminate_zeros()
    return out


def pbmc68k_source(cache: Path, log=print) -> Path:
    """``cache/sources/pbmc68k_reduced.h5ad`` with integer counts in X (built once)."""
    out = cache / "sources" / "pbmc68k_reduced.h5ad"
    if out.exists():
        return out
    wheel = registry.pip_download("scanpy", SCANPY_VERSION, cache / "downloads", log=log)
    with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
        try:
            src = Path(z.extract(SCANPY_MEMBER, tmp))
        except KeyError as e:
            raise DataError(f"{wheel}: no {SCANPY_MEMBER}; the wheel layout changed") from e
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = anndata.read_h5ad(src)
        counts = recover_pbmc68k_counts(a)
    obs = pd.DataFrame({"cell_type": a.obs["bulk_labels"].astype(str).to_numpy()}, index=a.obs_names.astype(str))
    ad = anndata.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=a.raw.var_names.astype(str)))
    ad.uns["source"] = {"package": f"scanpy=={SCANPY_VERSION} (PyPI)", "path": SCANPY_MEMBER,
                        "notes": "counts = rint(expm1(raw.X) * n_counts / 1e4), checked near-integer"}
    log(f"  pbmc68k_reduced: {ad.n_obs} cells x {ad.n_vars} genes, {ad.X.sum():,} counts recovered")
    return _write_h5ad(ad, out)


def human_gender_source(cache: Path, log=print) -> Path:
    """``cache/sources/humanGender.h5ad``: 85 bulk samples with integer counts (built once)."""
    import rdata

    out = cache / "sources" / "humanGender.h5ad"
    if out.exists():
        return out
    deb = registry.apt_download(DEGREPORT_PACKAGE, cache / "downloads", log=log)
    rda = registry.extract_from_deb(deb, [DEGREPORT_MEMBER], cache / "downloads", log=log)[DEGREPORT_MEMBER]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SummarizedExperiment has no Python constructor; its slots suffice
        se = rdata.read_rda(rda)["humanGender"]
    try:
        counts = se.assays.data.listData[0]
        genes = [str(g) for g in counts.coords["dim_0"].values]
        samples = [str(s) for s in counts.coords["dim_1"].values]
        group = [str(v) for v in se.colData.listData["group"]]
        x = np.asarray(counts.values)
    except (AttributeError, KeyError, IndexError) as e:
        raise DataError(f"{rda}: unexpected SummarizedExperiment layout ({e}); the package changed") from e
    if not np.issubdtype(x.dtype, np.integer):
        raise DataError(f"{rda}: assay is {x.dtype}, expected integer counts")
    ad = anndata.AnnData(X=sp.csr_matrix(x.T.astype(np.int32)),
                         obs=pd.DataFrame({"condition": group}, index=samples), var=pd.DataFrame(index=genes))
    ad.uns["source"] = {"package": f"{DEGREPORT_PACKAGE} ({deb.name}, Debian)", "path": DEGREPORT_MEMBER,
                        "notes": "humanGender SummarizedExperiment; group (sex) -> condition"}
    log(f"  humanGender: {ad.n_obs} bulk samples x {ad.n_vars} genes")
    return _write_h5ad(ad, out)


def _gene_table(log=print):
    """The offline gene table, or None (ids kept as given) when it cannot be obtained; never silent."""
    from data.genes.table import GeneTable
    try:
        return GeneTable.load(log=log)
    except (registry.RegistryError, OSError, ValueError) as e:
        log(f"warning: gene table unavailable ({e}); building the demo with gene ids as given, so Ensembl ids "
            f"(humanGender) and symbols (pbmc68k) stay separate genes. Run `python -m data fetch-references` "
            f"when the registry is reachable, then rebuild.")
        return None


def build_demo(out: str | Path = "corpora/demo", cache: str | Path = "cache/demo", with_shared: bool = False,
               shared: str | Path = "../shared/data", overwrite: bool = False, log=print) -> dict:
    """Download (cached), convert and build the demo corpus; returns the build report."""
    from data.corpus.build import BuildConfig, build_corpus

    t0 = time.time()
    cache = Path(cache)
    out = Path(out)
    from common.outputs import check_output_target
    from txfm.corpus import is_corpus
    # refused before any download: a folder that is not a corpus, a corpus without --overwrite,
    # an --out holding the download cache or the shared data
    check_output_target(out, "corpus", is_corpus, overwrite,
                        protect=[cache] + ([Path(shared)] if with_shared else []))
    log("fetching demo sources from the package registries (cached in " f"{cache}/downloads)")
    sources: list[Path] = [pbmc68k_source(cache, log), human_gender_source(cache, log)]
    if with_shared:
        if not (Path(shared) / "README.md").exists():
            raise DataError(f"{shared}: shared data folder not found; drop --with-shared or pass --shared PATH")
        sources.append(Path(shared))
    table = _gene_table(log)
    report = build_corpus(sources, out, BuildConfig(overwrite=overwrite), gene_table=table if table else "none",
                          log=log)
    log(f"demo corpus built in {time.time() - t0:.1f} s")
    return report
