"""Build one TxFM Corpus from several source datasets, streaming, in two passes.

Pass 1 reads every source chunk by chunk: validates counts, maps gene ids,
and keeps only per-sample statistics (detected genes, library size,
mitochondrial counts, a row hash, a hash of the sample id) and per-gene
detection counts. The filters (see ``data.corpus.curation``) and the
vocabulary are decided from those. Pass 1 also keeps each chunk, validated and
mapped to canonical genes, with its corpus metadata, in a hidden scratch folder
beside the output (``.NAME.staging-PID-...``: about the corpus' size on disk,
deleted at the end), so every source is read once: pass 2 writes the kept
samples from those chunks through ``txfm.corpus.CorpusWriter`` (atomic: nothing
is left on error; its obs goes to disk shard by shard). Memory is bounded by the
chunk and shard sizes plus about 50 bytes a sample (the statistics); readers
that hold their metadata in memory (h5ad obs, text tables, Matrix Market files)
add theirs, TileDB-SOMA and ARCHS4 sources read it per chunk. A report is saved
inside the corpus as report.json and report.md.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm import tqdm

from data.corpus.report import render_markdown
from data.corpus.curation import CurationConfig, cell_filter, cell_threshold, dataset_kind, gene_threshold, \
    pca_consistency, phenoprint_keep, row_hashes
from common.atomic import atomic_write_text
from common.options import check_range
from common.outputs import check_output_target, stage_dir, staged_output
from data.genes.harmonise import MIN_MAPPED_FRACTION, STANDARD_COLUMNS, GeneMapping, check_gene_ids, \
    ids_with_name_fallback, map_genes, normalise_obs, parse_obs_map, relabel_columns
from data.readers import DataError, SomaOptions, SourceReader, check_counts, check_not_empty, check_sample_ids, \
    close_readers, open_sources, transpose_fix
from data.readers.soma import is_uri
from txfm.corpus import CorpusWriter, is_corpus


@dataclass(frozen=True)
class BuildConfig:
    """Everything ``build_corpus`` needs besides the sources and the output path."""

    layer: str = "auto"                  # h5ad matrix: auto (layers['counts'], else X if integer, else raw.X if integer), X, raw, or a layer name
    orientation: Literal["auto", "genes_x_samples", "samples_x_genes"] = "auto"  # text tables: which axis holds genes; auto uses gene-id patterns, then the longer axis
    allow_non_integer: bool = False      # round non-integer values instead of refusing them (fine for estimated counts such as salmon or RSEM; rounding TPM/FPKM or log values gives numbers that are not counts)
    unmapped: Literal["keep", "drop"] = "keep"  # genes the gene table cannot map (or maps ambiguously): keep under their original id, or drop; counted in the report either way
    drop_spike_ins: bool = True          # ERCC spike-ins are not genes
    genes_file: str | None = None        # fixed vocabulary (one gene per line) instead of the union
    chunk_size: int = 4096               # samples per read chunk (lowered to fit --max-memory-gb)
    shard_size: int = 8192               # samples per corpus shard (lowered to fit --max-memory-gb)
    max_memory_gb: float | None = None   # memory budget: chunk and shard sizes are lowered so their buffers fit in it
    curation: CurationConfig = field(default_factory=CurationConfig)
    obs_map: tuple[str, ...] = ()        # extra metadata renames [DATASET:]COLUMN=TARGET, e.g. hba1c_class=condition or kang2018_pbmc_stim:stim=condition; built-in: bio_rep->batch, grna_target->perturbation, Annotation/cell_line->cell_type, ...
    phenoprint: str | None = None        # perturbation curation: 'pca' (PCA consistency computed here) or a CSV with columns perturbation,p_value; cells of inconsistent perturbations are dropped (default: off)
    phenoprint_alpha: float = 0.1        # keep perturbations with consistency p < alpha (the paper's 0.1)
    control_label: str = "non-targeting"  # perturbation label of the control cells (always kept)
    overwrite: bool = False              # replace an existing corpus at the output folder
    min_mapped_fraction: float = MIN_MAPPED_FRACTION  # refuse a source when fewer of its gene ids map to the gene table (wrong id column, transposed matrix, truncated table); 0 accepts any
    keep_obs: tuple[str, ...] | None = None  # source metadata columns kept in the corpus obs under their own names, besides the standard ones; 'all' or 'none' (default: every obs column of TileDB-SOMA sources; series_id, title, source_name_ch1, characteristics_ch1, singlecellprobability of ARCHS4 files; none of other formats)
    soma_measurement: str = "RNA"        # TileDB-SOMA sources: the measurement to read
    soma_layer: str = "raw"              # TileDB-SOMA sources: the X layer of raw counts ('raw' in CELLxGENE Census; tiledbsoma.io.from_h5ad names X 'data')
    soma_filter: str | None = None       # TileDB-SOMA sources: obs value filter in SOMA syntax, e.g. "tissue_general == 'blood' and is_primary_data == True" (default: every cell)
    soma_split_by: str | None = None     # TileDB-SOMA sources: obs column whose values become the corpus datasets (default: dataset_id when obs has it, else one dataset for the experiment; 'none': one dataset)
    soma_organism: str = "homo_sapiens"  # TileDB-SOMA sources given as a Census root (the folder holding census_data): the experiment to read
    soma_config: tuple[str, ...] = ()    # TileDB-SOMA sources: TileDB config KEY=VALUE, e.g. vfs.s3.region=us-west-2 vfs.s3.no_sign_request=true for the public Census on S3
    archs4_samples: str | None = None    # ARCHS4 .h5 sources: text file of GSM sample and/or GSE series ids to keep (default: every sample)

    def soma(self) -> SomaOptions:
        """The TileDB-SOMA reading options."""
        return SomaOptions(self.soma_measurement, self.soma_layer, self.soma_filter, self.soma_split_by,
                           self.soma_organism, tuple(self.soma_config))

    def __post_init__(self) -> None:
        if self.keep_obs and len(self.keep_obs) > 1 and {"all", "none"} & set(self.keep_obs):
            raise ValueError(f"--keep-obs {' '.join(self.keep_obs)}: 'all' and 'none' stand alone")
        check_range("chunk_size", self.chunk_size, lo=1, integer=True, what="samples per read chunk")
        check_range("shard_size", self.shard_size, lo=1, integer=True, what="samples per corpus shard")
        check_range("max_memory_gb", self.max_memory_gb, lo=0, lo_open=True, none_ok=True, what="GiB")
        check_range("phenoprint_alpha", self.phenoprint_alpha, lo=0, hi=1, lo_open=True)
        check_range("min_mapped_fraction", self.min_mapped_fraction, lo=0, hi=1)


@dataclass
class SourceState:
    """Pass-1 results for one source."""

    reader: SourceReader
    mapping: GeneMapping
    obs_columns: dict                     # standard column -> the source column it comes from
    kept_columns: list                    # source metadata columns kept under their own names
    detected: np.ndarray                  # (g',) cells in which each canonical gene is > 0
    n_genes: np.ndarray                   # (n,) detected genes per sample
    total: np.ndarray                     # (n,) counts per sample
    mito: np.ndarray                      # (n,) counts in MT- genes
    duplicate: np.ndarray                 # (n,) exact duplicate of an earlier sample
    labels: pd.DataFrame | None = None    # (n,) perturbation and batch, kept only for phenoprint curation
    spill: list = field(default_factory=list)  # pass-1 chunk files (canonical-gene counts, corpus obs), in order
    rounded: int = 0
    kind: str = ""
    thresholds: dict = field(default_factory=dict)
    keep: np.ndarray | None = None
    removed: dict = field(default_factory=dict)
    phenoprint: list | None = None


# Without --max-memory-gb, chunks and shards are still sized for this budget: it leaves the usual
# single-cell chunk (4,096 cells of ~1,000 genes) alone and shrinks those of wide samples (bulk RNA-seq,
# dense matrices), whose 4,096 rows would take several GiB.
DEFAULT_MEMORY_GB = 4.0


def _budget_gb(config: BuildConfig) -> float:
    return config.max_memory_gb if config.max_memory_gb is not None else DEFAULT_MEMORY_GB


def _chunk_rows(reader: SourceReader, config: BuildConfig) -> int:
    budget = 0.15 * _budget_gb(config) * 2**30
    return int(max(16, min(config.chunk_size, budget // reader.bytes_per_row())))


def _load_table(spec: str | None):
    """The GeneTable for ``--gene-table``: "default" (cache/references), "none", or a genes.tsv path."""
    if spec in (None, "none"):
        return None
    from data.genes.table import GeneTable
    if spec == "default":
        return GeneTable.load()
    if Path(spec).is_dir():
        return GeneTable.load(spec)
    if not Path(spec).exists():
        raise DataError(f"{spec}: no such gene table; pass a genes.tsv path, a references folder, 'default' or "
                        f"'none' to --gene-table")
    from data.genes.table import MIN_TABLE_GENES
    return GeneTable.read_tsv(spec, min_genes=MIN_TABLE_GENES)


def _validated(reader: SourceReader, chunk, config: BuildConfig) -> tuple[sp.csr_matrix, int]:
    where = f"{reader.path} (samples {chunk.start}-{chunk.start + chunk.counts.shape[0] - 1})"
    return check_counts(chunk.counts, where, config.allow_non_integer, hint=reader.hint)


def _mapping(reader: SourceReader, table, config: BuildConfig, cache: dict) -> tuple[list[str], GeneMapping]:
    """(gene ids as mapped, mapping) of a reader; readers sharing one gene list (the datasets of a SOMA
    experiment) share one mapping."""
    key = id(reader.genes)
    if key not in cache:
        ids = ids_with_name_fallback(reader.genes, reader.gene_names, table)
        cache[key] = (ids, map_genes(ids, table, config.unmapped, config.drop_spike_ins))
    return cache[key]


def _kept_columns(reader: SourceReader, config: BuildConfig, chosen: dict) -> list[str]:
    """Source metadata columns kept under their own names (--keep-obs, else the format's default)."""
    columns = reader.metadata_columns()
    spec = tuple(config.keep_obs if config.keep_obs is not None else reader.default_keep_obs)
    if spec in (("none",), ()):
        return []
    wanted = columns if spec == ("all",) else [c for c in spec if c in columns]
    taken = set(STANDARD_COLUMNS) | set(chosen) | {"sample_id", "dataset"}
    return [c for c in wanted if c not in taken]


def _metadata(reader: SourceReader, obs: pd.DataFrame, rules, kept: list[str]) -> pd.DataFrame:
    """The corpus obs of some samples: standard columns, then the kept source columns as strings."""
    out, _ = normalise_obs(obs, reader.name, rules)
    for c in kept:
        out[c] = obs[c].astype(object).where(obs[c].notna(), "").astype(str).to_numpy()
    return out


def _check_unique_ids(reader: SourceReader, hashes: np.ndarray) -> None:
    """Refuse duplicate sample ids, found from their 64-bit hashes (the ids themselves only on that path)."""
    if pd.Series(hashes).duplicated().any():
        check_sample_ids(reader.sample_ids_head(reader.n_samples), str(reader.path))


def _spill(folder: Path, index: int, y: sp.csr_matrix, obs: pd.DataFrame) -> Path:
    """Keep one pass-1 chunk on disk: canonical-gene counts (CSR arrays as .npy) and its corpus obs (.parquet)."""
    if y.nnz and y.data.max() > np.iinfo(np.int32).max:
        raise DataError(f"{folder}: a count exceeds int32 ({y.data.max()}); a corpus stores int32 counts")
    stem = folder / f"{index:07d}"
    for part, a in (("indptr", y.indptr), ("indices", y.indices), ("data", y.data)):
        np.save(f"{stem}.{part}.npy", a.astype(np.int32 if part != "indptr" else np.int64, copy=False))
    obs.to_parquet(f"{stem}.parquet", index=False)
    return stem


def _unspill(stem: Path, n_genes: int) -> tuple[sp.csr_matrix, pd.DataFrame]:
    indptr, indices, data = (np.load(f"{stem}.{part}.npy") for part in ("indptr", "indices", "data"))
    return sp.csr_matrix((data, indices, indptr), shape=(indptr.size - 1, n_genes)), pd.read_parquet(f"{stem}.parquet")


def _pass_one(reader: SourceReader, table, config: BuildConfig, rules, bar: tqdm, mappings: dict, scratch: Path,
              log=print) -> SourceState:
    check_not_empty(reader.n_samples, len(reader.genes), str(reader.path))
    if hasattr(reader, "obs"):      # metadata in memory: refuse duplicate ids before reading counts
        check_sample_ids(pd.Index(reader.obs.index), str(reader.path))
    ids, mapping = _mapping(reader, table, config, mappings)
    check_gene_ids(ids, reader.sample_ids_head(), table, str(reader.path), mapping.summary,
                   config.min_mapped_fraction, transpose_fix(reader), log=log)
    if not mapping.symbols:
        raise DataError(f"{reader.path}: none of its {len(reader.genes)} gene ids is kept after mapping "
                        f"({mapping.summary['unmapped']} unmapped); check the ids or pass --unmapped keep")
    _, chosen = normalise_obs(pd.DataFrame(columns=reader.metadata_columns()), reader.name, rules)
    kept = _kept_columns(reader, config, chosen)
    is_mito = np.array([s.upper().startswith("MT-") for s in mapping.symbols])
    g = len(mapping.symbols)
    detected = np.zeros(g, dtype=np.int64)
    n_genes, total, mito, hashes, id_hashes, labels = [], [], [], [], [], []
    want_labels = bool(config.phenoprint) and "perturbation" in chosen
    rounded = 0
    folder = Path(tempfile.mkdtemp(prefix="source-", dir=scratch))
    spill = []
    for chunk in reader.iter_chunks(_chunk_rows(reader, config)):
        x, r = _validated(reader, chunk, config)
        rounded += r
        y = mapping.apply(x)
        detected += np.bincount(y.indices, minlength=g)
        n_genes.append(np.diff(y.indptr))
        total.append(np.asarray(y.sum(axis=1)).ravel())
        mito.append(np.asarray(y[:, is_mito].sum(axis=1)).ravel() if is_mito.any() else np.zeros(y.shape[0]))
        hashes.append(row_hashes(y))
        id_hashes.append(pd.util.hash_array(np.asarray(chunk.obs.index, dtype=object)))
        meta = _metadata(reader, chunk.obs, rules, kept)
        spill.append(_spill(folder, len(spill), y, meta))
        if want_labels:
            labels.append(meta[[c for c in ("perturbation", "batch") if c in meta]])
        bar.update(y.shape[0])
    _check_unique_ids(reader, np.concatenate(id_hashes))
    h = np.concatenate(hashes)
    if not any(t.any() for t in total):
        raise DataError(f"{reader.path}: every count is zero ({reader.n_samples} samples x {len(reader.genes)} "
                        f"genes); the matrix holds no data. Export the raw counts again"
                        + (f" ({reader.hint})" if reader.hint else ""))
    return SourceState(reader, mapping, chosen, kept, detected.astype(np.int32), np.concatenate(n_genes),
                       np.concatenate(total), np.concatenate(mito), pd.Series(h).duplicated().to_numpy(),
                       pd.concat(labels, ignore_index=True) if want_labels else None, spill, rounded)


def _curate(st: SourceState, config: BuildConfig) -> None:
    n = st.reader.n_samples
    st.kind = dataset_kind(st.reader.name, n, float(np.median(st.total)), config.curation, hint=st.reader.kind_hint)
    min_cells = gene_threshold(n, st.kind, config.curation)
    min_genes = cell_threshold(int((st.detected > 0).sum()), st.kind, config.curation)
    st.thresholds = {"min_cells_per_gene": min_cells, "min_genes_per_cell": min_genes}
    st.keep, st.removed = cell_filter(st.n_genes, st.total, st.mito, st.duplicate, min_genes, config.curation)


def _phenoprint(st: SourceState, config: BuildConfig) -> None:
    labels = st.labels["perturbation"].to_numpy()
    if not (labels != "").any():
        return
    idx = np.flatnonzero(st.keep)
    if config.phenoprint == "pca":
        parts, start = [], 0
        for stem in st.spill:
            x, _ = _unspill(stem, len(st.mapping.symbols))
            parts.append(x[idx[(idx >= start) & (idx < start + x.shape[0])] - start])
            start += x.shape[0]
        batch = st.labels["batch"].to_numpy()[idx] if "batch" in st.labels else None
        scores = pca_consistency(sp.vstack(parts, format="csr"), labels[idx], control=config.control_label,
                                 batch=batch)
    else:
        scores = pd.read_csv(config.phenoprint)
    keep, scored = phenoprint_keep(labels[idx], scores, config.phenoprint_alpha, control=config.control_label)
    dropped = int((~keep).sum())
    if dropped:
        st.removed[f"perturbation not consistent (phenoprint p >= {config.phenoprint_alpha})"] = dropped
    st.keep[idx[~keep]] = False
    st.phenoprint = scored.to_dict(orient="records")


def read_genes_file(path: str | os.PathLike) -> list[str]:
    """The gene names of a --genes file (one per line, blank lines skipped); refused (DataError naming
    the file and the fix) when missing, not UTF-8 text, empty, or holding a name twice."""
    p = Path(path)
    drop = "or drop --genes to use the union of the sources' genes"
    if not p.is_file():
        raise DataError(f"{p}: --genes file not found; pass a text file with one gene per line, {drop}")
    try:
        lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: --genes file is not UTF-8 text ({e.reason} at byte {e.start}); pass a text file "
                        f"with one gene per line, {drop}") from e
    if not lines:
        raise DataError(f"{p}: --genes file lists no gene (it is empty); write one gene symbol or Ensembl id per "
                        f"line, {drop}")
    dup = pd.Index(lines)[pd.Index(lines).duplicated()].unique().tolist()
    if dup:
        raise DataError(f"{p}: --genes lists {len(dup)} gene(s) more than once (e.g. {dup[0]!r}); list each gene "
                        "once")
    return lines


