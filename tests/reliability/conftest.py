"""Harness for the bad-input catalogue (docs/reliability.md).

Each case runs a command in-process under the common error policy (fast: no interpreter start per
case), with the working directory set to a fresh temporary folder, and asserts
- the exit code,
- ONE line on stderr containing a stable fragment of the message (no traceback),
- that nothing outside the case's temporary folder changed, and that the files the case declares
  precious (its inputs, an existing output) are byte-identical afterwards.
"""
from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.errors import run_main

ROOMS = {"data": "data.__main__", "txfm": "txfm.__main__", "precompute": "precompute.cli",
         "evaluation": "evaluation.cli"}


def tree_hash(root: Path) -> dict[str, str]:
    """{relative path: sha256 (or 'dir')} of everything under root, hidden files included."""
    root = Path(root)
    out: dict[str, str] = {}
    if not root.exists():
        return out
    if root.is_file():
        return {".": hashlib.sha256(root.read_bytes()).hexdigest()}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@dataclass
class Result:
    code: int
    stderr: str
    stdout: str

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip() and not ln.startswith(("\r", "  0%"))]


def _main_of(room: str):
    mod = importlib.import_module(ROOMS[room])
    return mod.main


def _expected_of(room: str) -> tuple:
    """The room's extra expected exceptions, as its `python -m ROOM` entry point passes them."""
    mod = importlib.import_module(ROOMS[room].split(".")[0] + ".__main__") if room in ("txfm", "data") else None
    return mod.expected_errors() if mod is not None and hasattr(mod, "expected_errors") else ()


@pytest.fixture
def cli(tmp_path, capsys, monkeypatch):
    """cli(room, *argv) -> Result, run with cwd = tmp_path."""
    monkeypatch.chdir(tmp_path)

    def run(room: str, *argv: str) -> Result:
        capsys.readouterr()
        code = run_main(_main_of(room), [str(a) for a in argv], expected=_expected_of(room))
        cap = capsys.readouterr()
        return Result(code, cap.err, cap.out)
    return run


def assert_refused(res: Result, fragment: str, code: int = 2) -> None:
    """Exit `code`, and the last stderr line is one 'error: ...' line containing `fragment`."""
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith(("error:", "internal error"))]
    assert res.code == code, f"exit {res.code}, expected {code}; stderr:\n{res.stderr}"
    assert "Traceback" not in res.stderr, res.stderr
    assert len(errors) == 1, f"expected one error line, got:\n{res.stderr}"
    assert errors[0].startswith("error:"), errors[0]
    assert fragment.lower() in errors[0].lower(), f"{fragment!r} not in {errors[0]!r}"


@pytest.fixture
def unchanged():
    """unchanged(*paths) -> context manager asserting the paths' trees are identical afterwards."""
    import contextlib

    @contextlib.contextmanager
    def check(*paths):
        before = {str(p): tree_hash(Path(p)) for p in paths}
        yield
        after = {str(p): tree_hash(Path(p)) for p in paths}
        for p in before:
            assert before[p] == after[p], f"{p} changed: {sorted(set(before[p].items()) ^ set(after[p].items()))[:6]}"
    return check


def no_leftovers(folder: Path) -> None:
    """No staging, partial or temporary files anywhere under folder."""
    bad = [p for p in Path(folder).rglob("*")
           if any(t in p.name for t in (".staging-", ".replaced-", ".partial", ".tmp"))]
    assert not bad, f"leftovers: {bad}"
