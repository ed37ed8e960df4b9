"""Readers for the count formats biologists have; each yields chunks of (CSR counts, obs).

``open_sources(paths)`` turns files, folders and URIs into one ``SourceReader``
per dataset: ``.h5ad`` (X / layers / raw.X), 10x (Matrix Market folder or
``.h5``), ARCHS4 gene-count ``.h5`` files, CSV/TSV (gzipped or not, either
orientation), TileDB-SOMA experiments (a folder or a URI such as a CELLxGENE
Census copy; one reader per dataset of the experiment), and folders holding
any of these (searched recursively; metadata sidecars are joined, not read
as datasets).
"""
from __future__ import annotations

from pathlib import Path

from data.readers.archs4 import Archs4Reader, is_archs4
from data.readers.base import Chunk, SourceReader, dataset_name
from data.readers.h5ad import H5adReader
from data.readers.soma import SomaOptions, looks_like_soma
from data.readers.tenx import TenxH5Reader, TenxMtxReader, is_tenx_folder
from data.readers.text import ORIENTATIONS, TextReader, is_metadata_file
from data.readers.validate import DataError, check_counts, check_not_empty, check_sample_ids

__all__ = ["Chunk", "SourceReader", "H5adReader", "Archs4Reader", "SomaOptions", "TenxH5Reader", "TenxMtxReader", "TextReader", "DataError",
           "ORIENTATIONS", "check_counts", "check_not_empty", "check_sample_ids", "open_source", "open_sources",
           "find_source_files", "transpose_fix", "close_readers"]

_TEXT = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")


def _is_text(p: Path) -> bool:
    return p.name.lower().endswith(_TEXT) and not is_metadata_file(p)


def find_source_files(folder: Path) -> list[Path]:
    """Datasets inside ``folder`` (sorted, recursive): h5ad/h5 files, 10x folders, SOMA experiments, count tables."""
    if is_tenx_folder(folder) or looks_like_soma(folder):
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


def open_source(path: str | Path, layer: str = "auto", orientation: str = "auto",
                archs4_samples: str | Path | None = None) -> SourceReader:
    """A reader for one dataset: a file (by suffix) or a 10x Matrix Market folder (SOMA: ``open_sources``)."""
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
        return _open_h5(p, archs4_samples)
    if _is_text(p):
        return TextReader(p, orientation=orientation)
    raise DataError(f"{p}: unknown format {p.suffix!r}; supported: .h5ad, 10x .h5, ARCHS4 .h5, 10x folder "
                    f"(matrix.mtx), TileDB-SOMA experiment (folder or URI), .csv/.tsv/.txt (optionally .gz)")


def _open_h5(p: Path, archs4_samples) -> SourceReader:
    """An ``.h5``: an ARCHS4 gene-count file or a 10x feature-barcode matrix, told apart by their groups."""
    import h5py
    try:
        with h5py.File(p, "r") as f:
            archs4, tenx = is_archs4(f), "matrix" in f or any(
                isinstance(f[k], h5py.Group) and "indptr" in f[k] for k in f)
            top = sorted(f)
    except OSError as e:
        raise DataError(f"{p}: cannot open as HDF5 ({e}); is the file complete?") from e
    if archs4:
        return Archs4Reader(p, samples_file=archs4_samples)
    if tenx:
        return TenxH5Reader(p)
    raise DataError(f"{p}: an HDF5 file of neither known .h5 layout (top-level groups: {', '.join(top) or 'none'}); "
                    f"supported are ARCHS4 (data/expression, meta/genes, meta/samples) and the 10x feature-barcode "
                    f"matrix (matrix/ or one genome group with indptr); for AnnData use the .h5ad suffix")


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


def open_sources(paths: list[str | Path], layer: str = "auto", orientation: str = "auto",
                 soma: SomaOptions | None = None, archs4_samples: str | Path | None = None) -> list[SourceReader]:
    """Readers for every dataset under ``paths`` (files, folders, SOMA folders or URIs), with unique names.

    ``soma`` says how to read TileDB-SOMA sources (measurement, X layer, obs filter, split column);
    ``archs4_samples`` keeps the listed GSM samples / GSE series of ARCHS4 files. Options given for a
    kind of source that none of ``paths`` is are refused, so a mistyped path is not silently ignored.
    """
    from data.readers.soma import is_uri, open_soma
    files: list[str | Path] = []
    for path in paths:
        if is_uri(path):
            files.append(str(path))
            continue
        p = Path(path)
        if not p.exists():
            raise DataError(f"{p}: no such file or folder; check the --source path")
        if p.is_dir():
            inside = find_source_files(p)
            if not inside:
                raise DataError(f"{p}: no readable dataset inside (looked for .h5ad, .h5, 10x folders, TileDB-SOMA "
                                f"experiments, .csv/.tsv tables)")
            files += inside
        else:
            files.append(p)
    soma_sources = [f for f in files if looks_like_soma(f)]
    if soma is not None and soma != SomaOptions() and not soma_sources:
        raise DataError(f"{', '.join(map(str, paths))}: --soma-* options were given but no source is a TileDB-SOMA "
                        f"experiment (a folder holding obs/ and ms/ with TileDB metadata, or a URI); check --source")
    readers: list[SourceReader] = []
    try:
        for f in files:
            if f in soma_sources:
                readers += open_soma(f, soma or SomaOptions())
            else:
                readers.append(open_source(f, layer=layer, orientation=orientation, archs4_samples=archs4_samples))
    except BaseException:
        close_readers(readers)
        raise
    if archs4_samples is not None and not any(isinstance(r, Archs4Reader) for r in readers):
        close_readers(readers)
        raise DataError(f"{archs4_samples}: --archs4-samples was given but no source is an ARCHS4 .h5 file; check "
                        f"--source")
    seen: dict[str, object] = {}
    for r in readers:
        if r.name in seen:
            close_readers(readers)
            raise DataError(f"{r.path}: dataset name {r.name!r} is also used by {seen[r.name]}; dataset names come "
                            f"from file names (SOMA: the values of the split column), so rename one of the files")
        seen[r.name] = r.path
    return readers


def close_readers(readers: list[SourceReader]) -> None:
    """Release what readers hold open (SOMA experiments); other readers open files per chunk."""
    done = set()
    for r in readers:
        source = getattr(r, "source", None)
        if source is not None and id(source) not in done:
            done.add(id(source))
            source.close()
