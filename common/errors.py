"""One error policy for every command (docs/reliability.md).

Expected failures -- a bad or truncated file, a bad option, a missing or read-only folder, a full
disk, a refused checkpoint -- are raised as `UserError` (or one of the OSError family) and printed by
`run_main` as ONE line on stderr::

    error: PATH: what is wrong; what to do

with exit code `EXIT_USER` (2, the same code argparse uses for a bad option). No traceback unless
`--debug` is on the command line (or TXFM_DEBUG=1). Anything else is a bug: one line saying so,
exit `EXIT_BUG` (3), and the traceback with --debug.
"""
from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import struct
import sys
import zipfile
import zlib
from typing import Callable, Iterator, Sequence

EXIT_OK = 0
EXIT_PROBLEMS = 1      # a check ran and found problems (e.g. `precompute validate` on a damaged bundle)
EXIT_USER = 2          # expected failure: bad input, bad option, I/O refused; the message says the fix
EXIT_BUG = 3           # unexpected exception: a defect in this code (rerun with --debug, report it)
EXIT_INTERRUPTED = 130

DEBUG_FLAG = "--debug"

# For each command's --help (argparse epilog).
EXIT_CODES_HELP = ("exit codes: 0 done; 1 a check found problems (validate); 2 bad input, option or output folder "
                   "(one 'error:' line naming the file or option and the fix); 3 internal error; 130 interrupted. "
                   "Add --debug for the traceback. Output rules: docs/reliability.md")


class UserError(Exception):
    """An expected failure whose message names the file or option, the problem and the fix."""


# Library messages that advise unsafe loading must never reach a user (they would undo the
# weights_only / allow_pickle=False protections): such sentences are cut from any message shown.
_UNSAFE_ADVICE = re.compile(r"weights_only|allow_pickle|safe_globals|allowlist|trust(ed)? (the )?source|"
                            r"trust this|arbitrary code|can still be loaded|documentation of torch\.load",
                            re.IGNORECASE)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


def strip_unsafe_advice(text: str) -> str:
    """`text` without the sentences that advise loading a file unsafely (torch's `weights_only=False`,
    numpy's `allow_pickle=True`, allow-listing globals), keeping the diagnosis (e.g. the refused type)."""
    text = _ANSI.sub("", str(text))
    text = re.sub(r"\s*when allow_pickle\s*=\s*False", " (object arrays are refused for safety)", text)
    kept = [s.strip() for s in _SENTENCE.split(text) if s.strip() and not _UNSAFE_ADVICE.search(s)]
    return " ".join(kept)

_OS_FIXES = {
    errno.ENOSPC: "the disk is full; free some space or write to another folder",
    errno.EDQUOT: "the disk quota is exhausted; free some space or write to another folder",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.EACCES: "permission denied; choose a folder you can write to (or fix its permissions)",
    errno.EPERM: "operation not permitted; choose a folder you own",
    errno.ENOENT: "no such file or folder; check the path",
    errno.EISDIR: "is a folder, expected a file; pass a file path",
    errno.ENOTDIR: "a part of the path is a file, expected a folder; check the path",
    errno.ENOTEMPTY: "folder is not empty",
    errno.EEXIST: "already exists",
    errno.EFBIG: "the file is larger than this file system (or a `ulimit -f` size limit) allows; write to another folder",
    errno.EIO: "input/output error from the disk; check the disk (dmesg) or write to another folder",
}

# errnos that mean "this folder cannot take the output": reported as one line naming the path,
# wherever they surface (also wrapped inside a library's RuntimeError, as torch.save does).
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                          errno.EIO})
# What libraries raise when a write stops part-way without an errno: numpy's tofile/np.save
# ("67136 requested and 54240 written"), torch.save ("[enforce fail at inline_container.cc] unexpected
# pos", "PytorchStreamWriter failed", "file write failed", "iostream error"), Arrow ("Error writing bytes").
_SHORT_WRITE = re.compile(r"requested and \d+ written|unexpected pos|file write failed|PytorchStreamWriter failed|"
                          r"iostream error|error writing bytes", re.IGNORECASE)
FULL_BELOW_BYTES = 1 << 20      # a file system with less free space than this counts as full


