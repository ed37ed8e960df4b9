"""Delimited text count tables (CSV/TSV, optionally gzipped), either orientation.

Orientation is given (``genes_x_samples`` / ``samples_x_genes``) or detected:
the axis whose labels look like gene ids (Ensembl ids such as ``ENSG...``)
is the gene axis; otherwise the longer axis is taken as genes (tables usually
list more genes than samples) and the report says so. A sibling metadata file
(``NAME.metadata.csv[.gz]`` next to ``NAME.count.csv.gz`` or ``NAME.csv``) is
joined into ``obs`` by sample id.
"""
from __future__ import annotations

import csv
import gzip
import re
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import scipy.sparse as sp

from data.readers.base import Chunk, SourceReader, as_str_index, dataset_name
from data.readers.validate import DataError

_GENE_ID = re.compile(r"^(ENS[A-Z]*G\d{6,}(\.\d+)?|ERCC-\d+)$")
ORIENTATIONS = ("auto", "genes_x_samples", "samples_x_genes")
_ROWS_PER_READ = 2000


def delimiter_of(path: Path) -> str:
    """Tab for .tsv/.txt/.tab files, comma otherwise (the suffix before any .gz)."""
    name = path.name.lower().removesuffix(".gz")
    return "\t" if name.endswith((".tsv", ".txt", ".tab")) else ","


def metadata_path(path: Path) -> Path | None:
    """The sibling metadata table of a count table, if one exists."""
    base = dataset_name(path)
    for stem in (f"{base}.metadata", f"{base}.meta", f"{base}_metadata", f"{base}.obs"):
        for ext in (".csv.gz", ".csv", ".tsv.gz", ".tsv", ".txt.gz", ".txt"):
            p = path.parent / f"{stem}{ext}"
            if p.exists() and p != path:
                return p
    return None


def is_metadata_file(path: Path) -> bool:
    """Whether a text file is a metadata sidecar rather than a count table."""
    n = path.name.lower()
    return any(t in n for t in (".metadata.", ".meta.", "_metadata.", ".obs."))


def _open_text(path: Path):
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    return opener(path, "rt", newline="", encoding="utf-8")


def _scan(path: Path, sep: str) -> tuple[list[str], list[str]]:
    """(header fields, first field of every data line), refusing what pandas would misread.

    One line per problem, naming the file: an empty file, a .gz that is not gzip, bytes that are
    not UTF-8 text, a separator other than the suffix's (e.g. ';' in a .csv), ragged rows (pandas
    fills short rows with NaN or fails with its own words).
    """
    kind = "TSV" if sep == "\t" else "CSV"
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the file is empty (0 bytes); export the count table again or remove it "
                            f"from the input")
        with _open_text(path) as fh:
            reader = csv.reader(fh, delimiter=sep)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: the file is empty (no header line); export the count table again or "
                                f"remove it from the input")
            first: list[str] = []
            width = None
            for row in reader:
                if not row:
                    continue
                if width is None:
                    width = len(row)
                    if len(header) not in (width, width - 1):
                        raise DataError(f"{path}: the header has {len(header)} fields but row 2 has {width}; "
                                        f"every row needs the same number of {kind} fields as the header "
                                        f"(or one more, for an unnamed label column); re-export the table")
                elif len(row) != width:
                    raise DataError(f"{path}: ragged {kind}: line {reader.line_num} has {len(row)} fields, "
                                    f"expected {width} (as line 2); the file is truncated or a value contains "
                                    f"the separator unquoted; re-export the table")
                first.append(row[0])
    except gzip.BadGzipFile as e:
        raise DataError(f"{path}: not a gzip file although the name ends in .gz ({e}); rename it without .gz "
                        f"if it is plain text, or compress it with gzip") from e
    except (EOFError, zlib.error) as e:
        raise DataError(f"{path}: the gzip stream is truncated or corrupt ({e}); copy or download the file "
                        f"again") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (undecodable byte at offset {e.start}); is it a binary file "
                        f"with a text suffix? Pass a .csv/.tsv table, an .h5ad or a 10x folder") from e
    except csv.Error as e:
        raise DataError(f"{path}: cannot parse as a {kind} table ({e}); re-export the table") from e
    if len(header) <= 1 and width in (None, 1):
        other = next((c for c in (";", "\t", ",", "|") if c != sep and c in "".join(header)), None)
        if other is not None:
            shown = "tab" if other == "\t" else repr(other)
            fix = ("rename it to .tsv" if other == "\t" else "rename it to .csv" if other == "," else
                   "convert it to a comma-separated .csv or a tab-separated .tsv (e.g. "
                   f"pandas.read_csv(path, sep={other!r}).to_csv('table.tsv', sep='\\t'))")
            raise DataError(f"{path}: the separator looks like {shown}, not {'tab' if sep == chr(9) else repr(sep)} "
                            f"as the suffix says (the header is one field); {fix}")
        raise DataError(f"{path}: one column only; a count table needs a label column and at least one sample "
                        f"or gene column")
    if width is None:
        raise DataError(f"{path}: a header line but no data rows; export the count table again or remove it from "
                        f"the input")
    return header, first


def _first_column(path: Path, sep: str) -> list[str]:
    """Labels in the first field of every data line (works whether or not the header names that column)."""
    return _scan(path, sep)[1]


def _frac_gene_like(labels) -> float:
    labels = [str(v) for v in labels]
    return float(np.mean([bool(_GENE_ID.match(v)) for v in labels])) if labels else 0.0


