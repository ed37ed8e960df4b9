"""Bad-input catalogue, parts 1 and 5 of docs/reliability.md: output folders and the one error policy.

Every case runs a real command in-process (tests/reliability/conftest.py) with cwd = a fresh tmp
folder and asserts the exit code, ONE 'error:' line holding a stable fragment (no traceback), that
the files it declares precious are byte-identical afterwards, that nothing outside tmp changed (the
shared module fixtures are hashed around every case) and that no staging/partial/temp file is left.
"""
from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import run_main
from tests.reliability.conftest import FAST, assert_refused, run_args, train_args, tree_hash

ROOT = Path(__file__).resolve().parents[2]


def notebook_folder(tmp: Path, name="mine") -> Path:
    d = tmp / name
    (d / "figures").mkdir(parents=True)
    (d / "analysis.ipynb").write_text('{"cells": []}\n')
    (d / "figures" / "fig1.png").write_bytes(b"\x89PNG fake")
    return d


def copy(src: Path, dst: Path) -> Path:
    (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    return dst


# --------------------------------------------------------------------------- refusals (exit 2)
# (id, room, setup(W, tmp) -> (argv, precious paths), message fragment)
def _foreign(room, argv_fn, fragment):
    def setup(W, tmp):
        d = notebook_folder(tmp)
        return argv_fn(W, d), [d]
    return room, setup, fragment


def _own(room, make, argv_fn, fragment="already exists there; pass --overwrite"):
    def setup(W, tmp):
        o = make(W, tmp)
        return argv_fn(W, o), [o]
    return room, setup, fragment


def _under_file(room, argv_fn):
    def setup(W, tmp):
        (tmp / "afile").write_text("x")
        return argv_fn(W, tmp / "afile" / "sub" / "out"), [tmp / "afile"]
    return room, setup, "is a file"


REFUSED = {
    # precompute
    "precompute-run-foreign-folder": _foreign("precompute", lambda W, o: run_args(W, o), "is not a bundle"),
    "precompute-run-outdated-bundle-no-flag": _own(
        "precompute", lambda W, t: copy(W / "bundle", t / "b"), lambda W, o: run_args(W, o, "--k", "6"),
        "step 'knn' has other inputs or parameters); pass --overwrite"),
    "precompute-run-force-needs-overwrite": _own(
        "precompute", lambda W, t: copy(W / "bundle", t / "b"), lambda W, o: run_args(W, o, "--force"),
        "also pass --overwrite"),
    "precompute-run-out-holds-checkpoint": (
        "precompute", lambda W, t: (run_args(W, W / "run"), [W / "run"]), "contains the input"),
    "precompute-run-out-under-a-file": _under_file("precompute", lambda W, o: run_args(W, o)),
    "precompute-run-truncated-checkpoint": (
        "precompute", lambda W, t: (["run", "--checkpoint", _truncated(W, t), "--references", W / "refs",
                                     "--out", t / "b", *FAST], []), "not a readable TxFM checkpoint"),
    "precompute-run-bad-rank-option": (
        "precompute", lambda W, t: (run_args(W, t / "b", "--rank", "decoder=big"), []), "--rank 'decoder=big'"),
    "precompute-run-missing-references": (
        "precompute", lambda W, t: (["run", "--checkpoint", W / "run" / "last.pt", "--references", t / "nope",
                                     "--out", t / "b"], []), "reference folder not found"),
    "precompute-compare-foreign-folder": _foreign(
        "precompute", lambda W, o: ["compare", W / "bundle", W / "bundle", "--out", o], "is not a bundle comparison"),
    "precompute-compare-existing-no-flag": _own(
        "precompute", lambda W, t: copy(W / "comparison", t / "c"),
        lambda W, o: ["compare", W / "bundle", W / "bundle", "--out", o]),
    "precompute-compare-not-a-bundle": (
        "precompute", lambda W, t: (["compare", notebook_folder(t), W / "bundle", "--out", t / "c"], [t / "mine"]),
        "into a NEW folder"),
    "precompute-synthetic-existing-no-flag": _own(
        "precompute", lambda W, t: copy(W / "bundle", t / "b"), lambda W, o: ["synthetic", "--out", o, "--quiet"]),
    "precompute-synthetic-bad-dims": (
        "precompute", lambda W, t: (["synthetic", "--out", t / "b", "--dims", "codebook=wide"], []), "--dims"),
    # txfm
    "txfm-train-existing-run": _own(
        "txfm", lambda W, t: copy(W / "run", t / "run"), lambda W, o: train_args(W, o), "pass --resume to continue"),
    "txfm-train-foreign-folder": _foreign("txfm", lambda W, o: train_args(W, o), "is not a training run"),
    "txfm-train-resume-changed-options": _own(
        "txfm", lambda W, t: copy(W / "run", t / "run"),
        lambda W, o: ["train", "--corpus", W / "corpus", "--out", o, "--resume", "--lr", "0.01", "--batch-size", "16"],
        "--batch-size 32 -> 16; --lr 0.001 -> 0.01"),
    "txfm-train-resume-changed-model-option": _own(
        "txfm", lambda W, t: copy(W / "run", t / "run"),
        lambda W, o: ["train", "--corpus", W / "corpus", "--out", o, "--resume", "--dim", "64"], "--dim 32 -> 64"),
    "txfm-train-resume-max-steps-below-current": _own(
        "txfm", lambda W, t: copy(W / "run", t / "run"),
        lambda W, o: ["train", "--corpus", W / "corpus", "--out", o, "--resume", "--max-steps", "1"],
        "already at step 2"),
    "txfm-train-resume-nothing-there": (
        "txfm", lambda W, t: (["train", "--corpus", W / "corpus", "--out", t / "new", "--resume"], []),
        "nothing to resume"),
    "txfm-train-resume-and-overwrite": _own(
        "txfm", lambda W, t: copy(W / "run", t / "run"),
        lambda W, o: ["train", "--corpus", W / "corpus", "--out", o, "--resume", "--overwrite"], "choose one"),
    "txfm-embed-foreign-file": (
        "txfm", lambda W, t: (_embed(W, _write(t / "notes.npz", "my notes")), [t / "notes.npz"]),
        "is not a TxFM embeddings file"),
    "txfm-embed-out-is-folder": _foreign("txfm", lambda W, o: _embed(W, o), "is a folder"),
    "txfm-embed-existing-no-flag": _own("txfm", lambda W, t: copy(W / "emb.npz", t / "e.npz"), lambda W, o: _embed(W, o)),
    "txfm-embed-out-is-checkpoint": (
        "txfm", lambda W, t: (_embed(W, W / "run" / "last.pt", "--overwrite"), []), "also an input"),
    "txfm-baseline-pca-out-inside-corpus": (
        "txfm", lambda W, t: (["baseline-pca", "--corpus", W / "corpus", "--out", W / "corpus" / "pca.pt"], []),
        "lies inside the input folder"),
    "txfm-baseline-pca-over-checkpoint": _own(
        "txfm", lambda W, t: copy(W / "run" / "last.pt", t / "model.pt"),
        lambda W, o: ["baseline-pca", "--corpus", W / "corpus", "--out", o, "--overwrite"],
        "is not a PCA baseline file"),
    "txfm-baseline-pca-existing-no-flag": _own(
        "txfm", lambda W, t: copy(W / "pca.pt", t / "pca.pt"),
        lambda W, o: ["baseline-pca", "--corpus", W / "corpus", "--out", o]),
    "txfm-embed-unsafe-checkpoint": (
        "txfm", lambda W, t: (_embed(W, t / "e.npz", ck=_pickled(t)), []), "Unsupported global"),
    # data
    "data-build-corpus-foreign-folder-overwrite": _foreign(
        "data", lambda W, o: _build(W, o, "--overwrite"), "is not a corpus"),
    "data-build-corpus-out-holds-source": (
        "data", lambda W, t: (_build(W, t / "d", "--overwrite", src=copy(W / "src.h5ad", _mk(t / "d") / "s.h5ad")),
                              [t / "d"]), "contains the input"),
    "data-build-corpus-existing-no-flag": _own("data", lambda W, t: copy(W / "built", t / "c"), lambda W, o: _build(W, o)),
    "data-build-corpus-non-integer-source": (
        "data", lambda W, t: (_build(W, t / "c", src=_float_h5ad(t)), []), "log-normalised"),
    "data-fetch-references-foreign-folder": _foreign(
        "data", lambda W, o: ["fetch-references", "--out", o], "is not a reference folder"),
    "data-bench-foreign-work-folder": _foreign(
        "data", lambda W, o: ["bench", "--work", o, "--shared", W], "not a data-bench scratch folder"),
    # evaluation
    "evaluation-perturbation-foreign-folder": _foreign(
        "evaluation", lambda W, o: ["perturbation", "--input", W / "src.h5ad", "--pca", W / "pca.pt", "--out", o],
        "is not a perturbation result folder"),
    "evaluation-perturbation-existing-no-flag": _own(
        "evaluation", lambda W, t: copy(W / "perturbation", t / "p"),
        lambda W, o: ["perturbation", "--input", W / "src.h5ad", "--pca", W / "pca.pt", "--out", o]),
    "evaluation-celltype-foreign-folder": _foreign(
        "evaluation", lambda W, o: ["celltype", "--input", f"{W / 'src.h5ad'}:cell_type", "--out", o],
        "is not a cell-type result folder"),
    "evaluation-ablate-foreign-folder": _foreign(
        "evaluation", lambda W, o: ["ablate", "--corpus", W / "corpus", "--grid", "loss=poisson", "--out", o],
        "is not an ablation folder"),
    "evaluation-ablate-bad-seeds": (
        "evaluation", lambda W, t: (["ablate", "--corpus", W / "corpus", "--grid", "loss=poisson", "--seeds", "a,b",
                                     "--out", t / "abl"], []), "--seeds 'a,b'"),
}


def _mk(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def _truncated(W, t):
    p = t / "truncated.pt"
    p.write_bytes((W / "run" / "last.pt").read_bytes()[:5000])
    return p


def _pickled(t):
    """A checkpoint holding a non-tensor global: torch's refusal advises weights_only=False."""
    import datetime

    import torch
    p = t / "pickled.pt"
    torch.save({"format": "txfm-checkpoint", "when": datetime.date(2020, 1, 1)}, p)
    return p


def _float_h5ad(t):
    import anndata
    p = t / "logged.h5ad"
    a = anndata.AnnData(X=np.log1p(np.arange(12, dtype=np.float32).reshape(4, 3)))
    a.var_names = ["SYN00000", "SYN00001", "SYN00002"]
    a.write_h5ad(p)
    return p


def _embed(W, out, *extra, ck=None):
    return ["embed", "--checkpoint", ck or W / "run" / "last.pt", "--input", W / "corpus", "--out", out, *extra]


def _build(W, out, *extra, src=None):
    return ["build-corpus", "--source", src or W / "src.h5ad", "--out", out, "--gene-table", "none",
            "--min-cells", "1", "--min-genes", "1", *extra]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused(case, cli, W, tmp_path, unchanged):
    room, setup, fragment = REFUSED[case]
    argv, precious = setup(W, tmp_path)
    with unchanged(*precious):
        res = cli(room, *argv)
    assert_refused(res, fragment, code=2)
    assert "weights_only" not in res.stderr and "allow_pickle" not in res.stderr


# --------------------------------------------------------------------------- I/O failures (exit 2)
def test_read_only_parent_is_refused(cli, W, tmp_path, monkeypatch, unchanged):
    """Tests run as root, where os.access says yes: simulate a read-only folder at the check."""
    import common.outputs as co
    ro = _mk(tmp_path / "ro")
    real = co.os.access
    monkeypatch.setattr(co.os, "access", lambda p, m: False if Path(p) == ro else real(p, m))
    for room, argv in [("precompute", run_args(W, ro / "b")), ("data", _build(W, ro / "c")),
                       ("txfm", ["baseline-pca", "--corpus", W / "corpus", "--out", ro / "p.pt"])]:
        with unchanged(ro):
            assert_refused(cli(room, *argv), "folder is not writable", 2)


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device", "somefile")


def test_disk_full_precompute_keeps_previous_bundle(cli, W, tmp_path, monkeypatch, unchanged):
    import precompute.steps as steps
    b = copy(W / "bundle", tmp_path / "b")
    monkeypatch.setattr(steps, "save_npy", _enospc)       # the kNN step writes .npy files
    with unchanged(b):
        res = cli("precompute", *run_args(W, b, "--k", "6", "--overwrite"))
    assert_refused(res, "disk is full", 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_disk_full_build_corpus_keeps_previous_corpus(cli, W, tmp_path, monkeypatch, unchanged):
    import data.corpus.build as cb
    c = copy(W / "built", tmp_path / "c")
    monkeypatch.setattr(cb, "atomic_write_text", _enospc)  # the report, written last
    with unchanged(c):
        assert_refused(cli("data", *_build(W, c, "--overwrite")), "disk is full", 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_disk_full_embed_keeps_previous_file(cli, W, tmp_path, monkeypatch, unchanged):
    e = copy(W / "emb.npz", tmp_path / "e.npz")
    monkeypatch.setattr(np, "savez", _enospc)
    with unchanged(e):
        assert_refused(cli("txfm", *_embed(W, e, "--overwrite")), "disk is full", 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npz"]


def test_disk_full_compare_keeps_previous_comparison(cli, W, tmp_path, monkeypatch, unchanged):
    import precompute.bundle.compare as pc
    c = copy(W / "comparison", tmp_path / "c")
    monkeypatch.setattr(pc, "write_json_atomic", _enospc)
    with unchanged(c):
        assert_refused(cli("precompute", "compare", W / "bundle", W / "bundle", "--out", c, "--overwrite"),
                       "disk is full", 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


# --------------------------------------------------------------------------- allowed (exit 0)
def test_run_up_to_date_bundle_writes_nothing(cli, W, tmp_path, unchanged):
    b = copy(W / "bundle", tmp_path / "b")
    with unchanged(b):
        res = cli("precompute", *run_args(W, b))
    assert res.code == 0 and "up to date" in res.stdout


def test_run_overwrite_replaces_only_the_bundle(cli, W, tmp_path, unchanged):
    b = copy(W / "bundle", tmp_path / "b")
    nb = notebook_folder(tmp_path)
    stale = _mk(tmp_path / f".b.staging-{2**22 + 12345}-deadbeef")      # left by a killed run (no such PID)
    old = json.loads((b / "manifest.json").read_text())
    with unchanged(nb):
        res = cli("precompute", *run_args(W, b, "--k", "6", "--overwrite"))
    assert res.code == 0, res.stderr
    new = json.loads((b / "manifest.json").read_text())
    assert new["steps"]["knn"]["params"]["k"] == 6 and new["steps"]["subspaces"] == old["steps"]["subspaces"]
    assert not stale.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["b", "mine"]
    assert run_main(__import__("precompute.cli", fromlist=["main"]).main, ["validate", str(b)]) == 0


def test_compare_overwrite_replaces_comparison(cli, W, tmp_path):
    c = copy(W / "comparison", tmp_path / "c")
    (c / "comparison.json").write_text(json.dumps({"format": "txfm-bundle-comparison", "stale": True}))
    res = cli("precompute", "compare", W / "bundle", W / "bundle", "--out", c, "--overwrite")
    assert res.code == 0 and "stale" not in json.loads((c / "comparison.json").read_text())


def test_build_corpus_overwrite_replaces_corpus(cli, W, tmp_path):
    c = copy(W / "built", tmp_path / "c")
    (c / "extra-stale-shard.npz").write_bytes(b"old")
    res = cli("data", *_build(W, c, "--overwrite"))
    assert res.code == 0, res.stderr
    assert not (c / "extra-stale-shard.npz").exists() and (c / "report.json").is_file()


def test_train_resume_extends_max_steps(cli, W, tmp_path):
    from txfm.checkpoint import load_file
    r = copy(W / "run", tmp_path / "run")
    res = cli("txfm", "train", "--corpus", W / "corpus", "--out", r, "--resume", "--max-steps", "4",
              "--save-every", "2", "--workers", "0", "--lr", "0.001")       # --lr equal to the run's own: fine
    assert res.code == 0, res.stderr
    ck = load_file(r / "last.pt")
    assert ck["step"] == 4 and ck["train_config"]["max_steps"] == 4


def test_train_overwrite_replaces_run(cli, W, tmp_path):
    r = copy(W / "run", tmp_path / "run")
    (r / "step-0009999.pt").write_bytes((r / "last.pt").read_bytes())        # a later checkpoint of the old run
    res = cli("txfm", *train_args(W, r, "--overwrite", "--seed", "3"))
    assert res.code == 0, res.stderr
    assert not (r / "step-0009999.pt").exists()
    assert json.loads((r / "config.json").read_text())["train"]["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_embed_and_baseline_overwrite_own_file(cli, W, tmp_path):
    e = copy(W / "emb.npz", tmp_path / "e.npz")
    assert cli("txfm", *_embed(W, e, "--overwrite")).code == 0
    assert np.load(e)["cls"].shape[0] == 96
    p = copy(W / "pca.pt", tmp_path / "p.pt")
    assert cli("txfm", "baseline-pca", "--corpus", W / "corpus", "--out", p, "--overwrite",
               "--n-components", "3", "--min-cells", "1").code == 0
    assert sorted(x.name for x in tmp_path.iterdir()) == ["e.npz", "p.pt"]


# --------------------------------------------------------------------------- policy details
def test_validate_damaged_bundle_exits_1(cli, W, tmp_path):
    b = copy(W / "bundle", tmp_path / "b")
    with open(b / "genes.parquet", "ab") as f:
        f.write(b"tampered")
    res = cli("precompute", "validate", b)
    assert res.code == 1 and "INVALID" in res.stdout and "Traceback" not in res.stderr


def test_bad_option_is_argparse_exit_2(cli, W, tmp_path):
    res = cli("txfm", *train_args(W, tmp_path / "r", "--lr", "fast"))
    assert res.code == 2 and "invalid float value: 'fast'" in res.stderr and "Traceback" not in res.stderr


def test_debug_reraises_for_the_traceback(W, tmp_path, monkeypatch):
    from precompute.cli import main
    from txfm.checkpoint import CheckpointError
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError):
        run_main(main, ["run", "--checkpoint", str(_truncated(W, tmp_path)), "--out", "b", "--debug"])


def test_debug_traceback_in_a_real_process(W, tmp_path):
    """The module entry point: one line without --debug, the traceback with it."""
    bad = _truncated(W, tmp_path)
    cmd = [sys.executable, "-m", "precompute", "run", "--checkpoint", str(bad), "--references", str(W / "refs"),
           "--out", str(tmp_path / "b")]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    plain = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert plain.returncode == 2 and plain.stderr.count("\n") == 1 and plain.stderr.startswith("error: ")
    debug = subprocess.run(cmd + ["--debug"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "CheckpointError" in debug.stderr


def test_unexpected_exception_is_exit_3_one_line(cli, W, tmp_path, monkeypatch):
    import precompute.cli as pc

    def boom(a):
        raise KeyError("surprise")
    monkeypatch.setattr(pc, "cmd_validate", boom)
    monkeypatch.setattr(pc, "build_parser", _parser_with(pc.build_parser, boom))
    res = cli("precompute", "validate", W / "bundle")
    assert res.code == 3 and res.stderr.startswith("internal error (KeyError)") and "--debug" in res.stderr
    assert res.stderr.count("\n") == 1


def _parser_with(build, func):
    def b():
        p = build()
        for a in p._subparsers._group_actions[0].choices.values():
            if a.prog.endswith("validate"):
                a.set_defaults(func=func)
        return p
    return b


def test_stale_staging_of_killed_process_is_cleaned_or_restored(tmp_path):
    """Leftovers of a dead PID: a staging folder is deleted; an old output moved aside by a process
    killed between commit_dir's two renames is put back. A live process's staging stays."""
    import os

    from common.outputs import remove_stale_staging
    dead = 2**22 + 777
    out = tmp_path / "b"
    (tmp_path / f".b.staging-{dead}-aaaaaaaa").mkdir()
    moved = _mk(tmp_path / f".b.replaced-{dead}-bbbbbbbb")
    (moved / "manifest.json").write_text("{}")
    live = _mk(tmp_path / f".b.staging-{os.getppid()}-cccccccc")
    remove_stale_staging(out)
    assert (out / "manifest.json").read_text() == "{}"          # restored
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["b", live.name])


def test_training_diverged_is_one_line_exit_2(cli, W, tmp_path, monkeypatch):
    import txfm.trainer as tr

    def diverge(run):
        raise tr.TrainingDiverged("loss is not finite at step 1 (loss=nan); lower --lr")
    monkeypatch.setattr(tr, "_loop", diverge)
    r = copy(W / "run", tmp_path / "run")
    with_flag = cli("txfm", *train_args(W, r, "--overwrite"))
    assert_refused(with_flag, "loss is not finite at step 1", 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]           # the old run stays, no staging
    assert (r / "last.pt").read_bytes() == (W / "run" / "last.pt").read_bytes()
