"""Read-only access to a Bundle folder (see docs/formats.md, "Bundle").

The app never imports torch: every matrix is a ``.npy`` file opened with
``np.load(mmap_mode="r")`` and every table is Parquet. Files are opened lazily
and kept, so a 45,000-gene bundle costs only what a page actually touches.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from common.gmt import gmt_sets

# precompute owns the contract; these imports are torch-free (numpy/pandas/pyarrow only).
from .files import REBUILD_BUNDLE, BundleError, read_array, read_json, read_manifest, read_table
from .validate import check_bundle
from . import files as bundle_files

MAKE_BUNDLE_HINT = "rebuild it with `python -m precompute run ... --overwrite --force` (or `make demo`)"


@dataclass
class Bundle:
    """One bundle folder, opened lazily.

    Attributes:
        path: the bundle folder.
        manifest: the parsed ``manifest.json``.
    """

    path: Path
    manifest: dict = field(repr=False)

    # ---- identity -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Folder name, used as the bundle's label in the app and in URLs."""
        return self.path.name

    @property
    def matrix_names(self) -> list[str]:
        """Gene matrices in the bundle, in manifest order (e.g. codebook, decoder, pca)."""
        return list(self.manifest.get("matrices", {}))

    def default_rank(self, matrix: str) -> int:
        """The matrix's chosen rank: the one ``knn/`` was built at (manifest ``matrices[m].rank``).

        Falls back to ``recall/best.json`` and then to the full width when the manifest has none.
        """
        info = self.manifest["matrices"].get(matrix, {})
        if isinstance(info, dict) and info.get("rank"):
            return int(info["rank"])
        if "rank" in self.best.get(matrix, {}):
            return int(self.best[matrix]["rank"])
        return int(self.subspace(matrix).shape[1])

    def max_rank(self, matrix: str) -> int:
        """Width W of ``subspaces/MATRIX.npy`` (the largest usable rank)."""
        return int(self.subspace(matrix).shape[1])

    # ---- tables ---------------------------------------------------------------------------
    @cached_property
    def genes(self) -> pd.DataFrame:
        """``genes.parquet``: one row per gene in matrix row order (gene, symbol, ensembl_id, aliases, name,
        entrez_id; the last two "" in a bundle made before they were stored)."""
        df = _read_parquet(self.path / bundle_files.GENES)
        for col in ("symbol", "ensembl_id", "aliases", "name", "entrez_id"):
            if col not in df.columns:
                df[col] = ""
            df[col] = df[col].fillna("").astype(str)
        if "gene" in df.columns:
            df = df.sort_values("gene").reset_index(drop=True)
        return df

    @cached_property
    def symbols(self) -> np.ndarray:
        """(G,) object array of gene symbols in row order."""
        return self.genes["symbol"].to_numpy(dtype=object)

    @property
    def n_genes(self) -> int:
        """Number of genes G."""
        return len(self.genes)

    @cached_property
    def best(self) -> dict:
        """``recall/best.json`` ({matrix: {"rank", "recall"}}) or {} when absent."""
        p = self.path / bundle_files.BEST
        best = read_json(p) if p.exists() else {}
        if not isinstance(best, dict):
            raise BundleError(f"{p}: not a {{matrix: {{rank, recall}}}} table; {REBUILD_BUNDLE}")
        return best

    @cached_property
    def recall(self) -> pd.DataFrame:
        """``recall/recall.parquet`` (matrix, rank, source, recall_mean, recall_std, n_pairs, chance)."""
        return self.optional_table(bundle_files.RECALL)

    @cached_property
    def spectrum(self) -> pd.DataFrame:
        """``subspaces/spectrum.parquet`` (matrix, component, explained_variance, explained_variance_ratio)."""
        return self.optional_table(bundle_files.SPECTRUM)

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """``training/metrics.parquet`` (step, samples_seen, loss, ...) or an empty table."""
        return self.optional_table(bundle_files.METRICS)

    @cached_property
    def pairs(self) -> pd.DataFrame:
        """``references/pairs.parquet`` (source, gene_a, gene_b) or an empty table."""
        df = self.optional_table(bundle_files.PAIRS)
        if df.empty:
            return pd.DataFrame({"source": [], "gene_a": [], "gene_b": []}, dtype=str)
        return df

    def optional_table(self, rel: str) -> pd.DataFrame:
        """Read a Parquet table inside the bundle, or return an empty DataFrame when it is absent."""
        p = self.path / rel
        return _read_parquet(p) if p.exists() else pd.DataFrame()

    def umap(self, matrix: str) -> pd.DataFrame:
        """``umap/MATRIX.parquet`` sorted by gene row (gene, x, y)."""
        return _read_parquet(self.path / bundle_files.umap_file(matrix)).sort_values("gene").reset_index(drop=True)

    def modules(self, matrix: str) -> pd.DataFrame:
        """``modules/MATRIX.parquet`` sorted by gene row: gene, res_<value> int columns."""
        p = self.path / bundle_files.modules_file(matrix)
        if not p.exists():
            return pd.DataFrame({"gene": np.arange(self.n_genes)})
        return _read_parquet(p).sort_values("gene").reset_index(drop=True)

    def resolutions(self, matrix: str) -> list[str]:
        """Module resolution columns (``res_<value>``) available for a matrix."""
        return [c for c in self.modules(matrix).columns if c.startswith("res_")]

    def enrichment(self, matrix: str) -> pd.DataFrame:
        """``enrichment/MATRIX.parquet`` (resolution, module, library, term, overlap, ..., p, q, genes)."""
        return self.optional_table(bundle_files.enrichment_file(matrix))

    def gmt_libraries(self) -> list[str]:
        """Names of the gene-set libraries under ``references/gmt`` (file stem)."""
        d = self.path / bundle_files.GMT_DIR
        return sorted(p.stem for p in d.glob("*.gmt")) if d.exists() else []

    def gmt_path(self, library: str) -> Path:
        """Path of ``references/gmt/LIBRARY.gmt``."""
        return self.path / bundle_files.gmt_file(library)

    def gene_sets(self, library: str) -> dict[str, list[str]]:
        """``references/gmt/LIBRARY.gmt`` as {set name: [symbol, ...]} (file order; the project's one GMT
        reader, ``common.gmt``). Raises BundleError naming the file when it is missing or not GMT text."""
        p = self.gmt_path(library)
        try:
            return gmt_sets(p.read_text(encoding="utf-8"), str(p))
        except FileNotFoundError as e:
            raise BundleError(f"{p}: file is missing from the bundle; {MAKE_BUNDLE_HINT}.") from e
        except UnicodeDecodeError as e:
            raise BundleError(f"{p}: not a GMT gene-set file (not UTF-8 text at byte {e.start}); "
                              f"{MAKE_BUNDLE_HINT}.") from e
        except ValueError as e:
            raise BundleError(f"{p}: not a GMT gene-set file ({e}); {MAKE_BUNDLE_HINT}.") from e

    def has_umap(self, matrix: str) -> bool:
        """True when ``umap/MATRIX.parquet`` exists."""
        return (self.path / bundle_files.umap_file(matrix)).exists()

    # ---- memory-mapped matrices -----------------------------------------------------------
    def matrix(self, matrix: str) -> np.ndarray:
        """``matrices/MATRIX.npy`` memory-mapped, float32 (G, D)."""
        return self._npy(bundle_files.matrix_file(matrix))

    def subspace(self, matrix: str) -> np.ndarray:
        """``subspaces/MATRIX.npy`` memory-mapped, float32 (G, W); rank r = first r columns."""
        return self._npy(bundle_files.subspace_file(matrix))

    def knn(self, matrix: str) -> tuple[np.ndarray, np.ndarray]:
        """(indices int32 (G, k), sims float32 (G, k)) at the matrix's chosen rank, memory-mapped."""
        return self._npy(bundle_files.knn_files(matrix)[0]), self._npy(bundle_files.knn_files(matrix)[1])

    def _npy(self, rel: str) -> np.ndarray:
        cache = self.__dict__.setdefault("_npy_cache", {})
        if rel not in cache:
            p = self.path / rel
            if not p.exists():
                raise BundleError(f"{p}: file is missing from the bundle; {MAKE_BUNDLE_HINT}.")
            arr = read_array(p)
            if arr.ndim != 2 or arr.shape[0] != self.n_genes:
                raise BundleError(
                    f"{p}: shape {arr.shape} does not match the {self.n_genes} genes of genes.parquet; "
                    f"{MAKE_BUNDLE_HINT}."
                )
            cache[rel] = arr
        return cache[rel]