def exception_chain(e: BaseException, limit: int = 8):
    """`e`, then what it was raised from or while handling (``__cause__``, else ``__context__``)."""
    seen = set()
    while e is not None and id(e) not in seen and len(seen) < limit:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def write_errno(e: BaseException) -> OSError | None:
    """The first OSError in `e`'s chain whose errno says the output cannot be written (disk full, quota,
    read-only, permission, too large, I/O error), or None."""
    for x in exception_chain(e):
        if isinstance(x, OSError) and x.errno in WRITE_ERRNOS:
            return x
    return None


def is_short_write(e: BaseException) -> bool:
    """Whether `e` is a library's report of a write that stopped part-way (see _SHORT_WRITE)."""
    return isinstance(e, (OSError, RuntimeError)) and getattr(e, "errno", None) is None and \
        bool(_SHORT_WRITE.search(str(e)))


def disk_problem(path: str | os.PathLike) -> int | None:
    """Why the file system holding `path` cannot take writes now: EROFS (mounted read-only), ENOSPC
    (under FULL_BELOW_BYTES free, counting what this user may use), EACCES (folder not writable), or
    None when none of these holds."""
    probe = os.path.abspath(os.fspath(path))
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    try:
        st = os.statvfs(probe)
    except OSError:
        return None
    if st.f_flag & getattr(os, "ST_RDONLY", 1):
        return errno.EROFS
    free = (st.f_bfree if hasattr(os, "geteuid") and os.geteuid() == 0 else st.f_bavail) * st.f_frsize
    if free < FULL_BELOW_BYTES:
        return errno.ENOSPC
    folder = probe if os.path.isdir(probe) else os.path.dirname(probe)
    if not os.access(folder, os.W_OK):
        return errno.EACCES
    return None


def write_failure(e: BaseException, path: str | os.PathLike, scratch: str | os.PathLike | None = None) -> BaseException:
    """What to raise for `e`, raised while writing the output `path`: an OSError naming the path and the
    cause (disk full, quota, read-only, permission, too large, I/O error) when `e` is such a failure,
    also when a library wrapped it (torch.save's RuntimeError) or reported only a short write (numpy's
    "N requested and M written": the cause is then read from the file system); `e` itself otherwise.

    Call it BEFORE deleting the partial output (the free space it took is part of the diagnosis).
    `scratch`: the temporary file or staging folder being written for `path`; an errno naming a file
    in it is reported under `path` instead (the scratch copy is deleted), other file names are kept.
    """
    found = write_errno(e)
    if found is not None:
        name = getattr(found, "filename2", None) or found.filename     # a copy's failure is about its target
        if name is not None and scratch is not None:
            rel = os.path.relpath(os.path.abspath(os.fspath(name)), os.path.abspath(os.fspath(scratch)))
            if rel == ".":
                name = None
            elif not rel.startswith(".."):
                name = os.path.join(os.fspath(path), rel)
        if found is e and name == found.filename and name is not None and not getattr(e, "filename2", None):
            return e
        return OSError(found.errno, found.strerror or os.strerror(found.errno), os.fspath(path) if name is None else name)
    if is_short_write(e):
        cause = disk_problem(path)
        if cause is not None:
            return OSError(cause, os.strerror(cause), os.fspath(path))
        return UserError(f"{os.fspath(path)}: the write stopped part-way ({one_line(str(e))[:160]}); check that its "
                         "disk has free space and is writable, then run the command again")
    return e


def one_line(text: str) -> str:
    """Collapse a message to one line and cut advice to load files unsafely."""
    text = strip_unsafe_advice(text)
    parts = [p.strip() for p in str(text).splitlines() if p.strip()]
    line = "; ".join(parts) if parts else "unknown error"
    return re.sub(r"\s+", " ", line).strip()


def describe_os_error(e: OSError) -> str:
    """'PATH: problem; fix' for an OSError, without Python's '[Errno N]' noise."""
    where = e.filename if e.filename is not None else ""
    if getattr(e, "filename2", None):
        where = f"{where} -> {e.filename2}"
    what = _OS_FIXES.get(e.errno or -1, e.strerror or str(e))
    return f"{where}: {what}" if where else what


def message_for(e: BaseException) -> str:
    """The one-line message printed for an expected failure."""
    if isinstance(e, OSError) and not isinstance(e, UserError) and e.errno is not None:
        return one_line(describe_os_error(e))
    cause = write_errno(e) if not isinstance(e, UserError) else None
    if cause is not None:             # e.g. torch.save's RuntimeError raised while handling ENOSPC
        return one_line(describe_os_error(cause))
    if is_short_write(e):
        return one_line(f"{e}; a write stopped part-way: check that the output's disk has free space and is writable")
    return one_line(str(e) or type(e).__name__)


