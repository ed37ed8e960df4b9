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

import errno
import os
import re
import sys
from typing import Callable, Sequence

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
}


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
    return one_line(str(e) or type(e).__name__)


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
        print(f"internal error ({type(e).__name__}): {message_for(e)} -- rerun with --debug for the "
              "traceback and report it", file=sys.stderr)
        return EXIT_BUG