def _read_parquet(p: Path) -> pd.DataFrame:
    if not p.exists():
        raise BundleError(f"{p}: file is missing from the bundle; {MAKE_BUNDLE_HINT}.")
    return read_table(p)


def validate(path: Path) -> dict:
    """Check a bundle with precompute's validator (sizes, columns, shapes; hashes skipped for speed).

    Returns the manifest; raises BundleError with the validator's message (every problem, and the fix).
    """
    return check_bundle(Path(path), verify_hashes=False)


def open_bundle(path: Path) -> Bundle:
    """Open a bundle folder (manifest checked, everything else lazy)."""
    path = Path(path).resolve()
    return Bundle(path=path, manifest=read_manifest(path))


def discover_bundles(root: Path) -> list[Path]:
    """Bundle folders under ``root``: ``root`` itself if it has a manifest, else its sub-folders that do.

    Returns paths sorted by name; folders without a manifest are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    if (root / "manifest.json").exists():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "manifest.json").exists())


def discover_series(root: Path) -> list[Path]:
    """Run series folders (``precompute series``) under ``root``, by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / bundle_files.SERIES_FILE).is_file())


def read_series(path: Path) -> dict:
    """A series' ``series.json``, checked: its checkpoints (by step) each name a bundle folder inside it.

    Raises BundleError naming the file and the fix.
    """
    p = Path(path) / bundle_files.SERIES_FILE
    fix = "rebuild it with `python -m precompute series --run RUN --overwrite`"
    try:
        s = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise BundleError(f"{p}: cannot be read ({e}); {fix}") from e
    if not isinstance(s, dict) or s.get("format") != bundle_files.SERIES_FORMAT or not isinstance(s.get("checkpoints"), list):
        raise BundleError(f"{p}: not a run series file; {fix}")
    for c in s["checkpoints"]:
        if not isinstance(c, dict) or not {"step", "samples_seen", "bundle"} <= set(c) \
                or "/" in str(c["bundle"]) or str(c["bundle"]).startswith("."):
            raise BundleError(f"{p}: a checkpoint entry is malformed ({str(c)[:80]}); {fix}")
        if not (Path(path) / c["bundle"] / "manifest.json").is_file():
            raise BundleError(f"{Path(path) / c['bundle']}: bundle of step {c['step']} is missing; {fix}")
    s["checkpoints"] = sorted(s["checkpoints"], key=lambda c: int(c["step"]))
    return s