# OSErrors that say a file cannot be reached (missing, permission, I/O) rather than that its content is
# damaged; torch reports a truncated checkpoint as EINVAL, which counts as damaged.
ACCESS_ERRNOS = frozenset({errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EIO,
                           errno.ELOOP, errno.ENAMETOOLONG})

# What readers of numpy (.npy/.npz), zip, Parquet/Arrow, HDF5 and torch files raise on a damaged or
# truncated file (an OSError without errno comes from h5py and Arrow; a RuntimeError from torch).
DAMAGED_FILE_ERRORS = (ValueError, EOFError, KeyError, IndexError, zipfile.BadZipFile, zlib.error, struct.error,
                       pickle.UnpicklingError, RuntimeError)


@contextlib.contextmanager
def reading(path: str | os.PathLike, fix: str, what: str = "file", error: type[Exception] = UserError,
            also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Read `path` inside this block: a damaged or truncated file becomes ONE `error` naming the file,
    what it should be and `fix` (something the user can do with the command at hand), e.g.
    ``data/shards/shard-00003.npz: corpus shard is damaged or truncated (BadZipFile: File is not a zip
    file); rebuild the corpus ...``. An `error` raised inside passes unchanged; an OSError with an errno
    (missing file, permission, I/O: ACCESS_ERRNOS) keeps its own meaning, with `path` filled in when it
    had none. `also`: more exception types that mean a damaged file for this reader (e.g. Exception for
    pyarrow, whose errors derive from TypeError and NotImplementedError too)."""
    try:
        yield
    except (error, UserError):
        raise
    except OSError as e:
        if e.errno in ACCESS_ERRNOS:
            if e.filename is None:
                e.filename = os.fspath(path)
            raise
        raise error(f"{os.fspath(path)}: {what} is damaged or truncated ({type(e).__name__}: "
                    f"{one_line(str(e))[:160]}); {fix}") from e
    except (*DAMAGED_FILE_ERRORS, *also) as e:
        raise error(f"{os.fspath(path)}: {what} is damaged or truncated ({type(e).__name__}: "
                    f"{one_line(str(e) or type(e).__name__)[:160]}); {fix}") from e


def debug_requested(argv: Sequence[str] | None) -> bool:
    args = sys.argv[1:] if argv is None else list(argv)
    return DEBUG_FLAG in args or os.environ.get("TXFM_DEBUG", "") not in ("", "0")


def strip_debug(argv: Sequence[str] | None) -> list[str]:
    """argv without --debug, so subcommand parsers need not declare it."""
    args = sys.argv[1:] if argv is None else list(argv)
    return [a for a in args if a != DEBUG_FLAG]


def run_main(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None,
             expected: tuple[type[BaseException], ...] = ()) -> int:
    """Run a command's `main(argv)` under the error policy and return its exit code.

    `expected` adds room-specific exception types that carry a user-facing message (e.g. a
    `BundleError`); `UserError`, `OSError`, `ValueError` and `FileNotFoundError` always count.
    argparse's own exit (usage error, --help) passes through unchanged.
    """
    debug = debug_requested(argv)
    args = strip_debug(argv)
    try:
        code = main(args)
        return EXIT_OK if code is None else int(code)
    except SystemExit as e:         # argparse (--help: 0, usage: 2) or an explicit SystemExit("message")
        if isinstance(e.code, str):
            if debug:
                raise
            print(f"error: {one_line(e.code)}", file=sys.stderr)
            return EXIT_USER
        return EXIT_OK if e.code is None else int(e.code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UserError, OSError, ValueError, *expected) as e:
        if debug:
            raise
        print(f"error: {message_for(e)}", file=sys.stderr)
        return EXIT_USER
    except Exception as e:  # noqa: BLE001 -- a defect: say so in one line, traceback with --debug
        if debug:
            raise
        if write_errno(e) is not None or is_short_write(e):   # a library wrapped a full disk: not a defect
            print(f"error: {message_for(e)}", file=sys.stderr)
            return EXIT_USER
        print(f"internal error ({type(e).__name__}): {message_for(e)} -- rerun with --debug for the "
              "traceback and report it", file=sys.stderr)
        return EXIT_BUG
