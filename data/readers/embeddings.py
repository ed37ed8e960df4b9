"""Gene embeddings from other models: a gene x dimension matrix and the genes' identifiers.

Formats (``read_gene_embedding``):

- ``.tsv`` / ``.csv`` / ``.txt`` (gzipped or not): one row per gene, a header, the identifiers in the
  first column (or ``gene_column``), numbers in every other column;
- ``.npy``: a 2-D float array (never unpickled) with ``genes``: a text file of one identifier per line,
  in row order;
- ``.h5ad``: genes as rows (``obs_names``, ``X``), or the genes' ``varm[KEY]`` (``var_names``), e.g. the
  ``PCs`` loadings scanpy writes;
- ``.pt``: a dict of tensors read with ``torch.load(weights_only=True)``; the matrix is ``key`` (or the
  dict's only 2-D tensor) and the identifiers a list of strings in the dict (``genes``, ``gene_names`` or
  ``symbols``) or the ``genes`` file.

Every problem (empty file, text in a number column, NaN or infinite values, a 1-D array, duplicate or
empty identifiers, lengths that disagree) raises ``DataError`` naming the file and the fix. A matrix
that looks like counts rather than an embedding (``count_like``: an integer or boolean dtype, every
value a non-negative whole number, or more columns than gene rows) is refused too, saying what was
seen, unless ``allow_counts`` (``--allow-counts``) imports it with a warning.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data.readers.validate import DataError

TEXT_SUFFIXES = (".tsv", ".csv", ".txt", ".tsv.gz", ".csv.gz", ".txt.gz")
PT_GENE_KEYS = ("genes", "gene_names", "symbols")
FORMATS_HELP = ("TSV/CSV with a gene column, .npy with --genes, .h5ad (genes as rows, or --varm KEY), "
                ".pt dict of tensors")


def read_gene_embedding(path: Path | str, gene_column: str | None = None, genes: Path | str | None = None,
                        varm: str | None = None, key: str | None = None, allow_counts: bool = False,
                        warn=None) -> tuple[np.ndarray, list[str]]:
    """(float32 (G, D) matrix, G identifiers in row order) from an embedding file (see the module).
    `warn(message)` receives the count-like remark when `allow_counts` lets such a matrix through."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found; pass the embedding file with --embeddings")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; pass one embedding file ({FORMATS_HELP})")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; export the embedding again")
    name = path.name.lower()
    if name.endswith(TEXT_SUFFIXES):
        x, ids = _read_text(path, gene_column)
    elif name.endswith(".npy"):
        x, ids = _read_npy(path, genes)
    elif name.endswith(".h5ad"):
        x, ids = _read_h5ad(path, varm)
    elif name.endswith((".pt", ".pth")):
        x, ids = _read_pt(path, key, genes)
    else:
        raise DataError(f"{path}: unknown embedding format {path.suffix or '(no suffix)'!r}; use {FORMATS_HELP}")
    dtype = np.asarray(x).dtype
    x, ids = _checked(path, x, ids)
    why = count_like(x, dtype)
    if why is not None:
        if not allow_counts:
            raise DataError(f"{path}: does not look like a gene embedding: {why}; pass a gene x dimension embedding "
                            "(e.g. a model's gene vectors or PCA loadings), or --allow-counts to import it anyway")
        if warn is not None:
            warn(f"warning: {path}: does not look like a gene embedding: {why}; imported anyway (--allow-counts)")
    return x, ids


