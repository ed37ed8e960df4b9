"""Bad-input catalogue, round three (issue 24): one case per class of fault that still ended badly.

- small step counts at any warm-up fraction train (no crash in the one-cycle schedule);
- a damaged corpus shard, sample table or manifest, checkpoint, PCA file or bundle file is one `error:`
  line naming the file and a fix the command at hand can follow; commands that walk a whole run
  (`precompute series`, `evaluation results`) skip an unreadable checkpoint with a warning;
- a full disk, a file-size limit or a read-only folder is one line naming the path and the cause, and
  a run that never saved a checkpoint can be started again without --overwrite (or is not left behind);
- advice the user can follow (`build-corpus --genes` of an empty or unrelated file);
- `precompute import` refuses a matrix that looks like counts unless --allow-counts.

The command-line cases run in-process on the session's shared world (tests/reliability/conftest.py).
The full-disk cases mount a small tmpfs (root only; skipped with the reason elsewhere); the file-size
limit case runs everywhere (RLIMIT_FSIZE in a child process).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.errors import UserError, run_main, write_failure
from tests.reliability.conftest import FAST, assert_refused, no_leftovers, run_args, train_args

ROOT = Path(__file__).resolve().parents[2]


def copy(src: Path, dst: Path) -> Path:
    (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    return dst


def truncate(p: Path, keep: float = 0.5) -> Path:
    data = p.read_bytes()
    p.write_bytes(data[:int(len(data) * keep)])
    return p


def warnings_of(res) -> list[str]:
    return [ln for ln in res.stderr.replace("\r", "\n").splitlines() if "warning:" in ln]


# --------------------------------------------------------------------------- small step counts
@pytest.mark.parametrize("steps,warmup", [(1, None), (2, None), (10, None), (3, "0.99"), (5, "0")])
def test_any_step_count_trains_at_any_warmup(cli, W, tmp_path, steps, warmup):
    """`--max-steps 10` at the default warm-up 0.1 (one warm-up step) divided by zero in OneCycleLR."""
    from txfm.checkpoint import load_file
    extra = ["--max-steps", str(steps), "--save-every", str(steps)] + (["--warmup", warmup] if warmup else [])
    res = cli("txfm", *train_args(W, tmp_path / "run", *extra))
    assert res.code == 0, res.stderr
    ck = load_file(tmp_path / "run" / "last.pt")
    assert ck["step"] == steps
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, steps + 1))
    assert all(np.isfinite(r["lr"]) and 0 < r["lr"] <= 1e-3 for r in rows)


# --------------------------------------------------------------------------- damaged corpus files
def _corpus_with(W, tmp, damage: str) -> Path:
    c = copy(W / "corpus", tmp / "corpus")
    if damage == "shard":
        truncate(c / "shards" / "shard-00000.npz")
    elif damage == "obs":
        truncate(c / "obs.parquet")
    elif damage == "manifest-key":
        m = json.loads((c / "manifest.json").read_text())
        del m["shards"]
        (c / "manifest.json").write_text(json.dumps(m))
    return c


CORPUS_DAMAGE = {   # (damage, argv(W, tmp, corpus), fragment)
    "train-truncated-shard": ("shard", lambda W, t, c: _train_on(W, c, t / "r"),
                              "shard-00000.npz: corpus shard is damaged or truncated (BadZipFile"),
    "train-overwrite-truncated-shard": ("shard", lambda W, t, c: _train_on(W, c, copy(W / "run", t / "run"),
                                                                          "--overwrite"),
                                        "shard-00000.npz: corpus shard is damaged or truncated"),
    "baseline-pca-truncated-shard": ("shard", lambda W, t, c: ["baseline-pca", "--corpus", c, "--out", t / "p.pt"],
                                     "shard-00000.npz: corpus shard is damaged or truncated"),
    "embed-truncated-shard": ("shard", lambda W, t, c: ["embed", "--checkpoint", W / "run" / "last.pt", "--input", c,
                                                        "--out", t / "e.npz"],
                              "shard-00000.npz: corpus shard is damaged or truncated"),
    "train-truncated-sample-table": ("obs", lambda W, t, c: _train_on(W, c, t / "r"),
                                     "obs.parquet: corpus sample table is damaged or truncated"),
    "train-manifest-without-shards": ("manifest-key", lambda W, t, c: _train_on(W, c, t / "r"),
                                      "manifest.json: corpus manifest is damaged or truncated (KeyError"),
}


def _train_on(W, corpus, out, *extra):
    args = train_args(W, out, *extra)
    args[args.index("--corpus") + 1] = corpus
    return args


@pytest.mark.parametrize("case", sorted(CORPUS_DAMAGE))
def test_damaged_corpus_file_is_named_with_the_fix(case, cli, W, tmp_path, unchanged):
    damage, argv, fragment = CORPUS_DAMAGE[case]
    c = _corpus_with(W, tmp_path, damage)
    args = argv(W, tmp_path, c)
    precious = [c] + ([tmp_path / "run"] if (tmp_path / "run").exists() else [])
    with unchanged(*precious):
        res = cli("txfm", *args)
    assert_refused(res, fragment)
    assert f"python -m data build-corpus --source ... --out {c} --overwrite" in res.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "p.pt").exists() and not (tmp_path / "e.npz").exists()


# --------------------------------------------------------------------------- damaged checkpoints
def _run_with_bad_step(W, tmp, bad_steps=(1,), bad_last=False) -> Path:
    """A copy of the world's run with extra step checkpoints: step-0000001.pt (and others in
    `bad_steps`) truncated; step-0000002.pt and last.pt good unless `bad_last`."""
    r = copy(W / "run", tmp / "run")
    for s in bad_steps:
        truncate(copy(r / "step-0000002.pt", r / f"step-{s:07d}.pt"), 0.3)
    if bad_last:
        truncate(r / "last.pt", 0.3)
        truncate(r / "step-0000002.pt", 0.3)
    return r


def test_resume_from_truncated_last_names_a_way_out(cli, W, tmp_path, unchanged):
    r = copy(W / "run", tmp_path / "run")
    truncate(r / "last.pt")
    with unchanged(r):
        res = cli("txfm", "train", "--corpus", W / "corpus", "--out", r, "--resume")
    assert_refused(res, "last.pt: not a readable TxFM checkpoint")
    assert "copy one of" in res.stderr and "step-*.pt onto" in res.stderr


def test_run_of_truncated_checkpoint_suggests_another(cli, W, tmp_path):
    ck = truncate(copy(W / "run" / "last.pt", tmp_path / "model.pt"))
    res = cli("precompute", "run", "--checkpoint", ck, "--references", W / "refs", "--out", tmp_path / "b", *FAST)
    assert_refused(res, "model.pt: not a readable TxFM checkpoint")
    assert "pass another checkpoint" in res.stderr and "use another checkpoint of the run" not in res.stderr


def test_series_skips_an_unreadable_checkpoint_with_a_warning(cli, W, tmp_path, unchanged):
    r = _run_with_bad_step(W, tmp_path)
    out = tmp_path / "series"
    with unchanged(r):
        res = cli("precompute", "series", "--run", r, "--references", W / "refs", "--out", out, "--quiet")
    assert res.code == 0, res.stderr
    warns = warnings_of(res)
    assert len(warns) == 1 and "step-0000001.pt: not a readable TxFM checkpoint" in warns[0] and "skipped" in warns[0]
    s = json.loads((out / "series.json").read_text())
    assert [c["step"] for c in s["checkpoints"]] == [2]
    assert [Path(k["checkpoint"]).name for k in s["skipped"]] == ["step-0000001.pt"]


def test_series_of_only_unreadable_checkpoints_is_refused(cli, W, tmp_path):
    r = _run_with_bad_step(W, tmp_path, bad_last=True)
    res = cli("precompute", "series", "--run", r, "--references", W / "refs", "--out", tmp_path / "s", "--quiet")
    assert_refused(res, "none of its 3 checkpoint(s) can be read")
    assert not (tmp_path / "s").exists()


def test_results_skip_an_unreadable_checkpoint_with_a_warning(cli, W, tmp_path):
    r = _run_with_bad_step(W, tmp_path)
    doc = tmp_path / "out" / "results.md"
    res = cli("evaluation", "results", "--run", r, "--pca", W / "pca.pt", "--references", W / "refs", "--doc", doc,
              "--n-nulls", "1", "--null-size", "60")
    assert res.code == 0, res.stderr
    assert any("step-0000001.pt: not a readable TxFM checkpoint" in w for w in warnings_of(res))
    assert "Skipped as unreadable: step-0000001.pt." in doc.read_text()


def _pca_variant(W, tmp, edit) -> Path:
    import torch
    d = torch.load(W / "pca.pt", weights_only=True)
    edit(d)
    torch.save(d, tmp / "pca-bad.pt")
    return tmp / "pca-bad.pt"


@pytest.mark.parametrize("edit,fragment", [
    (lambda d: d.update(components=d["components"][:0], explained_variance=d["explained_variance"][:0]),
     "components of shape (0, 120), no usable component"),
    (lambda d: d.update(mean=d["mean"][:5]), "arrays disagree"),
    (lambda d: d.pop("scale"), "PCA baseline file is damaged or truncated (KeyError"),
], ids=["zero-components", "short-mean", "missing-array"])
def test_broken_pca_file_is_refused_on_load(cli, W, tmp_path, edit, fragment):
    p = _pca_variant(W, tmp_path, edit)
    res = cli("precompute", "run", "--checkpoint", p, "--baseline", "pca", "--references", W / "refs",
              "--out", tmp_path / "b", *FAST)
    assert_refused(res, fragment)
    assert "txfm baseline-pca" in res.stderr and not (tmp_path / "b").exists()


# --------------------------------------------------------------------------- damaged bundle files
@pytest.mark.parametrize("rel", ["knn/decoder.indices.npy", "modules/decoder.parquet", "recall/best.json"])
def test_compare_names_the_damaged_bundle_file(cli, W, tmp_path, rel, unchanged):
    b = copy(W / "bundle", tmp_path / "b")
    truncate(b / rel)
    with unchanged(b):
        res = cli("precompute", "compare", b, W / "bundle", "--out", tmp_path / "c")
    assert_refused(res, str(b / rel))
    assert not (tmp_path / "c").exists()


def test_validate_reports_a_damaged_module_table(cli, W, tmp_path):
    b = copy(W / "bundle", tmp_path / "b")
    truncate(b / "modules" / "decoder.parquet")
    res = cli("precompute", "validate", b)
    assert res.code == 1 and "modules/decoder.parquet: unreadable parquet" in res.stdout, res.stdout + res.stderr


def test_run_over_a_damaged_bundle_refuses_then_rebuilds_with_overwrite(cli, W, tmp_path, unchanged):
    b = copy(W / "bundle", tmp_path / "b")
    truncate(b / "subspaces" / "decoder.npy")
    with unchanged(b):     # same checkpoint and parameters: used to say "up to date" over the damage
        res = cli("precompute", *run_args(W, b))
    assert_refused(res, "the bundle there is damaged")
    assert "pass --overwrite to rebuild it" in res.stderr
    res = cli("precompute", *run_args(W, b, "--overwrite"))
    assert res.code == 0, res.stderr
    assert any("every step is recomputed" in w for w in warnings_of(res))
    assert run_main(__import__("precompute.cli", fromlist=["main"]).main, ["validate", str(b)]) == 0


# --------------------------------------------------------------------------- write failures
def test_write_failure_finds_the_cause_inside_a_library_error(tmp_path):
    """torch.save raises RuntimeError('... unexpected pos ...') while handling OSError(ENOSPC)."""
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    except RuntimeError as e:
        err = write_failure(e, tmp_path / "run" / "last.pt")
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC and err.filename == str(tmp_path / "run" / "last.pt")


def test_write_failure_names_the_output_not_the_scratch_copy(tmp_path):
    work = tmp_path / ".b.staging-1-abc"
    e = OSError(errno.ENOSPC, "No space left on device", str(work / "knn" / "x.npy"))
    err = write_failure(e, tmp_path / "b", scratch=work)
    assert err.filename == str(tmp_path / "b" / "knn" / "x.npy")
    e = OSError(errno.ENOSPC, "No space left on device", "/refs/a.gmt", None, str(work / "references" / "a.gmt"))
    assert write_failure(e, tmp_path / "b", scratch=work).filename == str(tmp_path / "b" / "references" / "a.gmt")
    other = OSError(errno.EACCES, "Permission denied", "/some/input.h5ad")     # not about the output: kept
    assert write_failure(other, tmp_path / "b", scratch=work) is other


def test_short_write_is_diagnosed_from_the_file_system(tmp_path, monkeypatch):
    """numpy reports a full disk as OSError('67136 requested and 54240 written'), without errno."""
    import common.errors as ce
    short = OSError("67136 requested and 54240 written")

    class Fs:
        f_flag, f_frsize, f_bavail, f_bfree = 0, 4096, 0, 0
    monkeypatch.setattr(ce.os, "statvfs", lambda p: Fs)
    err = write_failure(short, tmp_path / "x.npy")
    assert err.errno == errno.ENOSPC and "disk is full" in ce.message_for(err) and str(tmp_path / "x.npy") in ce.message_for(err)
    Fs.f_flag = os.ST_RDONLY
    assert write_failure(short, tmp_path / "x.npy").errno == errno.EROFS
    Fs.f_flag, Fs.f_bavail, Fs.f_bfree = 0, 10**9, 10**9
    err = write_failure(short, tmp_path / "x.npy")
    assert isinstance(err, UserError) and "stopped part-way" in str(err) and str(tmp_path / "x.npy") in str(err)
    plain = ValueError("not a write problem")
    assert write_failure(plain, tmp_path / "x.npy") is plain


def test_library_error_around_a_full_disk_is_exit_2_not_a_defect(capsys):
    def main(argv):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1 vs 0")
    assert run_main(main, []) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "disk is full" in err and "internal error" not in err


@pytest.fixture
def small_disk(tmp_path):
    """small_disk(kb) -> a folder on a fresh tmpfs of that size (needs root and `mount`)."""
    mounts = []

    def make(kb: int) -> Path:
        d = tmp_path / f"disk{len(mounts)}"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kb}k", "tmpfs", str(d)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'not root'}); the full-disk path is "
                        "also covered by the file-size-limit case")
        mounts.append(d)
        return d
    yield make
    import gc
    gc.collect()                                    # file objects of a failed write still referenced
    for d in mounts:
        if subprocess.run(["umount", str(d)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(d)], check=False)       # never leave a mount behind


def _empty(d: Path) -> bool:
    return not any(d.iterdir())


FULL_DISK = {   # name: (kb, room, argv(W, out_dir))
    "train": (64, "txfm", lambda W, d: train_args(W, d / "run")),
    "precompute-run": (100, "precompute", lambda W, d: run_args(W, d / "b")),
    "baseline-pca": (4, "txfm", lambda W, d: ["baseline-pca", "--corpus", W / "corpus", "--out", d / "pca.pt",
                                                "--n-components", "3", "--min-cells", "1"]),
    "embed": (4, "txfm", lambda W, d: ["embed", "--checkpoint", W / "run" / "last.pt", "--input", W / "corpus",
                                         "--out", d / "e.npz"]),
    "build-corpus": (8, "data", lambda W, d: ["build-corpus", "--source", W / "src.h5ad", "--out", d / "c",
                                                "--gene-table", "none", "--min-cells", "1", "--min-genes", "1"]),
}


@pytest.mark.parametrize("case", sorted(FULL_DISK))
def test_full_disk_is_named_and_leaves_nothing(case, cli, W, small_disk):
    kb, room, argv = FULL_DISK[case]
    d = small_disk(kb)
    res = cli(room, *argv(W, d))
    assert_refused(res, "the disk is full; free some space or write to another folder")
    assert str(d) in res.stderr
    assert _empty(d), sorted(p.name for p in d.iterdir())       # no run folder with only config.json, no temp file


def test_file_size_limit_is_named(W, tmp_path):
    """RLIMIT_FSIZE makes writes fail part-way (EFBIG), as a full disk does; runs without root."""
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000)); "
            "from common.errors import run_main; from precompute.cli import main; "
            f"sys.exit(run_main(main, {[str(a) for a in run_args(W, tmp_path / 'b')]!r}))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith(("error:", "internal error"))]
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    assert str(tmp_path / "b") in lines[0] and "larger than this file system (or a `ulimit -f` size limit)" in lines[0]
    assert not (tmp_path / "b").exists() and "Traceback" not in r.stderr
    no_leftovers(tmp_path)


def test_read_only_folder_names_the_cause(cli, W, tmp_path, small_disk):
    d = small_disk(64)
    subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True)
    res = cli("precompute", *run_args(W, d / "b"))
    assert_refused(res, f"{d}: folder is not writable (its file system is mounted read-only)")


# --------------------------------------------------------------------------- a run that saved no checkpoint
def _unsaved_run(W, tmp) -> Path:
    r = copy(W / "run", tmp / "run")
    for p in list(r.glob("*.pt")):
        p.unlink()
    (r / "metrics.jsonl").write_text('{"step": 1, "loss": 9.9}\n{"step": 2, "loss": 9.8}\n')
    return r


def test_run_that_saved_no_checkpoint_starts_again_without_overwrite(cli, W, tmp_path):
    r = _unsaved_run(W, tmp_path)
    (r / "notes.txt").write_text("mine")
    res = cli("txfm", *train_args(W, r, "--seed", "5"))
    assert res.code == 0, res.stderr
    rows = [json.loads(x) for x in (r / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows] == [1, 2] and all(x["loss"] != 9.9 for x in rows)     # the old rows are gone
    assert json.loads((r / "config.json").read_text())["train"]["seed"] == 5
    assert (r / "notes.txt").read_text() == "mine" and (r / "last.pt").is_file()


def test_resume_of_a_run_that_saved_no_checkpoint_says_start_again(cli, W, tmp_path, unchanged):
    r = _unsaved_run(W, tmp_path)
    with unchanged(r):
        res = cli("txfm", "train", "--corpus", W / "corpus", "--out", r, "--resume")
    assert_refused(res, "stopped before saving its first checkpoint")
    assert "start it again without --resume" in res.stderr


def test_failed_first_run_leaves_no_folder(cli, W, tmp_path, monkeypatch):
    import txfm.trainer as tr

    def boom(*a, **k):
        raise OSError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(tr, "save_checkpoint", boom)
    res = cli("txfm", *train_args(W, tmp_path / "run"))
    assert_refused(res, f"{tmp_path / 'run'}: permission denied")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- advice that can be followed
@pytest.mark.parametrize("content,fragment", [
    ("", "--genes file lists no gene (it is empty)"),
    ("\n\n", "--genes file lists no gene (it is empty)"),
    ("FOO1\nFOO2\n", "none of the 2 gene(s) of --genes (e.g. 'FOO1') is among the sources' genes"),
    ("SYN00001\nSYN00001\n", "lists 1 gene(s) more than once"),
])
def test_build_corpus_genes_file_is_named(cli, W, tmp_path, content, fragment):
    g = tmp_path / "genes.txt"
    g.write_text(content)
    res = cli("data", "build-corpus", "--source", W / "src.h5ad", "--out", tmp_path / "c", "--gene-table", "none",
              "--genes", g, "--min-cells", "1", "--min-genes", "1")
    assert_refused(res, f"{g}: ")
    assert fragment in res.stderr and "--min-cells" not in res.stderr and not (tmp_path / "c").exists()


# --------------------------------------------------------------------------- counts offered as an embedding
def _h5ad(tmp, name, x):
    import anndata as ad
    import pandas as pd
    p = tmp / name
    ad.AnnData(X=x, obs=pd.DataFrame(index=[f"SYN{i:05d}" for i in range(x.shape[0])])).write_h5ad(p)
    return p


COUNTS = {
    "int64": (lambda rng: rng.integers(0, 5, (120, 16)).astype(np.int64), "values are of type int64 (min 0, max 4)"),
    "bool": (lambda rng: rng.random((120, 16)) > 0.5, "values are of type bool"),
    "whole-floats": (lambda rng: rng.poisson(2, (120, 16)).astype(np.float32), "every value is a non-negative whole"),
    "wide": (lambda rng: rng.normal(size=(120, 200)).astype(np.float32), "more columns (200) than gene rows (120)"),
}


@pytest.mark.parametrize("case", sorted(COUNTS))
def test_import_refuses_counts_unless_allowed(case, cli, W, tmp_path):
    make, fragment = COUNTS[case]
    p = _h5ad(tmp_path, f"{case}.h5ad", make(np.random.default_rng(0)))
    args = ["import", "--embeddings", p, "--references", W / "refs", *FAST]
    res = cli("precompute", *args, "--out", tmp_path / "b")
    assert_refused(res, f"{p}: does not look like a gene embedding")
    assert fragment in res.stderr and "--allow-counts" in res.stderr and not (tmp_path / "b").exists()
    if case == "int64":
        res = cli("precompute", *args, "--out", tmp_path / "b2", "--allow-counts")
        assert res.code == 0, res.stderr
        assert len(warnings_of(res)) == 1 and fragment in warnings_of(res)[0]


def test_real_embedding_is_not_count_like(cli, W, tmp_path):
    p = _h5ad(tmp_path, "emb.h5ad", np.random.default_rng(0).normal(size=(120, 16)).astype(np.float32))
    res = cli("precompute", "import", "--embeddings", p, "--references", W / "refs", *FAST, "--out", tmp_path / "b")
    assert res.code == 0, res.stderr
    assert not warnings_of(res)
