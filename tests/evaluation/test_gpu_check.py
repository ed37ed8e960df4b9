"""`make gpu-check` at toy sizes on the CPU: every step runs and the report holds every section, so the
script is correct before it meets a GPU (where it runs with the real sizes)."""
import json

import pandas as pd

from evaluation.cli import main


def _references(path):
    """Known pairs among the even genes, the ones both datasets of the corpus measure (the honest population)."""
    (path / "pairs").mkdir(parents=True)
    pairs = [(f"G{i}", f"G{i + 2}") for i in range(10, 16, 2)] + [(f"G{i}", f"G{i + 2}") for i in range(30, 36, 2)]
    pd.DataFrame(pairs, columns=["gene_a", "gene_b"]).to_csv(path / "pairs" / "CORUM.tsv", sep="\t", index=False)
    return str(path)


def test_gpu_check_runs_every_step_at_toy_sizes(eval_corpus, tmp_path):
    """make gpu-pack, then make gpu-check --pack on what it packed, as on a GPU machine."""
    doc, out, pack = tmp_path / "bench-gpu.md", tmp_path / "out", tmp_path / "pack"
    refs = _references(tmp_path / "refs")
    assert main(["gpu-pack", "--corpus", eval_corpus, "--references", refs, "--out", str(pack), "--no-wheels"]) == 0
    assert {p.name for p in pack.iterdir()} == {"corpus.tar.xz", "refs.tar.xz", "pack.json"}
    assert main(["gpu-check", "--toy", "--device", "cpu", "--pack", str(pack), "--out", str(out), "--doc", str(doc),
                 "--label", "screen:perturbation", "--train-s", "6", "--budget-s", "300",
                 "--work", str(tmp_path / "work")]) == 0
    text = doc.read_text()
    assert text == (out / "bench-gpu.md").read_text()
    for section in ("## GPU tests", "## Training throughput through the real data path",
                    "## The data path before and after device-side batches", "## torch.compile",
                    "## Targets (issue 21)", "## Quality step"):
        assert section in text, section
    assert "skipped" in text.split("## GPU tests")[1].split("##")[0]     # pytest -m gpu ran and skipped on a CPU
    figures = json.loads((out / "gpu-check.json").read_text())
    rows = figures["throughput"]["rows"]
    assert [(r["preset"], r["k"]) for r in rows] == [("tiny", 8), ("tiny", 16)]
    assert all(r["samples_per_s"] > 0 and 0 < r["mfu"] < 1.5 and not r["error"] for r in rows)
    loaders = figures["throughput"]["loaders"]
    before = figures["throughput"]["before"]
    assert before["k"] == 16 and before["bytes_per_batch"] > next(x for x in loaders if x["k"] == 16)["bytes_per_batch"]
    assert figures["throughput"]["compiled"].get("samples_per_s", 0) > 0 or figures["throughput"]["compiled"].get("skipped")
    run = figures["quality"]["toy"]
    assert run["ok"] and run["metrics"] and run["steps"] >= 2
    curves = pd.read_csv(out / "curves.csv")
    assert set(curves.kind) == {"pca", "txfm"} and curves.knn_accuracy.notna().all()
    assert {"codebook", "decoder", "pca"} <= set(curves.matrix)
    assert (tmp_path / "work" / "runs" / "toy" / "last.pt").is_file()


def test_gpu_check_writes_only_into_its_own_or_an_empty_folder(tmp_path, capsys):
    from common.errors import run_main
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert run_main(main, ["gpu-check", "--toy", "--corpus", str(tmp_path), "--out", str(out)]) == 2
    assert "other files" in capsys.readouterr().err and (out / "notes.txt").read_text() == "mine"
    assert run_main(main, ["gpu-check", "--toy", "--pack", str(tmp_path / "nope"), "--out", str(tmp_path / "o2")]) == 2
    assert "not a GPU pack" in capsys.readouterr().err
