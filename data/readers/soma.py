"""TileDB-SOMA experiments (CZ CELLxGENE Census and any ``tiledbsoma`` store), read with tiledbsoma's query API.

A source is a local folder or a URI that ``tiledbsoma.open`` accepts (``s3://...``, ``tiledb://...``):
an Experiment, or a Census root (a Collection holding ``census_data/<organism>``, whose
``census_info/datasets`` table and ``feature_dataset_presence_matrix`` then say which genes each
dataset measured). Cells are chosen with an ``obs`` value filter in SOMA's syntax
(``tissue_general == 'blood' and is_primary_data == True``), grouped into one corpus dataset per
value of an ``obs`` column (``dataset_id`` by default; the cells found once with
``Experiment.axis_query``), and read in chunks of rows: one ``obs`` and one ``X`` read per chunk, with the
chunk's ``soma_joinid`` values as coordinates.

Gene ids are the ``var`` feature ids (Ensembl ids in Census; ``var_id`` in experiments written by
``tiledbsoma.io.from_h5ad``), with the feature names as a second choice for ids the gene table does not
know (``gene_names``). Memory: the joinids of the chosen cells (8 bytes a cell) plus one chunk.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp

from data.readers.base import Chunk, SourceReader, as_str_index, dataset_name
from data.readers.validate import DataError

# var columns holding gene ids / names, in order of preference (Census, tiledbsoma.io defaults)
ID_COLUMNS = ("feature_id", "var_id", "gene_ids", "gene_id", "ensembl_id")
NAME_COLUMNS = ("feature_name", "gene_symbols", "gene_symbol", "symbol", "gene_name")
# obs columns holding a cell's own id (tiledbsoma.io writes obs_names as obs_id); else soma_joinid
SAMPLE_ID_COLUMNS = ("obs_id", "obs_names", "cell_id", "barcode")
SPLIT_DEFAULT = "dataset_id"
_MARKERS = ("__tiledb_group.tdb", "__group", "__schema")


@dataclass(frozen=True)
class SomaOptions:
    """How to read a SOMA source (the build-corpus options --soma-*)."""

    measurement: str = "RNA"
    layer: str = "raw"
    value_filter: str | None = None
    split_by: str | None = None       # None: dataset_id when obs has it, else one dataset; "none": one dataset
    organism: str = "homo_sapiens"    # the experiment of a Census root
    config: tuple[str, ...] = ()      # TileDB config KEY=VALUE (e.g. vfs.s3.region=us-west-2)


def is_uri(source: str | Path) -> bool:
    """A remote URI (``s3://``, ``gs://``, ``tiledb://``, ``http(s)://``); local paths and ``file://`` are not."""
    s = str(source)
    return "://" in s and not s.startswith("file://")


def looks_like_soma(source: str | Path) -> bool:
    """A remote URI, or a local folder with TileDB group/array markers (a SOMA object), checked without tiledbsoma."""
    if is_uri(source):
        return True
    p = Path(str(source).removeprefix("file://"))
    return p.is_dir() and any((p / m).exists() for m in _MARKERS)


def _short(e: BaseException) -> str:
    return str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__


def _tiledbsoma():
    try:
        import tiledbsoma
    except ImportError as e:
        raise DataError(f"reading TileDB-SOMA sources needs the tiledbsoma package ({e}); install the pinned "
                        f"requirements: pip install -r requirements.txt") from e
    return tiledbsoma


def _context(config: tuple[str, ...]):
    tiledbsoma = _tiledbsoma()
    if not config:
        return None
    cfg = {}
    for item in config:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DataError(f"--soma-config {item!r}: expected KEY=VALUE, e.g. vfs.s3.region=us-west-2")
        cfg[key.strip()] = value.strip()
    return tiledbsoma.SOMATileDBContext(tiledb_config=cfg)


def _open(uri: str, options: SomaOptions):
    """(experiment, census root or None) for ``uri``, or a DataError naming the source and the fix."""
    tiledbsoma = _tiledbsoma()
    try:
        obj = tiledbsoma.open(uri, context=_context(options.config))
    except tiledbsoma.DoesNotExistError as e:
        raise DataError(f"{uri}: not a TileDB-SOMA experiment (no SOMA object there: {_short(e)}); point --source at "
                        f"the experiment folder, the one holding obs/ and ms/ (for a Census copy, its soma/ folder)") from e
    except Exception as e:   # network, permissions, a damaged store: tiledbsoma raises several types
        raise DataError(f"{uri}: cannot open as TileDB-SOMA ({_short(e)}); check the path or URI, the network and "
                        f"--soma-config (the public Census needs vfs.s3.region=us-west-2 "
                        f"vfs.s3.no_sign_request=true)") from e
    if obj.soma_type == "SOMAExperiment":
        return obj, None
    if obj.soma_type == "SOMACollection" and "census_data" in obj:
        data = obj["census_data"]
        if options.organism not in data:
            names = sorted(data.keys())
            obj.close()
            raise DataError(f"{uri}: this Census has no organism {options.organism!r}; it has {', '.join(names)}; "
                            f"pass --soma-organism NAME")
        return data[options.organism], obj
    kind = obj.soma_type
    obj.close()
    up = {"SOMAMeasurement": " (this is a measurement: the experiment is two folders up)",
          "SOMADataFrame": " (this is a dataframe such as obs or var: the experiment is its parent)",
          "SOMASparseNDArray": " (this is an X layer: the experiment is four folders up)"}.get(kind, "")
    raise DataError(f"{uri}: a SOMA {kind.removeprefix('SOMA')}, not an Experiment{up}; point --source at the "
                    f"experiment, the object holding obs and ms")


def _column(names: list[str], prefer: tuple[str, ...]) -> str | None:
    return next((c for c in prefer if c in names), None)


def _filter_help(exp, value_filter: str, obs_columns: list[str]) -> str:
    """Values of the obs columns a filter names (first rows only), to show what the filter could match."""
    named = [c for c in dict.fromkeys(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", value_filter)) if c in obs_columns]
    parts = []
    for c in named[:3]:
        try:
            first = next(iter(exp.obs.read(column_names=[c])))
            vals = pd.Series(first.column(c).to_pandas()).astype(str).unique()[:8]
            parts.append(f"{c} has e.g. {', '.join(repr(v) for v in vals)}")
        except Exception:       # the hint is optional; the message stands without it
            continue
    return "; ".join(parts) if parts else f"obs columns: {', '.join(obs_columns)}"


class _SomaSource:
    """One opened experiment shared by the readers of its datasets."""

    def __init__(self, uri: str, options: SomaOptions):
        self.uri = uri
        self.options = options
        self.exp, self.census = _open(uri, options)
        try:
            self._describe()
        except BaseException:
            self.close()
            raise

    def _describe(self) -> None:
        o, uri = self.options, self.uri
        ms = self.exp.ms
        if o.measurement not in ms:
            raise DataError(f"{uri}: no measurement {o.measurement!r}; this experiment has "
                            f"{', '.join(sorted(ms.keys())) or 'none'}; pass --soma-measurement NAME")
        self.ms = ms[o.measurement]
        layers = sorted(self.ms.X.keys()) if "X" in self.ms else []
        if o.layer not in layers:
            raise DataError(f"{uri}: measurement {o.measurement!r} has no X layer {o.layer!r}; it has "
                            f"{', '.join(layers) or 'none'}; pass --soma-layer NAME (the raw counts: 'raw' in "
                            f"Census, 'data' in experiments written by tiledbsoma.io.from_h5ad)")
        self.X = self.ms.X[o.layer]
        var_cols = self.ms.var.schema.names
        id_col = _column(var_cols, ID_COLUMNS)
        name_col = _column(var_cols, NAME_COLUMNS)
        if id_col is None and name_col is None:
            raise DataError(f"{uri}: var of {o.measurement!r} has no gene id column (looked for "
                            f"{', '.join(ID_COLUMNS + NAME_COLUMNS)}; it has {', '.join(var_cols)})")
        cols = ["soma_joinid"] + [c for c in (id_col, name_col) if c]
        var = self.ms.var.read(column_names=cols).concat().to_pandas().sort_values("soma_joinid")
        self.var_joinids = var["soma_joinid"].to_numpy(dtype=np.int64)
        self.genes = np.asarray(as_str_index(var[id_col or name_col]))
        self.gene_names = np.asarray(as_str_index(var[name_col])) if id_col and name_col else None
        self._var_pos = np.full(int(self.var_joinids.max()) + 1 if self.var_joinids.size else 0, -1, dtype=np.int64)
        self._var_pos[self.var_joinids] = np.arange(self.var_joinids.size)
        self.obs_columns = list(self.exp.obs.schema.names)
        self.id_column = _column(self.obs_columns, SAMPLE_ID_COLUMNS) or "soma_joinid"
        self.nnz_per_row: float | None = None   # measured on the first chunk read (SparseNDArray.nnz scans the array)

    def select(self) -> dict[str, np.ndarray]:
        """{split value (or "" for one dataset): sorted joinids of its cells matching the filter}."""
        import tiledbsoma
        o, uri = self.options, self.uri
        split = o.split_by
        if split == "none":
            split = None
        elif split is None:
            split = SPLIT_DEFAULT if SPLIT_DEFAULT in self.obs_columns else None
        elif split not in self.obs_columns:
            raise DataError(f"{uri}: --soma-split-by {split!r} is not an obs column; obs has "
                            f"{', '.join(self.obs_columns)} (or pass 'none' for one dataset)")
        self.split_by = split
        cols = ["soma_joinid"] + ([split] if split else [])
        groups: dict[str, list[np.ndarray]] = {}
        try:
            with self.exp.axis_query(o.measurement,
                                     obs_query=tiledbsoma.AxisQuery(value_filter=o.value_filter)) as q:
                for t in q.obs(column_names=cols):
                    ids = t.column("soma_joinid").to_numpy()
                    if split is None:
                        groups.setdefault("", []).append(ids)
                        continue
                    keys = pd.Series(t.column(split).to_pandas()).astype(object).where(lambda s: s.notna(), "")
                    for key, pos in pd.Series(np.arange(len(ids))).groupby(keys.astype(str).to_numpy()).indices.items():
                        groups.setdefault(str(key), []).append(ids[pos])
        except DataError:
            raise
        except Exception as e:
            if o.value_filter:
                raise DataError(f"{uri}: --soma-filter {o.value_filter!r} cannot be applied ({_short(e)}); the syntax "
                                f"is column == 'value', column in ['a', 'b'], combined with and/or; obs columns: "
                                f"{', '.join(self.obs_columns)}") from e
            raise DataError(f"{uri}: cannot read obs ({_short(e)}); is the experiment complete?") from e
        out = {k: np.sort(np.concatenate(v)) for k, v in sorted(groups.items())}
        out = {k: v for k, v in out.items() if v.size}
        if not out:
            n = len(self.exp.obs)
            if o.value_filter:
                raise DataError(f"{uri}: --soma-filter {o.value_filter!r} matches none of the {n:,} cells; "
                                f"{_filter_help(self.exp, o.value_filter, self.obs_columns)}. Check the column "
                                f"names and values (strings in quotes, booleans as True/False)")
            raise DataError(f"{uri}: obs holds no cell; the experiment is empty")
        return out

    def presence(self, split_value: str) -> np.ndarray | None:
        """Bool (g,) genes a Census dataset measured (feature_dataset_presence_matrix), or None when unknown."""
        if self.census is None or self.split_by != "dataset_id" or "feature_dataset_presence_matrix" not in self.ms:
            return None
        if not hasattr(self, "_dataset_rows"):     # census_info/datasets: dataset_id -> row of the presence matrix
            self._dataset_rows = {}
            if "census_info" in self.census and "datasets" in self.census["census_info"]:
                t = self.census["census_info"]["datasets"].read(column_names=["soma_joinid", "dataset_id"]).concat()
                self._dataset_rows = dict(zip(t.column("dataset_id").to_pylist(), t.column("soma_joinid").to_pylist()))
        row = self._dataset_rows.get(split_value)
        if row is None:
            return None
        m = self.ms["feature_dataset_presence_matrix"].read(coords=([row],)).tables().concat()
        mask = np.zeros(self.genes.size, dtype=bool)
        cols = self._var_pos[m.column("soma_dim_1").to_numpy()]
        vals = m.column("soma_data").to_numpy().astype(bool)
        mask[cols[vals & (cols >= 0)]] = True
        return mask

    def read(self, joinids: np.ndarray) -> tuple[sp.csr_matrix, pd.DataFrame]:
        """Counts (CSR, rows in ``joinids`` order, columns in var order) and obs of the given (sorted) cells."""
        # Point reads with the joinids as a NumPy array (tiledbsoma copies them). An axis query hands its
        # resolved joinids to the X read as an Arrow array instead, and one full test run crashed inside
        # that hand-over (SIGSEGV in ManagedQuery.set_coord); the cells are known here, so no query is needed.
        joinids = np.ascontiguousarray(joinids, dtype=np.int64)
        obs = self.exp.obs.read(coords=(joinids,)).concat().to_pandas()
        t = self.X.read(coords=(joinids,)).tables().concat()
        d0 = t.column("soma_dim_0").to_numpy()
        if joinids.size and joinids[-1] - joinids[0] < 8 * joinids.size + 4096:    # a lookup table over the span
            lookup = np.zeros(int(joinids[-1] - joinids[0]) + 1, dtype=np.int64)
            lookup[joinids - joinids[0]] = np.arange(joinids.size)
            rows = lookup[d0 - joinids[0]]
        else:
            rows = np.searchsorted(joinids, d0)
        d1 = t.column("soma_dim_1").to_numpy()
        if d1.size and d1.max() >= self._var_pos.size:
            cols = np.full(1, -1)
        else:
            cols = self._var_pos[d1] if d1.size else d1
        if d1.size and (cols < 0).any():
            raise DataError(f"{self.uri}: X layer {self.options.layer!r} has columns that are not in var; the "
                            f"experiment is inconsistent")
        x = sp.csr_matrix((t.column("soma_data").to_numpy(), (rows, cols)), shape=(joinids.size, self.genes.size))
        if self.nnz_per_row is None and joinids.size:
            self.nnz_per_row = x.nnz / joinids.size
        obs = obs.sort_values("soma_joinid", kind="stable").reset_index(drop=True)
        if not np.array_equal(obs["soma_joinid"].to_numpy(), joinids):
            raise DataError(f"{self.uri}: obs rows for {joinids.size} requested cells came back as {len(obs)}; "
                            f"the experiment is inconsistent")
        obs.index = as_str_index(obs[self.id_column].to_numpy() if self.id_column != "soma_joinid"
                                 else obs["soma_joinid"].to_numpy())
        if self.id_column != "soma_joinid":
            obs = obs.drop(columns=[self.id_column])
        return x, obs

    def close(self) -> None:
        for o in (self.exp, self.census):
            try:
                if o is not None:
                    o.close()
            except Exception:
                pass


class SomaReader(SourceReader):
    """The cells of one dataset (one value of the split column) of a SOMA experiment, matching the filter."""

    kind_hint = "single-cell"
    default_keep_obs = ("all",)

    def __init__(self, source: _SomaSource, name: str, joinids: np.ndarray, split_value: str):
        self.source = source
        self.path = source.uri
        self.name = name
        self.split_value = split_value
        self._joinids = joinids
        self.genes = source.genes
        self.gene_names = source.gene_names
        self.n_samples = int(joinids.size)
        # obs columns besides the id column; soma_joinid always (it traces a sample back to the store)
        self._obs_columns = [c for c in source.obs_columns if c != source.id_column or c == "soma_joinid"]
        o = source.options
        where = f"{o.measurement}/X/{o.layer}"
        if source.split_by:
            where += f", {source.split_by} == {split_value!r}"
        if o.value_filter:
            where += f", filter {o.value_filter!r}"
        self.kind = f"SOMA {where}"
        self.measured = source.presence(split_value) if source.split_by else None
        # split datasets without a presence matrix: a gene counts as measured when one of its cells detects it
        self.measured_from_detection = bool(source.split_by) and self.measured is None
        self.hint = f"choose another X layer with --soma-layer (this measurement has: " \
                    f"{', '.join(sorted(source.ms.X.keys()))})"

    @property
    def nnz(self) -> int | None:
        """Estimated from the chunks read so far (a probe of 256 cells before the first one)."""
        if self.source.nnz_per_row is None:
            self.source.read(self._joinids[:256])
        return int(self.source.nnz_per_row * self.n_samples)

    def metadata_columns(self) -> list[str]:
        return list(self._obs_columns)

    def sample_ids_head(self, k: int = 2000) -> pd.Index:
        ids = self._joinids[:k]
        column = self.source.id_column
        if column == "soma_joinid":
            return as_str_index(ids)
        t = self.source.exp.obs.read(coords=(ids,), column_names=["soma_joinid", column]).concat().to_pandas()
        return as_str_index(t.sort_values("soma_joinid")[column].to_numpy())

    def iter_chunks(self, chunk_size: int) -> Iterator[Chunk]:
        for start in range(0, self.n_samples, chunk_size):
            x, obs = self.source.read(self._joinids[start:start + chunk_size])
            yield Chunk(x, obs, start)


def open_soma(uri: str | Path, options: SomaOptions = SomaOptions()) -> list[SomaReader]:
    """Readers for the datasets of one SOMA source (one per split value with matching cells)."""
    uri = str(uri)
    source = _SomaSource(uri, options)
    try:
        groups = source.select()
    except BaseException:
        source.close()
        raise
    base = dataset_name(Path(uri.rstrip("/"))) if source.census is None else options.organism
    if base == "soma":      # a Census copy's folder is called soma/: name it after its parent (the release)
        base = dataset_name(Path(uri.rstrip("/")).parent) or base
    readers = []
    for value, ids in groups.items():
        name = base if source.split_by is None else re.sub(r"[^A-Za-z0-9_.\-]+", "_", value) or f"{base}_unlabelled"
        readers.append(SomaReader(source, name, ids, value))
    return readers
