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


# ---- the app (Streamlit AppTest) --------------------------------------------------------------
APP_MAIN = str(Path(__file__).resolve().parents[2] / "app" / "main.py")
_MD_ESCAPE = __import__("re").compile(r"\\([!-/:-@\[-`{-~])")


def md_unescape(md: str) -> str:
    """Markdown source as the viewer reads it (backslash escapes removed)."""
    return _MD_ESCAPE.sub(r"\1", md)


def _strip_code_spans(md: str) -> str:
    """Markdown source without its inline code spans (which render literally)."""
    import re
    out, i = [], 0
    while i < len(md):
        if md[i] == "\\" and i + 1 < len(md):
            out.append(md[i:i + 2])
            i += 2
            continue
        m = re.match(r"`+", md[i:])
        if m:
            fence = m.group(0)
            end = md.find(fence, i + len(fence))
            while end != -1 and (md[end + len(fence):end + len(fence) + 1] == "`" or md[end - 1] == "`"):
                end = md.find(fence, end + 1)
            if end != -1:
                i = end + len(fence)
                continue
            out.append(fence)
            i += len(fence)
            continue
        out.append(md[i])
        i += 1
    return "".join(out)


def assert_inert_markdown(md: str) -> None:
    """Nothing in a Markdown source (outside code spans) can render as a link, an image, HTML, a
    Streamlit directive or a GFM autolink: every such character is backslash-escaped."""
    import re
    rest = _strip_code_spans(md)
    unescaped = re.sub(r"\\.", "", rest)          # drop escaped characters
    for pattern in (r"\]\(", r"<[a-zA-Z/!]", r"https?:", r"www\.", r"\[", r"javascript:", r":\w+\["):
        assert not re.search(pattern, unescaped), f"{pattern!r} is live Markdown in {md!r}"


def app_run(root: Path, page: str = "overview", **params):
    """Run the app on bundles folder `root` from a URL with `params`, switch to `page`, and return the
    AppTest. No exception may escape."""
    from streamlit.testing.v1 import AppTest
    import os
    old = os.environ.get("TXFM_BUNDLES")
    os.environ["TXFM_BUNDLES"] = str(root)
    try:
        at = AppTest.from_file(APP_MAIN, default_timeout=120)
        at.query_params.update(params)
        at.run()
        if page != "overview":
            at.switch_page(f"views/{page}.py").run()
    finally:
        if old is None:
            os.environ.pop("TXFM_BUNDLES", None)
        else:
            os.environ["TXFM_BUNDLES"] = old
    assert not at.exception, [e.value for e in at.exception]
    return at


def page_markdown(at) -> list[str]:
    """Every Markdown source the page rendered (messages, titles, captions, text, labels)."""
    out = []
    for kind in ("error", "warning", "info", "success", "caption", "markdown", "title", "header",
                 "subheader", "expander"):
        for e in getattr(at, kind, []) if kind != "expander" else at.get("expander"):
            v = getattr(e, "value", None) if kind != "expander" else getattr(e, "label", None)
            if v is not None:
                out.append(str(v))
    for w in list(at.button) + list(at.selectbox) + list(at.slider) + list(at.text_input) + list(at.text_area):
        if getattr(w, "label", None):
            out.append(str(w.label))
    return out


def assert_one_problem(at, fragment: str, kind: str = "error") -> str:
    """The page shows exactly one `kind` message, on one line, containing `fragment`, and no
    traceback or exception. Returns the message as the viewer reads it."""
    assert not at.exception, [e.value for e in at.exception]
    msgs = [md_unescape(str(e.value)) for e in getattr(at, kind)]
    assert len(msgs) == 1, f"expected one {kind}, got {msgs}"
    msg = msgs[0]
    assert "\n" not in msg.strip(), msg
    assert "Traceback" not in msg and 'File "' not in msg, msg
    assert fragment.lower() in msg.lower(), f"{fragment!r} not in {msg!r}"
    return msg


def reseal(bundle: Path) -> None:
    """After editing files of a bundle copy, record their new sizes/hashes in its manifest (so the
    edit is a *content* change the validator's size check cannot see)."""
    import json
    from precompute.bundle.files import file_table
    mf = Path(bundle) / "manifest.json"
    m = json.loads(mf.read_text())
    m["files"] = file_table(Path(bundle))
    mf.write_text(json.dumps(m, indent=1))


def copy_bundle(src: Path, root: Path, name: str | None = None) -> Path:
    """Copy bundle `src` into bundles folder `root` (created) and return the copy."""
    import shutil
    root.mkdir(parents=True, exist_ok=True)
    dst = root / (name or Path(src).name)
    shutil.copytree(src, dst)
    return dst
