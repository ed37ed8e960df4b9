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
           "find_source_files", "transpose_fix"]

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
    if suffix in (".h5ad", ".h5"):
        _check_hdf5(p)
    if suffix == ".h5ad":
        return H5adReader(p, layer=layer)
    if suffix == ".h5":
        return TenxH5Reader(p)
    if _is_text(p):
        return TextReader(p, orientation=orientation)
    raise DataError(f"{p}: unknown format {p.suffix!r}; supported: .h5ad, 10x .h5, 10x folder (matrix.mtx), "
                    f".csv/.tsv/.txt (optionally .gz)")


def transpose_fix(reader: SourceReader) -> str:
    """How to turn a source whose genes and samples are swapped, for the message that refuses it."""
    if isinstance(reader, TextReader):
        other = "samples_x_genes" if reader.orientation == "genes_x_samples" else "genes_x_samples"
        return f"Pass --orientation {other}"
    if isinstance(reader, H5adReader):
        return ("Transpose it: adata = anndata.read_h5ad(path); adata.T.write_h5ad(new_path) (cells as rows, "
                "genes as var)")
    return "Transpose it (samples as rows, genes as columns) and export again"


def _check_hdf5(p: Path) -> None:
    """Refuse an .h5ad/.h5 that is not HDF5 (empty, text, another format) in one line."""
    import h5py

    size = p.stat().st_size
    if size == 0:
        raise DataError(f"{p}: the file is empty (0 bytes); copy or export it again")
    if not h5py.is_hdf5(str(p)):
        with open(p, "rb") as fh:
            head = fh.read(16)
        what = "a gzip file" if head[:2] == b"\x1f\x8b" else ("a zip file" if head[:2] == b"PK" else
                                                            f"it starts with {head[:8]!r}")
        raise DataError(f"{p}: not an HDF5 file ({what}); {p.suffix} files are HDF5 (AnnData / 10x). Check that "
                        f"the download or copy is complete, or pass the file with its real suffix")


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
