"""Atomic file writes and checksums: a reader never sees half a file, a failure leaves no temp file."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import write_failure


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks (constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling path to write; rename it onto `path` on success, delete it on failure.

    A failure that means the folder cannot take the file (disk full, quota, read-only, permission, a
    library's "short write") is re-raised as one OSError naming `path` and the cause
    (`common.errors.write_failure`).

    `suffix` keeps an extension some writers insist on (np.save appends '.npy', np.savez '.npz').
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, _FILE_MODE)       # mkstemp makes 0600; outputs get the usual umask-based mode
        yield tmp
        os.replace(tmp, path)
    except BaseException as e:
        err = write_failure(e, path, scratch=tmp)     # a full disk, read-only folder ... named by `path`
        with contextlib.suppress(OSError):
            tmp.unlink()
        if err is e:
            raise
        raise err from e


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, default: Callable[[Any], Any] | None = None,
                      indent: int = 1) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=default) + "\n")