def count_like(x: np.ndarray, dtype: np.dtype | None = None) -> str | None:
    """Why the (G, D) matrix `x` (read with `dtype`) looks like counts rather than an embedding, or None:
    an integer or boolean dtype; every value a non-negative whole number; more columns than gene rows (an
    embedding has far fewer dimensions than genes; a genes x cells count matrix has more)."""
    dtype = np.dtype(dtype if dtype is not None else x.dtype)
    g, d = x.shape
    if dtype.kind in "biu":
        return (f"its values are of type {dtype} (min {x.min():g}, max {x.max():g}), as counts are, not the "
                "real numbers of an embedding")
    if x.size and x.min() >= 0 and np.array_equal(x, np.round(x)):
        return (f"every value is a non-negative whole number (min {x.min():g}, max {x.max():g}), as counts are, "
                "not the real numbers of an embedding")
    if d > g:
        return (f"it has more columns ({d:,}) than gene rows ({g:,}); an embedding has fewer dimensions than genes "
                "(is it a genes x cells count matrix?)")
    return None


def _checked(path: Path, x, ids: list[str]) -> tuple[np.ndarray, list[str]]:
    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: the matrix is not numeric ({e}); export numbers only") from None
    if x.ndim != 2:
        raise DataError(f"{path}: expected a 2-D gene x dimension matrix, got shape {x.shape}; "
                        "save one row per gene")
    if x.shape[0] != len(ids):
        raise DataError(f"{path}: {x.shape[0]} matrix rows but {len(ids)} gene identifiers; "
                        "give one identifier per row, in row order")
    if x.shape[0] < 3 or x.shape[1] < 1:
        raise DataError(f"{path}: shape {x.shape}; a gene embedding needs at least 3 genes and 1 dimension")
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DataError(f"{path}: {int(bad.sum())} NaN or infinite values in {rows.size} genes "
                        f"(e.g. {', '.join(str(ids[r]) for r in rows[:3])}); drop or fix those rows")
    ids = [str(i).strip() for i in ids]
    empty = [n for n, i in enumerate(ids) if i in ("", "nan", "None")]
    if empty:
        raise DataError(f"{path}: {len(empty)} rows without a gene identifier (first at row {empty[0] + 1}); "
                        "give every row a symbol or Ensembl id")
    dup = pd.Series(ids)[pd.Series(ids).duplicated()].unique().tolist()
    if dup:
        raise DataError(f"{path}: {len(dup)} duplicate gene identifiers (e.g. {', '.join(dup[:3])}); "
                        "keep one row per gene")
    return x, ids


def _read_text(path: Path, gene_column: str | None) -> tuple[np.ndarray, list[str]]:
    sep = "," if ".csv" in path.name.lower() else "\t"
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: no table in the file; export the embedding again") from None
    except (UnicodeDecodeError, pd.errors.ParserError, EOFError, OSError) as e:
        raise DataError(f"{path}: not a readable {'CSV' if sep == ',' else 'TSV'} table "
                        f"({str(e).splitlines()[0][:120]}); check the file and its separator") from None
    if df.shape[1] < 2:
        other = "tab" if sep == "," else "comma"
        raise DataError(f"{path}: {df.shape[1]} column(s); expected a gene column and numbers "
                        f"(is it {other}-separated? name it .{'tsv' if sep == ',' else 'csv'})")
    col = gene_column if gene_column is not None else df.columns[0]
    if col not in df.columns:
        raise DataError(f"{path}: no column {col!r} (columns: {', '.join(map(str, df.columns[:8]))}); "
                        "pass --gene-column with the name of the gene column")
    ids = df[col].tolist()
    values = df.drop(columns=[col])
    num = values.apply(pd.to_numeric, errors="coerce")
    bad = num.isna() & ~values.isin(["nan", "NaN", "NA", "inf", "-inf", "Inf", "-Inf"])
    if bad.to_numpy().any():
        r, c = np.argwhere(bad.to_numpy())[0]
        raise DataError(f"{path}: text {values.iat[r, c]!r} in number column {values.columns[c]!r} "
                        f"(gene {ids[r]}); every column but the gene column must hold numbers "
                        "(pass --gene-column if the genes are in another column)")
    return num.to_numpy(np.float64), ids


