"""Ablation grid parsing and the runner on a tiny corpus (2 variants, a few steps)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.ablate import run_ablation
from evaluation.checkpoint_scores import RecallSettings
from evaluation.grid import Budget, parse_grid, variant_name, variants
from evaluation.perturbation import PerturbationParams

ROOT = Path(__file__).resolve().parents[2]
BUDGET = Budget(dim=16, depth=1, heads=2, max_steps=3, batch_size=16, reveal=16, device="cpu")
SETTINGS = dict(pert_params=PerturbationParams(n_components=10, n_null=500),
                recall=RecallSettings(min_samples=1, n_nulls=2, null_size=60), perturbation_cells=0, progress=False)


def test_parse_grid_types_order_and_errors():
    g = parse_grid(["loss=poisson,mse", "reveal=128,64", "preprocessing=libnorm_log1p,log1p"])
    assert g == {"loss": ["poisson", "mse"], "reveal": [128, 64], "preprocessing": ["libnorm_log1p", "log1p"]}
    with pytest.raises(ValueError, match="not one of"):
        parse_grid(["loss=poisson,hinge"])
    with pytest.raises(ValueError, match="unknown axis"):
        parse_grid(["optimizer=adam"])
    with pytest.raises(ValueError, match="as int"):
        parse_grid(["reveal=many"])
    with pytest.raises(ValueError, match="AXIS=V1"):
        parse_grid(["loss"])


def test_one_at_a_time_and_full_designs():
    g = {"loss": ["poisson", "mse", "negbin"], "activation": ["rect_tanh", "relu"]}
    oat = variants(g, "oat")
    assert [variant_name(v, oat[0]) for v in oat] == ["reference", "loss=mse", "loss=negbin", "activation=relu"]
    full = variants(g, "full")
    assert len(full) == 6 and full[0] == oat[0]
    assert variant_name(full[-1], full[0]) == "loss=negbin,activation=relu"


def test_runner_writes_a_complete_table_and_reuses_finished_runs(eval_corpus, eval_references, tmp_path,
                                                                  monkeypatch):
    out = tmp_path / "abl"
    summary = run_ablation(eval_corpus, {"loss": ["poisson", "mse"]}, out, BUDGET, references=eval_references,
                           **SETTINGS)
    assert summary["variant"].tolist() == ["reference", "loss=mse"]
    assert summary["runs_ok"].tolist() == [1, 1]
    for col in ("final_loss", "recall_codebook", "recall_decoder", "pert_consistency", "pert_knn_top5",
                "pert_probe_balanced_accuracy", "pert_loo_cosine", "pert_mean_recall"):
        assert np.isfinite(summary[f"{col}_mean"]).all(), col
        assert summary[f"{col}_std"].isna().all()                     # one seed: no spread
    assert summary["rank_codebook_mean"].isin([8, 15]).all()          # sweep of a (60, 15) codebook
    runs = pd.read_csv(out / "ablation_runs.csv")
    assert runs["loss"].tolist() == ["poisson", "mse"] and (runs["status"] == "ok").all()
    assert (out / "ablation.png").stat().st_size > 1000
    md = (out / "ablation.md").read_text()
    assert md.count("\n") == 4 and "codebook recall" in md
    assert json.loads((out / "run.json").read_text())["budget"]["max_steps"] == 3
    # a second call trains nothing: finished identical runs are reused
    import txfm.trainer
    monkeypatch.setattr(txfm.trainer, "train", lambda *a, **k: pytest.fail("retrained a finished run"))
    again = run_ablation(eval_corpus, {"loss": ["poisson", "mse"]}, out, BUDGET, references=eval_references,
                         **SETTINGS)
    np.testing.assert_allclose(again["recall_codebook_mean"], summary["recall_codebook_mean"])
    assert json.loads((out / "runs" / "loss=mse-s0" / "scores.json").read_text())["scores"]["recall_decoder"] == \
        pytest.approx(summary.set_index("variant").loc["loss=mse", "recall_decoder_mean"])
    # --only-finished tabulates what exists and trains nothing
    part = run_ablation(eval_corpus, {"loss": ["poisson", "mse", "negbin"]}, out, BUDGET, references=eval_references,
                        only_finished=True, **SETTINGS).set_index("variant")
    assert part.loc["loss=negbin", "runs_ok"] == 0 and np.isnan(part.loc["loss=negbin", "recall_decoder_mean"])
    assert part.loc["loss=mse", "runs_ok"] == 1


def test_a_diverging_variant_is_recorded_not_fatal(eval_corpus, tmp_path, monkeypatch):
    import txfm.trainer

    real = txfm.trainer.train

    def fake(tc, mc, **kw):
        if mc.activation == "relu":
            raise txfm.trainer.TrainingDiverged("loss is not finite at step 2 (loss=nan); the run stopped")
        return real(tc, mc, **kw)

    monkeypatch.setattr(txfm.trainer, "train", fake)
    summary = run_ablation(eval_corpus, {"activation": ["rect_tanh", "relu"]}, tmp_path / "abl",
                           BUDGET, references=None, **SETTINGS)
    s = summary.set_index("variant")
    assert s.loc["activation=relu", "runs_ok"] == 0 and np.isnan(s.loc["activation=relu", "pert_consistency_mean"])
    assert np.isfinite(s.loc["reference", "pert_consistency_mean"])
    assert "diverged" in pd.read_csv(tmp_path / "abl" / "ablation_runs.csv")["status"].tolist()


def test_ablate_is_an_evaluation_command_only():
    run = lambda *a: subprocess.run([sys.executable, *a], cwd=ROOT, capture_output=True, text=True, timeout=120)
    h = run("-m", "evaluation", "ablate", "--help")
    assert h.returncode == 0 and "--grid" in h.stdout and "python -m evaluation ablate" in h.stdout
    bad = run("-m", "evaluation", "ablate", "--corpus", "nowhere", "--grid", "optimizer=adam")
    assert bad.returncode == 2 and "unknown axis 'optimizer'" in bad.stderr
    gone = run("-m", "txfm", "ablate", "--help")      # the wrong-way forwarder is gone (txfm never imports evaluation)
    assert gone.returncode == 2 and "invalid choice: 'ablate'" in gone.stderr

def test_configs_apply_the_budget_then_the_variant():
    from evaluation.grid import configs

    budget = Budget(dim=64, depth=2, heads=4, max_steps=50, reveal=128)
    for v, want in [({"lr": 3e-4, "dim": 64}, (3e-4, 64, 128)), ({"lr": 1e-3, "dim": 32}, (1e-3, 32, 128)),
                    ({"reveal": 32, "loss": "mse"}, (1e-3, 64, 32))]:
        tc, mc = configs("c", Path("o"), v, 7, budget, n_genes=100)
        assert (tc.lr, mc.dim, tc.reveal) == want
        assert (tc.seed, tc.max_steps, tc.save_every, mc.depth, mc.heads, mc.n_genes) == (7, 50, 50, 2, 4, 100)
    tc, mc = configs("c", Path("o"), {"loss": "mse"}, 0, budget, n_genes=100)
    assert mc.loss == "mse" and mc.activation == "rect_tanh" and tc.preprocessing == "libnorm_log1p"
