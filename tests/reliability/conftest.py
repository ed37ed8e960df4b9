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

import numpy as np
import pandas as pd
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


# ---- the shared world of the command-line cases (built once per session) ---------------------
FAST = ["--quiet", "--k", "8", "--null-size", "60", "--umap-epochs", "20", "--resolutions", "1"]
G = 120


def _counts(seed=0, n=96):
    rng = np.random.default_rng(seed)
    programs = rng.integers(0, 6, G)
    return rng.poisson(rng.gamma(2.0, 1.0, (n, 6))[:, programs] * rng.gamma(2.0, 1.0, G) * 3), programs


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """Inputs shared by all cases (never written by a case): corpus, trained run, references,
    bundle, comparison, PCA baseline, embeddings, an h5ad source and a built corpus."""
    import anndata

    from precompute.cli import main as pmain
    from precompute.bundle.synthetic import write_synthetic_references
    from txfm.config import TrainConfig, model_config
    from txfm.corpus import CorpusWriter
    from txfm.trainer import train

    root = tmp_path_factory.mktemp("world")
    counts, programs = _counts()
    genes = [f"SYN{i:05d}" for i in range(G)]
    with CorpusWriter(root / "corpus", genes, [f"ENSG9{i:010d}" for i in range(G)], shard_size=64) as w:
        d = w.add_dataset("toy", np.arange(G))
        w.add_samples(d, counts, pd.DataFrame({"batch": np.repeat(["a", "b"], len(counts) // 2)}))
    cfg = TrainConfig(corpus=str(root / "corpus"), out=str(root / "run"), reveal=64, batch_size=32,
                      max_steps=2, val_every=0, log_every=1, save_every=2, device="cpu", precision="fp32")
    train(cfg, model_config("tiny", G, dim=32, depth=1, heads=2, decoder_depth=1), quiet=True)
    ref = write_synthetic_references(root / "refs", genes, programs, pairs_per_source=60)
    assert pmain(["run", "--checkpoint", str(root / "run" / "last.pt"), "--references", str(ref),
                  "--out", str(root / "bundle"), *FAST]) == 0
    from precompute.bundle.compare import compare_bundles
    compare_bundles(root / "bundle", root / "bundle", root / "comparison")
    from txfm.baseline import PCAConfig, run_baseline
    run_baseline(str(root / "corpus"), root / "pca.pt", PCAConfig(n_components=4, min_cells=1))
    np.savez(root / "emb.npz", cls=np.zeros((2, 3)), sample_id=np.array(["a", "b"]))
    a = anndata.AnnData(X=counts[:, :30].astype(np.float32))
    a.var_names = genes[:30]
    a.obs_names = [f"c{i}" for i in range(len(counts))]
    a.write_h5ad(root / "src.h5ad")
    from data.corpus.build import BuildConfig, build_corpus
    from data.corpus.curation import CurationConfig
    build_corpus([root / "src.h5ad"], root / "built", BuildConfig(curation=CurationConfig(min_cells=1, min_genes=1)),
                 gene_table="none", log=lambda m: None)
    (root / "perturbation").mkdir()
    for f in ("run.json", "perturbation.csv"):
        (root / "perturbation" / f).write_text("{}\n")
    return root


@pytest.fixture
def W(world, tmp_path):
    """The world, plus a check that no case changed it (it lies outside the case's tmp folder)."""
    before = tree_hash(world)
    yield world
    assert tree_hash(world) == before, "a case changed files outside its tmp folder"
    no_leftovers(tmp_path)


def run_args(W, out, *extra):
    return ["run", "--checkpoint", W / "run" / "last.pt", "--references", W / "refs", "--out", out, *FAST, *extra]


def train_args(W, out, *extra):
    return ["train", "--corpus", W / "corpus", "--out", out, "--reveal", "64", "--batch-size", "32",
            "--max-steps", "2", "--val-every", "0", "--log-every", "1", "--save-every", "2", "--device", "cpu",
            "--precision", "fp32", "--dim", "32", "--depth", "1", "--heads", "2", "--decoder-depth", "1", *extra]


# ---- the app (Streamlit AppTest) --------------------------------------------------------------
APP_MAIN = str(Path(__file__).resolve().parents[2] / "app" / "main.py")
_MD_ESCAPE = __import__("re").compile(r"\\([!-/:-@\[-`{-~])")


def md_unescape(md: str) -> str:
    """Markdown source as the viewer reads it (backslash escapes and the invisible word joiners that stop
    auto-linking removed)."""
    return _MD_ESCAPE.sub(r"\1", md).replace("\u2060", "")


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
    # GFM autolink literals are found after escapes are resolved: a scheme, www. or an e-mail's @ must
    # follow a word joiner (app.text.unlink), or the browser links it
    resolved = _MD_ESCAPE.sub(r"\1", rest)
    for m in re.finditer(r"(?i)(https?:|ftp:|mailto:|xmpp:|www\.|@)", resolved):
        assert resolved[m.start() - 1:m.start()] == "\u2060", f"{m.group(0)!r} would be auto-linked in {md!r}"


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