def _read_gene_list(path: Path, genes: Path | str | None, what: str) -> list[str]:
    if genes is None:
        raise DataError(f"{path}: {what} holds no gene names; pass --genes FILE (one identifier per line, "
                        "in row order)")
    g = Path(genes)
    try:
        lines = g.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{g}: gene list not found; pass the file with --genes") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{g}: not UTF-8 text at byte {e.start}; save the gene list as plain text") from None
    ids = [ln.split("\t")[0].strip() for ln in lines]
    while ids and ids[-1] == "":
        ids.pop()
    if not ids:
        raise DataError(f"{g}: the gene list is empty; one identifier per line, in row order")
    return ids


def _read_npy(path: Path, genes: Path | str | None) -> tuple[np.ndarray, list[str]]:
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as e:
        from common.errors import strip_unsafe_advice
        raise DataError(f"{path}: not a plain numeric .npy array ({strip_unsafe_advice(e)}); save it with "
                        "numpy.save from a float array") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy file ({e}); save it with numpy.save") from None
    return x, _read_gene_list(path, genes, "a .npy array")


def _read_h5ad(path: Path, varm: str | None) -> tuple[np.ndarray, list[str]]:
    import anndata as ad
    try:
        a = ad.read_h5ad(path)
    except Exception as e:  # noqa: BLE001 -- h5py/anndata raise many types for a damaged file
        raise DataError(f"{path}: not a readable .h5ad file ({str(e).splitlines()[0][:160]}); "
                        "write it with anndata.write_h5ad") from None
    if varm is not None:
        if varm not in a.varm:
            raise DataError(f"{path}: no varm[{varm!r}] (varm has: {', '.join(a.varm.keys()) or 'nothing'}); "
                            "pass the key holding the gene embedding")
        return np.asarray(a.varm[varm]), list(map(str, a.var_names))
    if a.X is None or a.n_obs == 0 or a.n_vars == 0:
        hint = f"; the genes' embeddings may be in varm ({', '.join(a.varm.keys())}): pass --varm KEY" \
            if len(a.varm) else ""
        raise DataError(f"{path}: X is empty (shape {a.shape}){hint}")
    x = a.X.toarray() if hasattr(a.X, "toarray") else np.asarray(a.X)
    return x, list(map(str, a.obs_names))


def _read_pt(path: Path, key: str | None, genes: Path | str | None) -> tuple[np.ndarray, list[str]]:
    import pickle

    import torch
    from common.errors import strip_unsafe_advice
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        raise DataError(f"{path}: not a .pt file of plain tensors ({strip_unsafe_advice(e)[:200]}); save a dict "
                        "of tensors and a list of gene names with torch.save") from None
    if isinstance(obj, torch.Tensor):
        obj = {"embedding": obj}
    if not isinstance(obj, dict):
        raise DataError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors; save "
                        "{'embedding': tensor, 'genes': [names]} with torch.save")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor) and v.ndim == 2}
    if key is not None:
        if key not in obj or not isinstance(obj[key], torch.Tensor):
            raise DataError(f"{path}: no tensor {key!r} (2-D tensors: {', '.join(tensors) or 'none'}); "
                            "pass --key with one of them")
        x = obj[key]
    elif len(tensors) == 1:
        x = next(iter(tensors.values()))
    else:
        raise DataError(f"{path}: {len(tensors)} 2-D tensors ({', '.join(list(tensors)[:8]) or 'none'}); "
                        "pass --key with the gene embedding's name")
    names = next((obj[k] for k in PT_GENE_KEYS if k in obj), None)
    if names is not None and genes is None:
        if not isinstance(names, (list, tuple)):
            raise DataError(f"{path}: the gene names must be a list of strings, not {type(names).__name__}")
        ids = [str(n) for n in names]
    else:
        ids = _read_gene_list(path, genes, "the .pt dict")
    x = x.detach()
    return (x.float().numpy() if x.is_floating_point() else x.numpy()), ids    # integer/bool kept for count_like
