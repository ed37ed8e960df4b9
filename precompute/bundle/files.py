"""Bundle folder I/O: the manifest, atomic creation, file hashes (docs/formats.md "Bundle").

Light on purpose (numpy, pandas, pyarrow only): the app imports this module through
`precompute.bundle.validate` and must never pull in torch, sklearn or umap.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.atomic import atomic_path, atomic_write_json, sha256_file  # noqa: F401 (sha256_file re-exported)
from common.errors import reading
from common.outputs import commit_dir

BUNDLE_FORMAT = "txfm-bundle"
BUNDLE_FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PARTIAL_SUFFIX = ".partial"


# ---------------------------------------------------------------------- the layout
# Every path of a bundle, relative to its root (docs/formats.md "Bundle"). Writers (precompute),
# readers (the app, comparison, evaluation) and the validator spell paths only through these.
GENES = "genes.parquet"                          # one row per gene, matrix row order
SPECTRUM = "subspaces/spectrum.parquet"          # explained variance per matrix and component
RECALL = "recall/recall.parquet"                 # the recall sweep of every matrix
BEST = "recall/best.json"                        # {matrix: best rank and recall} (precompute.bundle.recall.best_rank)
PAIRS = "references/pairs.parquet"               # known pairs restricted to the bundle's genes
GMT_DIR = "references/gmt"                       # gene-set libraries, LIBRARY.gmt
METRICS = "training/metrics.parquet"             # training metrics of the checkpoint, when known


# The top-level entries each precompute step writes, in step order (a rerun of a step replaces exactly these).
STEP_FILES = (("matrices", (GENES, "matrices")), ("references", ("references",)), ("subspaces", ("subspaces",)),
              ("recall", ("recall",)), ("knn", ("knn",)), ("umap", ("umap",)), ("modules", ("modules",)),
              ("enrichment", ("enrichment",)), ("training", ("training",)))


def matrix_file(name: str) -> str:
    """(G, D) float32 gene matrix."""
    return f"matrices/{name}.npy"


def subspace_file(name: str) -> str:
    """(G, W) float32 PCA scores of the matrix (columns by decreasing variance)."""
    return f"subspaces/{name}.npy"


def knn_files(name: str) -> tuple[str, str]:
    """(indices (G, k) int32, cosine similarities (G, k) float32, descending per row)."""
    return f"knn/{name}.indices.npy", f"knn/{name}.sims.npy"


def umap_file(name: str) -> str:
    """gene, x, y."""
    return f"umap/{name}.parquet"


def modules_file(name: str) -> str:
    """gene and one Leiden column per resolution (res_R)."""
    return f"modules/{name}.parquet"


def enrichment_file(name: str) -> str:
    """Module enrichment table (hypergeometric p, BH q)."""
    return f"enrichment/{name}.parquet"


def gmt_file(library: str) -> str:
    """One gene-set library of the bundle."""
    return f"{GMT_DIR}/{library}.gmt"


class BundleError(ValueError):
    """A bundle is missing, incomplete, tampered with or of an unknown format."""


# The fix for a damaged file of a bundle (the readers below name the file).
REBUILD_BUNDLE = ("rebuild the bundle: `python -m precompute run --checkpoint CKPT --out BUNDLE --overwrite` "
                  "(or `precompute import ... --overwrite` for an imported embedding)")


def read_table(path: Path) -> pd.DataFrame:
    """A Parquet table of a bundle; a missing, truncated or damaged file is one BundleError naming it."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: file is missing from the bundle; {REBUILD_BUNDLE}")
    with reading(path, REBUILD_BUNDLE, "bundle table", BundleError, also=(Exception,)):   # pyarrow: many types
        return pd.read_parquet(path)