def _vocabulary(states: list[SourceState], config: BuildConfig, table) -> tuple[list[str], list[str], int]:
    ens: dict[str, str] = {}
    for st in states:
        for s, e in zip(st.mapping.symbols, st.mapping.ensembl):
            if e and not ens.get(s):
                ens[s] = e
    all_genes = {s for st in states for s in st.mapping.symbols}
    if config.genes_file:
        lines = read_genes_file(config.genes_file)
        m = map_genes(lines, table, unmapped="keep", drop_spike_ins=False)
        genes = m.symbols
        if not genes or not set(genes) & all_genes:
            example = sorted(all_genes)[:3]
            raise DataError(f"{config.genes_file}: none of the {len(lines)} gene(s) of --genes (e.g. {lines[0]!r}) is "
                            f"among the sources' genes (e.g. {', '.join(map(repr, example))}); list genes the "
                            "sources measure, with the same kind of id, or drop --genes")
        for s, e in zip(m.symbols, m.ensembl):
            if e and not ens.get(s):
                ens[s] = e
        return genes, [ens.get(g, "") for g in genes], len(all_genes - set(genes))
    passing = set()
    for st in states:
        ok = st.detected >= st.thresholds["min_cells_per_gene"]
        passing.update(np.asarray(st.mapping.symbols, dtype=object)[ok].tolist())
    genes = sorted(passing)
    return genes, [ens.get(g, "") for g in genes], len(all_genes - passing)


