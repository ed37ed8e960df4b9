"""Output folders: a command replaces only a folder it recognises as its own kind of output, and only
when asked; it builds the new one in a hidden sibling and renames it into place at the end.

    with staged_output(out, kind="bundle", is_own=is_bundle, replace=args.overwrite) as work:
        ... write everything under `work` ...
    # success: `out` now holds the new output (an old one of the same kind was replaced)
    # failure: `out` is untouched and `work` is gone

Refusals (raised as UserError before any work is done):
- `out` exists, is not empty and is not a KIND (e.g. a folder of notebooks): never touched;
- `out` is a KIND but `replace` is False: the flag to pass is named;
- `out` is a file, or the parent folder is not writable;
- `protect` paths (e.g. a command's own inputs) lie inside `out`.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import UserError, disk_problem, write_failure

# Files an OS or an editor drops into any folder; they do not make a folder "someone else's".
IGNORABLE_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", ".ipynb_checkpoints", "__MACOSX"})

STAGE_TAG = ".staging-"
OLD_TAG = ".replaced-"


def a_(kind: str) -> str:
    """'a bundle', 'an ablation folder'."""
    return f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}"


def is_empty_dir(path: Path) -> bool:
    return path.is_dir() and all(p.name in IGNORABLE_FILES for p in path.iterdir())


def _describe(path: Path, limit: int = 3) -> str:
    names = sorted(p.name for p in path.iterdir() if p.name not in IGNORABLE_FILES)
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f"{len(names)} item(s): {shown}"


def _check_writable_parent(out: Path) -> None:
    """Refuse an --out whose nearest existing ancestor is a file or is not writable."""
    probe = out.parent if str(out.parent) else Path(".")
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(f"{probe}: is a file, so no folder can be created there; choose another --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        why = {errno.EROFS: " (its file system is mounted read-only)",
               errno.EACCES: " (permission denied)"}.get(disk_problem(probe) or errno.EACCES, "")
        raise UserError(f"{probe}: folder is not writable{why}; choose an --out in a folder you can write to")


def check_output_target(out: str | os.PathLike, kind: str, is_own: Callable[[Path], bool],
                        replace: bool, flag: str = "--overwrite",
                        protect: Iterable[str | os.PathLike] = ()) -> bool:
    """Refuse an unsafe `out` (see module doc); return True when an existing KIND will be replaced."""
    out = Path(out)
    for p in protect:
        p = Path(p).resolve()
        o = out.resolve()
        if p == o or o in p.parents:
            raise UserError(f"{out}: this output folder contains the input {p}; choose an --out outside it")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file, not a folder; choose another --out")
    _check_writable_parent(out)
    if not out.exists() or is_empty_dir(out):
        return False
    if not is_own(out):
        raise UserError(f"{out}: exists and is not {a_(kind)} ({_describe(out)}); it is left untouched -- "
                        f"choose a new --out (or move that folder away yourself)")
    if not replace:
        raise UserError(f"{out}: {a_(kind)} already exists there; pass {flag} to replace it, or choose a new --out")
    return True


def stage_dir(out: Path) -> Path:
    """A fresh hidden sibling of `out` to build in: `.NAME.staging-PID-XXXXXXXX` (unique, so concurrent
    runs never share one; the PID lets a later run recognise the leftover of a killed process)."""
    return out.parent / f".{out.name}{STAGE_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:          # EPERM: alive, someone else's
        return True
    return True


def remove_stale_staging(out: str | os.PathLike) -> list[Path]:
    """Delete staging/replaced siblings of `out` whose process (PID in the name) is gone; return them.

    They are the tool's own temporary folders, never a user's output. Siblings of a live process
    (a concurrent run) and names without a PID are left alone.
    """
    removed = []
    out = Path(out)
    for p in leftover_staging(out):
        old = OLD_TAG in p.name and STAGE_TAG not in p.name
        tail = p.name.split(OLD_TAG if old else STAGE_TAG, 1)[1]
        pid = tail.split("-", 1)[0]
        if pid.isdigit() and "-" in tail and not _pid_alive(int(pid)) and int(pid) != os.getpid():
            if old and not out.exists():
                os.replace(p, out)     # killed between the two renames of commit_dir: restore the old output
                continue
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def discard_staging(work: Path, out: Path, e: BaseException) -> BaseException:
    """After `e` stopped the build of `out` in the staging folder `work`: diagnose a write failure (disk
    full, read-only, permission, short write; before deleting, as the free space counts), delete `work`,
    and return what to raise -- an error naming `out` (or the file under it) and the cause, or `e`."""
    err = write_failure(e, out, scratch=work)
    shutil.rmtree(work, ignore_errors=True)
    return err


def commit_dir(work: Path, out: Path) -> Path:
    """Move a finished `work` folder onto `out`; an existing `out` is replaced only now."""
    work, out = Path(work), Path(out)
    if out.exists():
        old = out.parent / f".{out.name}{OLD_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
        try:
            os.replace(work, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(work, out)
    return out


@contextlib.contextmanager
def staged_output(out: str | os.PathLike, kind: str, is_own: Callable[[Path], bool], replace: bool = False,
                  flag: str = "--overwrite", protect: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Check `out`, yield a hidden staging folder, then commit it onto `out` (see module doc)."""
    out = Path(out)
    check_output_target(out, kind, is_own, replace, flag=flag, protect=protect)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    work = stage_dir(out)
    work.mkdir()
    try:
        yield work
        if out.exists() and is_empty_dir(out):
            shutil.rmtree(out)
        commit_dir(work, out)
    except BaseException as e:
        err = discard_staging(work, out, e)
        if err is e:
            raise
        raise err from e


def check_output_file(out: str | os.PathLike, kind: str, is_own: Callable[[Path], bool], replace: bool,
                      flag: str = "--overwrite", protect: Iterable[str | os.PathLike] = ()) -> bool:
    """The single-file version of `check_output_target`: refuse a folder, a file that is not a KIND,
    an existing KIND without `flag`, or an input as output; return True when a KIND will be replaced.
    Write the file with `common.atomic.atomic_path` so a failure leaves the old file and no temp file."""
    out = Path(out)
    for p in protect:
        p = Path(p).resolve()
        if p == out.resolve():
            raise UserError(f"{out}: this is also an input of the command; choose another --out")
        if p.is_dir() and p in out.resolve().parents:
            raise UserError(f"{out}: lies inside the input folder {p}; write it outside that folder")
    if out.is_dir():
        raise UserError(f"{out}: is a folder, expected {a_(kind)} path; pass a file name, e.g. {out}/out")
    _check_writable_parent(out)
    if not out.exists():
        return False
    if not is_own(out):
        raise UserError(f"{out}: exists and is not {a_(kind)}; it is left untouched -- choose a new --out")
    if not replace:
        raise UserError(f"{out}: {a_(kind)} already exists there; pass {flag} to replace it, or choose a new --out")
    return True


def leftover_staging(out: str | os.PathLike) -> list[Path]:
    """Staging or replaced siblings of `out` left by a killed process (for messages and cleanup)."""
    out = Path(out)
    if not out.parent.is_dir():
        return []
    return sorted(p for p in out.parent.iterdir()
                  if p.name.startswith(f".{out.name}{STAGE_TAG}") or p.name.startswith(f".{out.name}{OLD_TAG}"))