class TextReader(SourceReader):
    """Read a count table; genes x samples tables are read whole (sparse), samples x genes are streamed."""

    def __init__(self, path: str | Path, orientation: str = "auto", name: str | None = None,
                 metadata: str | Path | None = None):
        self.path = Path(path)
        self.name = name or dataset_name(self.path)
        if orientation not in ORIENTATIONS:
            raise DataError(f"{self.path}: orientation must be one of {ORIENTATIONS}, got {orientation!r}")
        self.sep = delimiter_of(self.path)
        header_fields, first_col = _scan(self.path, self.sep)
        try:
            header = pd.read_csv(self.path, sep=self.sep, nrows=0, index_col=0, compression="infer")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, EOFError) as e:
            raise DataError(f"{self.path}: cannot parse as a {'TSV' if self.sep == chr(9) else 'CSV'} table "
                            f"({e}); expected a header row and one label column") from e
        labels = [h.strip() for h in (header_fields[1:] if len(header_fields) > 1 else [])]
        if len(header_fields) == len(header.columns):  # header without a label-column name (R's write.csv)
            labels = [h.strip() for h in header_fields]
        dup = pd.Index(labels)[pd.Index(labels).duplicated()].unique().tolist()
        if dup:
            raise DataError(f"{self.path}: {len(dup)} duplicate labels in the header (e.g. {dup[:3]}); pandas "
                            f"would rename them silently. Make gene ids / sample ids unique (sum duplicate genes "
                            f"first) and export again")
        cols, rows = as_str_index(header.columns), as_str_index(first_col)
        self.orientation, self.orientation_reason = self._orient(orientation, rows, cols)
        if self.orientation == "genes_x_samples":
            self.genes, sample_ids = np.asarray(rows), cols
        else:
            self.genes, sample_ids = np.asarray(cols), rows
        self.n_samples = len(sample_ids)
        self.obs = pd.DataFrame(index=sample_ids)
        self.metadata_file = Path(metadata) if metadata else metadata_path(self.path)
        self.metadata_note = ""
        if self.metadata_file is not None:
            self._join_metadata()
        self._x: sp.csr_matrix | None = None
        self.kind = f"text table ({self.orientation.replace('_', ' ')}: {self.orientation_reason})"

    def _orient(self, orientation: str, rows: pd.Index, cols: pd.Index) -> tuple[str, str]:
        if orientation != "auto":
            return orientation, "given"
        fr, fc = _frac_gene_like(rows[:2000]), _frac_gene_like(cols[:2000])
        if fr >= 0.5 and fr > fc:
            return "genes_x_samples", "row labels are gene ids"
        if fc >= 0.5:
            return "samples_x_genes", "column labels are gene ids"
        if len(rows) >= len(cols):
            return "genes_x_samples", "more rows than columns; pass --orientation if wrong"
        return "samples_x_genes", "more columns than rows; pass --orientation if wrong"

    def _join_metadata(self) -> None:
        meta = pd.read_csv(self.metadata_file, sep=delimiter_of(self.metadata_file), index_col=0,
                           compression="infer")
        meta.index = as_str_index(meta.index)
        if meta.index.duplicated().any():
            raise DataError(f"{self.metadata_file}: duplicate sample ids in the metadata "
                            f"(e.g. {meta.index[meta.index.duplicated()][0]!r}); one row per sample is needed")
        missing = ~self.obs.index.isin(meta.index)
        if missing.all():
            raise DataError(f"{self.metadata_file}: none of its ids match the samples of {self.path.name} "
                            f"(e.g. {self.obs.index[0]!r} vs {meta.index[0]!r}); check the pairing")
        self.obs = meta.reindex(self.obs.index)
        self.metadata_note = (f"metadata from {self.metadata_file.name}"
                              + (f" ({int(missing.sum())} samples without a row)" if missing.any() else ""))

    def _numeric(self, frame: pd.DataFrame, where: str) -> np.ndarray:
        try:
            return frame.apply(pd.to_numeric, errors="raise").to_numpy(dtype=np.float64)
        except (ValueError, TypeError) as e:
            raise DataError(f"{self.path}: non-numeric value in {where} ({e}); a count table has one label "
                            f"column/row and numbers elsewhere") from e

    def _load_genes_x_samples(self) -> sp.csr_matrix:
        parts = []
        reader = pd.read_csv(self.path, sep=self.sep, index_col=0, chunksize=_ROWS_PER_READ, compression="infer")
        for i, block in enumerate(reader):
            parts.append(sp.csr_matrix(self._numeric(block, f"gene rows {i * _ROWS_PER_READ}+")))
        if not parts:
            return sp.csr_matrix((0, self.n_samples))
        return sp.csr_matrix(sp.vstack(parts).T)

    def iter_chunks(self, chunk_size: int) -> Iterator[Chunk]:
        if self.orientation == "genes_x_samples":
            if self._x is None:  # samples are columns: the whole table is needed before any sample is complete
                self._x = self._load_genes_x_samples()
            for start in range(0, self.n_samples, chunk_size):
                stop = min(start + chunk_size, self.n_samples)
                yield Chunk(self._x[start:stop], self.obs.iloc[start:stop], start)
            return
        reader = pd.read_csv(self.path, sep=self.sep, index_col=0, chunksize=chunk_size, compression="infer")
        start = 0
        for block in reader:
            x = sp.csr_matrix(self._numeric(block, f"sample rows {start}+"))
            yield Chunk(x, self.obs.iloc[start:start + x.shape[0]], start)
            start += x.shape[0]