def _shard_rows(states: list[SourceState], config: BuildConfig) -> int:
    """Rows per shard: --shard-size, lowered so the writer's buffer fits the budget. With --max-memory-gb the
    widest dataset's mean row sets it; without, the corpus' mean row (so mixed corpora of mostly single cells
    keep --shard-size, and a corpus of bulk samples gets shards of a few thousand)."""
    if config.max_memory_gb is None:
        nnz = sum(float(st.n_genes.sum()) for st in states) / max(sum(st.n_genes.size for st in states), 1)
    else:
        nnz = max(float(np.mean(st.n_genes)) for st in states)
    return int(max(64, min(config.shard_size, 0.2 * _budget_gb(config) * 2**30 // (max(nnz, 1.0) * 8 * 4))))


def _measured(st: SourceState) -> np.ndarray:
    """Bool (g',) over the source's canonical genes: the genes its dataset measured.

    All of them, unless the reader knows better: a record of measured genes (Census' presence matrix;
    a canonical gene is measured when one of its source ids is), or none at all (a SOMA dataset without
    one: the genes its cells detect). A detected gene always counts as measured.
    """
    r = st.reader
    if r.measured is None and not r.measured_from_detection:
        return np.ones(len(st.mapping.symbols), dtype=bool)
    recorded = np.zeros(len(st.mapping.symbols), dtype=bool)
    if r.measured is not None:
        recorded = np.asarray(st.mapping.aggregate.T @ np.asarray(r.measured, dtype=np.int64)).ravel() > 0
    return recorded | (st.detected > 0)


def _write(states, genes, gene_ids, out: Path, config: BuildConfig, bar: tqdm) -> dict:
    col = {g: i for i, g in enumerate(genes)}
    stats = {}
    with CorpusWriter(out, genes, gene_ids, shard_size=_shard_rows(states, config), overwrite=config.overwrite) as w:
        for st in states:
            target = np.array([col.get(s, -1) for s in st.mapping.symbols])
            measured = np.flatnonzero((target >= 0) & _measured(st))
            if not st.keep.any() or measured.size == 0:
                stats[st.reader.name] = None
                continue
            d = w.add_dataset(st.reader.name, target[measured], source=str(st.reader.path),
                              notes=f"{st.reader.kind}; {st.kind}")
            to_vocabulary = np.full(len(st.mapping.symbols), -1, dtype=np.int64)
            to_vocabulary[measured] = target[measured]
            libs, nnz, start = [], 0, 0
            for stem in st.spill:
                x, obs = _unspill(stem, len(st.mapping.symbols))
                rows = np.flatnonzero(st.keep[start:start + x.shape[0]])
                start += x.shape[0]
                y = relabel_columns(x[rows], to_vocabulary, len(genes))
                w.add_samples(d, y, obs.iloc[rows])
                libs.append(np.asarray(y.sum(axis=1)).ravel())
                nnz += y.nnz
                bar.update(x.shape[0])
            lib = np.concatenate(libs)
            stats[st.reader.name] = {"n_measured": int(measured.size), "nnz": int(nnz),
                                     "sparsity": 1 - nnz / max(lib.size * measured.size, 1),
                                     "library": {q: float(v) for q, v in zip(
                                         ("min", "q25", "median", "q75", "max"),
                                         np.quantile(lib, [0, .25, .5, .75, 1]))} | {"mean": float(lib.mean())}}
    return stats


def build_corpus(sources: list[str | os.PathLike], out: str | os.PathLike, config: BuildConfig = BuildConfig(),
                 gene_table="default", log=print) -> dict:
    """Build a corpus at ``out`` from files/folders ``sources``; returns the report dict (also saved).

    ``gene_table``: "default" (``GeneTable.load()`` from cache/references),
    "none" (ids kept as given), a path to genes.tsv or a references folder, or
    a ``GeneTable`` object. Raises ``DataError`` (bad input) or
    ``txfm.corpus.CorpusError``; on any error no output directory is left.
    """
    t0 = time.time()
    out = Path(out)
    local = [Path(s) for s in sources if not is_uri(s)]
    # Refused before any reading: a folder that is not a corpus (never replaced), a corpus without
    # --overwrite, an --out holding one of the sources, an unwritable parent.
    check_output_target(out, "corpus", is_corpus, config.overwrite, protect=local)
    if config.genes_file:
        read_genes_file(config.genes_file)          # an empty or unreadable --genes file: refused before reading
    with staged_output(out, "corpus", is_corpus, config.overwrite, protect=local) as work:
        return _build_into(work, out, sources, config, gene_table, log, t0)


def _build_into(work: Path, out: Path, sources, config: BuildConfig, gene_table, log, t0: float) -> dict:
    """build_corpus's body: the corpus and its reports are written into `work` (renamed onto `out` after)."""
    rules = parse_obs_map(list(config.obs_map))
    table = _load_table(gene_table) if gene_table is None or isinstance(gene_table, (str, os.PathLike)) \
        else gene_table
    readers = open_sources([s if is_uri(s) else Path(s) for s in sources], layer=config.layer,
                           orientation=config.orientation, soma=config.soma(), archs4_samples=config.archs4_samples)
    scratch = stage_dir(out)        # pass-1 chunks; a hidden staging sibling, so a killed run's is recognised
    scratch.mkdir()
    try:
        return _build_from(readers, work, out, config, table, gene_table, rules, log, t0, scratch)
    finally:
        close_readers(readers)
        shutil.rmtree(scratch, ignore_errors=True)


def _build_from(readers, work: Path, out: Path, config: BuildConfig, table, gene_table, rules, log, t0: float,
                scratch: Path) -> dict:
    if config.keep_obs and tuple(config.keep_obs) not in (("all",), ("none",)):
        known = sorted({c for r in readers for c in r.metadata_columns()})
        missing = [c for c in config.keep_obs if c not in known]
        if missing:
            raise DataError(f"--keep-obs {' '.join(missing)}: not a metadata column of any source; the sources have "
                            f"{', '.join(known[:30]) or 'no metadata columns'}")
    total = sum(r.n_samples for r in readers)
    mappings: dict = {}
    with tqdm(total=total, desc="pass 1/2: statistics", unit="samples", disable=None) as bar:
        states = [_pass_one(r, table, config, rules, bar, mappings, scratch, log=log) for r in readers]
    t1 = time.time()
    for st in states:
        _curate(st, config)
        if config.phenoprint and "perturbation" in st.obs_columns:
            _phenoprint(st, config)
    genes, gene_ids, n_dropped = _vocabulary(states, config, table)
    where = ", ".join(str(r.path) for r in readers[:3]) + (", ..." if len(readers) > 3 else "")
    if not genes:
        raise DataError(f"{where}: no gene passes the gene filter in any source; lower --min-cells")
    if not any(st.keep.any() for st in states):
        raise DataError(f"{where}: the filters removed every sample; lower --min-genes / --min-counts")
    with tqdm(total=total, desc="pass 2/2: writing", unit="samples", disable=None) as bar:
        stats = _write(states, genes, gene_ids, work, replace(config, overwrite=True), bar)
    report = _report(states, stats, genes, n_dropped, out, config, gene_table, t0, t1)
    atomic_write_text(work / "report.json", json.dumps(report, indent=1, default=str))
    atomic_write_text(work / "report.md", render_markdown(report))
    log(render_markdown(report, brief=True))
    return report


def _report(states, stats, genes, n_dropped, out, config, gene_table, t0, t1) -> dict:
    sources = []
    for st in states:
        s = stats.get(st.reader.name)
        sources.append({
            "dataset": st.reader.name, "path": str(st.reader.path), "format": st.reader.kind,
            "kind": st.kind, "samples_in": int(st.reader.n_samples), "samples_kept": int(st.keep.sum()),
            "removed": st.removed, "thresholds": st.thresholds, "gene_mapping": st.mapping.summary,
            "genes_detected": int((st.detected > 0).sum()),
            "genes_passing_filter": int((st.detected >= st.thresholds["min_cells_per_gene"]).sum()),
            "genes_measured": s["n_measured"] if s else 0,
            "obs_columns": st.obs_columns, "obs_kept": st.kept_columns, "values_rounded": st.rounded,
            "sparsity": s["sparsity"] if s else None, "library_size": s["library"] if s else None,
            "skipped": None if s else "no sample or no gene left after filtering",
            "phenoprint": st.phenoprint,
        })
    cfg = asdict(config)
    return {
        "corpus": str(out), "n_samples": int(sum(x["samples_kept"] for x in sources if not x["skipped"])),
        "n_genes": len(genes), "n_datasets": sum(1 for x in sources if not x["skipped"]),
        "vocabulary": {"source": config.genes_file or "union of genes passing the gene filter",
                       "genes_not_in_vocabulary": int(n_dropped)},
        "gene_table": gene_table if isinstance(gene_table, str) or gene_table is None else type(gene_table).__name__,
        "config": cfg, "sources": sources,
        "seconds": {"pass1": round(t1 - t0, 2), "total": round(time.time() - t0, 2)},
        "throughput_samples_per_s": round(sum(x["samples_in"] for x in sources) / max(time.time() - t0, 1e-9), 1),
    }
