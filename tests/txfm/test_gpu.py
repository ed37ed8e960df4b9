"""The GPU path (pytest -m gpu; run by `make gpu-check` on a lent GPU, skipped without CUDA): bf16 autocast,
the CPU fp32 loss reproduced in bf16 on the GPU, device-side batches equal to host ones, a training step
that never waits for the device, fused AdamW across a CPU -> GPU resume, and torchrun with nccl resuming
exactly."""
import pytest
import torch

from txfm.config import ModelConfig, TrainConfig
from txfm.corpus import Corpus
from txfm.dataset import BatchSpec, CorpusStream
from txfm.feed import DeviceFeed, densify
from txfm.model import TxFM

from .torchrun_resume import check_torchrun_resumes_exactly

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run by make gpu-check)")]
CUDA = torch.device("cuda")


def _host_batches(corpus, n=3, reveal=8):
    return [b for b, _ in zip(CorpusStream(corpus, 16, BatchSpec(reveal=reveal), seed=0), range(n))]


def _cfg():
    return ModelConfig(n_genes=40, dim=32, depth=2, heads=4, decoder_depth=2)


def test_device_batches_equal_host_batches(tiny_corpus):
    measured = torch.from_numpy(Corpus(tiny_corpus).measured_matrix())
    host = _host_batches(tiny_corpus, reveal=30)           # padded rows included (dataset b measures 20 genes)
    assert any("pad_mask" in b for b in host)
    for h, d in zip(host, DeviceFeed([{k: v.pin_memory() for k, v in b.items()} for b in host], CUDA, measured)):
        ref = densify(h, measured)
        assert set(ref) == set(d)
        for k in ref:
            assert d[k].device.type == "cuda" and torch.equal(ref[k], d[k].cpu()), k


def test_bf16_autocast_forward_backward_is_finite_and_matches_cpu_fp32(tiny_corpus):
    measured = torch.from_numpy(Corpus(tiny_corpus).measured_matrix())
    batch = densify(_host_batches(tiny_corpus, 1)[0], measured)
    torch.manual_seed(0)
    cpu = TxFM(_cfg()).eval()
    gpu = TxFM(_cfg()).eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu.to(CUDA)
    ref, _ = cpu(batch)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        parts, _ = gpu({k: v.to(CUDA) for k, v in batch.items()})
    parts.loss.backward()
    assert torch.isfinite(parts.loss) and all(torch.isfinite(p.grad).all() for p in gpu.parameters() if p.grad is not None)
    # bf16 keeps 8 bits of mantissa: the loss (a mean over ~600 genes) agrees to about 1%
    assert abs(parts.loss.item() - ref.loss.item()) <= 0.02 * abs(ref.loss.item()) + 1e-3


def test_a_training_step_never_waits_for_the_device(tiny_corpus):
    from txfm.trainer import make_optimizer, train_step
    measured = torch.from_numpy(Corpus(tiny_corpus).measured_matrix())
    torch.manual_seed(0)
    model = TxFM(_cfg()).to(CUDA).train()
    opt, sched, _ = make_optimizer(model, TrainConfig(corpus=tiny_corpus, out="-"), 100)
    feed = DeviceFeed([{k: v.pin_memory() for k, v in b.items()} for b in _host_batches(tiny_corpus, 4)], CUDA,
                      measured)
    train_step(model, model, opt, sched, next(feed), CUDA, "bf16", 1.0)     # first step: lazy state set-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            train_step(model, model, opt, sched, next(feed), CUDA, "bf16", 1.0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert opt.param_groups[0]["fused"] is True


def test_a_cpu_run_resumes_on_the_gpu_with_fused_adamw(tiny_corpus, tmp_path):
    from txfm.trainer import train
    tc = TrainConfig(corpus=tiny_corpus, out=str(tmp_path / "run"), reveal=8, batch_size=8, max_steps=2,
                     save_every=2, device="cpu", precision="fp32")
    train(tc, _cfg(), quiet=True)
    train(TrainConfig(corpus=tiny_corpus, out=str(tmp_path / "run"), device="cuda"), resume=True, quiet=True,
          given={"max_steps": 4, "device": "cuda"})
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ck["step"] == 4 and all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())


def test_torchrun_nccl_resumes_exactly(tiny_corpus, tmp_path):
    """The CPU test does the same over gloo (tests/txfm/test_checkpoint.py); GPU kernels may sum in another
    order from run to run, so weights agree to 1e-4 rather than bit for bit."""
    check_torchrun_resumes_exactly(tiny_corpus, tmp_path, "cuda", "nccl", rtol=1e-4)
