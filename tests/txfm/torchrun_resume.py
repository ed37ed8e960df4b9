"""One check shared by the CPU (gloo) and GPU (nccl) tests: under torchrun, a run stopped at step 4 and
resumed to step 8 sees the batches of an uninterrupted run (same loss at every step) and ends with its
weights."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
                           "-m", "txfm", "train", *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)


def check_torchrun_resumes_exactly(corpus: str, tmp: Path, device: str, backend: str, rtol: float) -> None:
    common = ["--corpus", corpus, "--dim", "32", "--depth", "2", "--heads", "4", "--reveal", "8", "--batch-size", "8",
              "--log-every", "1", "--save-every", "4", "--keep-last", "0", "--precision", "fp32", "--workers", "2",
              "--device", device, "--max-steps", "8"]
    runs = []
    for name in ("full", "part"):
        r = _torchrun([*common, "--out", str(tmp / name)])
        assert r.returncode == 0, r.stderr[-2000:]
        runs.append(r)
    assert f"ranks 1 ({backend})" in runs[0].stdout    # the run went through DDP over this backend
    # stop the second run at step 4: its step-4 checkpoint becomes last.pt (metrics after it are dropped on resume)
    shutil.copyfile(tmp / "part" / "step-0000004.pt", tmp / "part" / "last.pt")
    (tmp / "part" / "step-0000008.pt").unlink()
    r = _torchrun([*common, "--out", str(tmp / "part"), "--resume"])
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = ([json.loads(x) for x in (tmp / n / "metrics.jsonl").read_text().splitlines()] for n in ("full", "part"))
    assert [x["step"] for x in a] == [x["step"] for x in b] == list(range(1, 9))
    np.testing.assert_allclose([x["loss"] for x in a], [x["loss"] for x in b], rtol=rtol, atol=rtol)
    wa, wb = (torch.load(tmp / n / "last.pt", weights_only=True)["model"] for n in ("full", "part"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=rtol, atol=rtol)
