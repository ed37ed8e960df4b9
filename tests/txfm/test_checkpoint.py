"""Checkpoints: round trip, clear refusals, old fixture, exact kill-and-resume, torchrun (gloo)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from txfm.checkpoint import CheckpointError, load_file, load_model, save_checkpoint
from txfm.config import ModelConfig
from txfm.inference import embed, gene_matrices
from txfm.model import TxFM

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "checkpoint_v1.pt"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
TRAIN = [sys.executable, "-m", "txfm", "train", "--preset", "tiny", "--dim", "16", "--depth", "2", "--heads", "2",
         "--decoder-depth", "1", "--drop-path", "0.2", "--precision", "fp32", "--reveal", "8", "--batch-size", "8", "--max-steps", "300",
         "--save-every", "4", "--keep-last", "0", "--log-every", "4", "--val-every", "8", "--val-batches", "2"]


def _model():
    torch.manual_seed(1)
    return TxFM(ModelConfig(n_genes=6, dim=8, depth=1, heads=2, decoder_depth=1)).eval()


def test_save_load_identical_outputs(tmp_path):
    model = _model()
    genes = [f"G{i}" for i in range(6)]
    save_checkpoint(tmp_path / "c.pt", model, genes, [""] * 6, None)
    loaded, ck = load_model(tmp_path / "c.pt", genes=genes)
    gi, v = torch.tensor([[0, 2, 5]]), torch.tensor([[1.0, 0.0, 2.5]])
    with torch.no_grad():
        assert torch.equal(model.forward_decoder(model.forward_encoder(gi, v, None)),
                           loaded.forward_decoder(loaded.forward_encoder(gi, v, None)))
    mats, table, meta = gene_matrices(tmp_path / "c.pt")
    assert mats["codebook"].shape == (6, 7) and mats["decoder"].shape == (6, 8)
    assert table["symbol"].tolist() == genes and meta["kind"] == "txfm"


def test_wrong_vocabulary_is_refused(tmp_path):
    save_checkpoint(tmp_path / "c.pt", _model(), [f"G{i}" for i in range(6)], [""] * 6, None)
    with pytest.raises(CheckpointError, match="gene vocabulary differs.*1 new genes"):
        load_model(tmp_path / "c.pt", genes=[f"G{i}" for i in range(5)] + ["OTHER"])


def test_unknown_version_and_corrupt_files_are_refused(tmp_path):
    ck = torch.load(FIXTURE, weights_only=True)
    ck["format_version"] = 99
    torch.save(ck, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="format version 99 is not supported"):
        load_file(tmp_path / "future.pt")
    data = FIXTURE.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_file(tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_file(tmp_path / "absent.pt")


def test_old_checkpoint_fixture_still_loads():
    model, ck = load_model(FIXTURE)
    assert ck["step"] == 7 and ck["genes"][3] == "GENE3"
    with torch.no_grad():
        cls = model.forward_encoder(ck["fixture_input"]["gene_idx"], ck["fixture_input"]["values"], None)
    torch.testing.assert_close(cls, ck["fixture_cls"])


def test_embed_maps_genes_and_reports_unknown():
    counts = np.array([[3, 0, 5, 1], [0, 2, 2, 7]])
    with pytest.warns(UserWarning, match="3/4 genes mapped.*NOTAGENE"):
        res = embed(FIXTURE, counts, ["GENE1", "gene4", "NOTAGENE", "GENE9"], progress=False)
    assert res.cls.shape == (2, 8) and np.isfinite(res.cls).all()
    assert res.mapping.index.tolist() == [1, 4, -1, 9]


def _final_weights(run: Path) -> dict:
    return torch.load(run / "last.pt", weights_only=True)["model"]


def test_kill_and_resume_equals_uninterrupted(tiny_corpus, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run(TRAIN + ["--corpus", tiny_corpus, "--out", str(full)], env=ENV, check=True, capture_output=True)
    proc = subprocess.Popen(TRAIN + ["--corpus", tiny_corpus, "--out", str(cut)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600  # generous: a loaded 2-core CI machine starts torch slowly
    while not (cut / "step-0000008.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed_from = torch.load(cut / "last.pt", weights_only=True)["step"]
    assert 8 <= resumed_from < 300, "the run should be killed part-way"
    subprocess.run(TRAIN + ["--corpus", tiny_corpus, "--out", str(cut), "--resume"], env=ENV, check=True,
                   capture_output=True)
    a, b = _final_weights(full), _final_weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(r)["step"] for r in (cut / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 300  # no duplicated rows after the resume


def test_torchrun_two_processes_gloo(tiny_corpus, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "txfm",
           *TRAIN[3:], "--max-steps", "4", "--corpus", tiny_corpus, "--out", str(out)]
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    ck = torch.load(out / "last.pt", weights_only=True)
    assert ck["step"] == 4 and ck["samples_seen"] == 32
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    assert not any(k.startswith("module.") for k in ck["model"])  # the unwrapped model is saved


def test_torchrun_one_process_gloo_resumes_exactly(tiny_corpus, tmp_path):
    """Under torchrun the run goes through DDP even with one process; stopped and resumed, it matches an
    uninterrupted run bit for bit on the CPU (the GPU test does the same over nccl)."""
    from .torchrun_resume import check_torchrun_resumes_exactly
    check_torchrun_resumes_exactly(tiny_corpus, tmp_path, "cpu", "gloo", rtol=0)


def test_reveal_weights_of_a_tau_run_are_recorded_and_used_at_inference(tiny_corpus, tmp_path):
    """A run trained with --reveal-tau draws revealed genes w ~ m^tau; embedding must use the same law."""
    from txfm.config import TrainConfig
    from txfm.corpus import Corpus
    from txfm.dataset import BatchSpec, detection_counts
    from txfm.inference import encode_counts
    from txfm.masking import frequency_weights
    from txfm.trainer import train

    out = tmp_path / "run"
    train(TrainConfig(corpus=tiny_corpus, out=str(out), reveal=4, reveal_tau=2.0, batch_size=8, max_steps=2,
                      val_every=0, precision="fp32", val_fraction=0.0),
          ModelConfig(n_genes=40, dim=8, depth=1, heads=2, decoder_depth=1), quiet=True)
    ck = load_file(out / "last.pt")
    c = Corpus(tiny_corpus)
    w = np.asarray(ck["corpus"]["reveal_weights"])
    np.testing.assert_allclose(w, frequency_weights(detection_counts(c), 2.0))
    x, _ = c.read_rows(np.arange(10))
    model, _ = load_model(out / "last.pt")
    measured = np.ones((1, 40), dtype=bool)
    spec = dict(reveal=4, library_size=model.cfg.library_size, library_norm="measured")
    weighted = encode_counts(model, x, measured, BatchSpec(gene_weights=w, **spec), progress=False)[0]
    uniform = encode_counts(model, x, measured, BatchSpec(**spec), progress=False)[0]
    got = embed(out / "last.pt", x, c.genes, progress=False).cls
    np.testing.assert_allclose(got, weighted, atol=1e-6)
    assert not np.allclose(got, uniform, atol=1e-3)
    # a tau checkpoint without recorded weights (an older one) is refused, not embedded uniformly
    del ck["corpus"]["reveal_weights"]
    torch.save(ck, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="reveal-tau"):
        embed(tmp_path / "old.pt", x, c.genes, progress=False)


def test_inference_reveals_with_the_law_the_run_trained_with(tiny_corpus, tmp_path):
    """A run trained with --reveal-detected / --reveal-fraction records them; inference's BatchSpec is the
    training one (and a run without them keeps the paper's K for every sample)."""
    from txfm.config import TrainConfig
    from txfm.inference import training_spec
    from txfm.trainer import train

    mc = ModelConfig(n_genes=40, dim=8, depth=1, heads=2, decoder_depth=1)
    for name, kw in (("law", dict(reveal_detected=1.0, reveal_fraction=0.5)), ("paper", {})):
        train(TrainConfig(corpus=tiny_corpus, out=str(tmp_path / name), reveal=6, batch_size=8, max_steps=1,
                          val_every=0, **kw), mc, quiet=True)
    model, ck = load_model(tmp_path / "law" / "last.pt")
    spec = training_spec(ck, model)
    assert (spec.reveal, spec.reveal_detected, spec.reveal_fraction, spec.library_norm) == (6, 1.0, 0.5, "measured")
    assert training_spec(ck, model, max_genes=3).reveal == 3
    model, ck = load_model(tmp_path / "paper" / "last.pt")
    spec = training_spec(ck, model)
    assert (spec.reveal_detected, spec.reveal_fraction, spec.sample_k(2)) == (0.0, 0.0, 6)