def read_array(path: Path) -> np.ndarray:
    """A ``.npy`` array of a bundle, memory-mapped read-only (never unpickled); a missing, truncated or
    damaged file is one BundleError naming it."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: file is missing from the bundle; {REBUILD_BUNDLE}")
    with reading(path, REBUILD_BUNDLE, "bundle array (.npy)", BundleError):
        return np.load(path, mmap_mode="r", allow_pickle=False)


def read_json(path: Path) -> Any:
    """A JSON file of a bundle (e.g. recall/best.json); a damaged file is one BundleError naming it."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: file is missing from the bundle; {REBUILD_BUNDLE}")
    with reading(path, REBUILD_BUNDLE, "bundle JSON file", BundleError):
        return json.loads(path.read_text(encoding="utf-8"))


def now_iso() -> str:
    """Current UTC time as an ISO-8601 string with seconds precision."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def partial_dir(out: Path) -> Path:
    """The hidden `.NAME.partial` sibling older versions built bundles in (and left behind on failure);
    `python -m precompute run` now builds in `.NAME.staging-PID-XXXX` and removes such leftovers."""
    out = Path(out)
    return out.parent / f".{out.name}{PARTIAL_SUFFIX}"


def is_bundle(path: Path) -> bool:
    """Whether `path` is a folder holding a bundle manifest (finished or not): `precompute`'s own output."""
    m = Path(path) / MANIFEST
    try:
        return m.is_file() and json.loads(m.read_text()).get("format") == BUNDLE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to `path` through a temp file + rename so readers never see half a file."""
    atomic_write_json(path, obj, default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_npy(path: Path, arr: np.ndarray) -> None:
    """Save an array as .npy (temp + rename); readers memory-map it with np.load(mmap_mode='r')."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, np.ascontiguousarray(arr), allow_pickle=False)


def save_parquet(path: Path, df: pd.DataFrame) -> None:
    """Save a DataFrame as Parquet without its index (temp + rename)."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def file_table(root: Path) -> dict[str, dict[str, Any]]:
    """{relative posix path: {"bytes", "sha256"}} for every file under `root` except the manifest."""
    root = Path(root)
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            rel = p.relative_to(root).as_posix()
            out[rel] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
    return out


def read_manifest(bundle: Path) -> dict[str, Any]:
    """Read and check a bundle's manifest.json; raise BundleError naming the file and the fix."""
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        if not Path(bundle).exists():
            raise BundleError(f"{bundle}: no such bundle folder; check the path, or build one with "
                              f"`python -m precompute run --checkpoint CKPT --out {bundle}`")
        # Never suggest writing into an existing folder that is not a bundle: the user's files live there.
        raise BundleError(f"{path}: no manifest.json, so {bundle} is not a bundle; point at a bundle folder, "
                          f"or build one into a NEW folder with `python -m precompute run --checkpoint CKPT "
                          f"--out bundles/NAME`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{path}: not valid JSON ({e}); the bundle is damaged (and is no longer recognised "
                          "as one, so it is never overwritten): rebuild it into a new folder with "
                          "`python -m precompute run --checkpoint CKPT --out bundles/NAME`") from e
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise BundleError(f"{path}: format is {found!r}, expected {BUNDLE_FORMAT!r}; "
                          "point the reader at a bundle folder written by `python -m precompute run`")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > BUNDLE_FORMAT_VERSION or version < 1:
        raise BundleError(f"{path}: format_version {version!r} is not supported (this code reads "
                          f"1..{BUNDLE_FORMAT_VERSION}); update the code or rebuild the bundle")
    return manifest


def finalise(work: Path, out: Path, manifest: dict[str, Any]) -> Path:
    """Hash every file in `work`, write the final manifest and rename `work` to `out`.

    An existing `out` is replaced only after the new bundle is complete (see common.outputs.commit_dir);
    the caller has already checked that `out` may be replaced.
    """
    work, out = Path(work), Path(out)
    manifest = dict(manifest)
    manifest["files"] = file_table(work)
    write_json_atomic(work / MANIFEST, manifest)
    return commit_dir(work, out)


# ---- run series (precompute/series.py writes, the app's Training run page reads) --------------
SERIES_FORMAT = "txfm-run-series"
SERIES_FILE = "series.json"                       # {"format", "run", "checkpoints": [{step, samples_seen, bundle}]}
