"""Readers for the count formats biologists have; each yields chunks of (CSR counts, obs).

``open_sources(paths)`` turns files and folders into one ``SourceReader``
per dataset: ``.h5ad`` (X / layers / raw.X), 10x (Matrix Market folder or
``.h5``), CSV/TSV (gzipped or not, either orientation), and folders holding
any of these (searched recursively; metadata sidecars are joined, not read
as datasets).
"""
from __future__ import annotations

from pathlib import Path

from data.readers.base import Chunk, SourceReader, dataset_name
from data.readers.h5ad import H5adReader
from data.readers.tenx import TenxH5Reader, TenxMtxReader, is_tenx_folder
from data.readers.text import ORIENTATIONS, TextReader, is_metadata_file
from data.readers.validate import DataError, check_counts, check_not_empty, check_sample_ids

__all__ = ["Chunk", "SourceReader", "H5adReader", "TenxH5Reader", "TenxMtxReader", "TextReader", "DataError",
           "ORIENTATIONS", "check_counts", "check_not_empty", "check_sample_ids", "open_source", "open_sources",
           "find_source_files"]

_TEXT = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")


def _is_text(p: Path) -> bool:
    return p.name.lower().endswith(_TEXT) and not is_metadata_file(p)


def find_source_files(folder: Path) -> list[Path]:
    """Datasets inside ``folder`` (sorted, recursive): h5ad/h5 files, 10x folders and count tables."""
    if is_tenx_folder(folder):
        return [folder]
    found: list[Path] = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            found += find_source_files(p)
        elif p.suffix.lower() in (".h5ad", ".h5") or _is_text(p):
            found.append(p)
    return found


def open_source(path: str | Path, layer: str = "auto", orientation: str = "auto") -> SourceReader:
    """A reader for one dataset: a file (by suffix) or a 10x Matrix Market folder."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file or folder; check the --source path")
    if p.is_dir():
        if is_tenx_folder(p):
            return TenxMtxReader(p)
        raise DataError(f"{p}: a folder that is not a 10x matrix; pass it to open_sources to read what it holds")
    suffix = p.suffix.lower()
    if suffix == ".h5ad":
        return H5adReader(p, layer=layer)
    if suffix == ".h5":
        return TenxH5Reader(p)
    if _is_text(p):
        return TextReader(p, orientation=orientation)
    raise DataError(f"{p}: unknown format {p.suffix!r}; supported: .h5ad, 10x .h5, 10x folder (matrix.mtx), "
                    f".csv/.tsv/.txt (optionally .gz)")


def open_sources(paths: list[str | Path], layer: str = "auto", orientation: str = "auto") -> list[SourceReader]:
    """Readers for every dataset under ``paths`` (files or folders), with unique dataset names."""
    files: list[Path] = []
    for path in paths:
        p = Path(path)
        if not p.exists():
            raise DataError(f"{p}: no such file or folder; check the --source path")
        if p.is_dir():
            inside = find_source_files(p)
            if not inside:
                raise DataError(f"{p}: no readable dataset inside (looked for .h5ad, .h5, 10x folders, "
                                f".csv/.tsv tables)")
            files += inside
        else:
            files.append(p)
    readers = [open_source(f, layer=layer, orientation=orientation) for f in files]
    seen: dict[str, Path] = {}
    for r in readers:
        if r.name in seen:
            raise DataError(f"{r.path}: dataset name {r.name!r} is also used by {seen[r.name]}; dataset names come "
                            f"from file names, so rename one of the files")
        seen[r.name] = r.path
    return readers
