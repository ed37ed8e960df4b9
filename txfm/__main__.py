"""Command line: python -m txfm {train,embed,baseline-pca,bench} --help (ablations: python -m evaluation ablate)"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.atomic import atomic_path
from common.errors import EXIT_CODES_HELP, UserError
from common.outputs import check_output_file

from common.cli_args import add_dataclass_args, collect
from .config import PRESETS, ModelConfig, TrainConfig, model_config


def _train(ns: argparse.Namespace) -> int:
    from .corpus import Corpus
    from .trainer import train

    given = collect(ns, TrainConfig)
    tc = TrainConfig(**given)
    mc = None
    if ns.resume and ns.overwrite:
        raise UserError("--resume and --overwrite: choose one (continue the run, or replace it with a new one)")
    if not ns.resume:
        n_genes = Corpus(tc.corpus).n_genes
        mc = model_config(tc.preset, n_genes, **{k: v for k, v in collect(ns, ModelConfig).items()})
    last = train(tc, mc, resume=ns.resume, given={**given, **collect(ns, ModelConfig)} if ns.resume else None,
                 overwrite=ns.overwrite)
    print(f"checkpoint: {last}")
    return 0


def _is_pca_baseline(path: Path) -> bool:
    """Whether `path` is a PCA baseline file written by `txfm baseline-pca` (checked without loading it)."""
    import zipfile

    from .baseline import FORMAT
    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
            return pkl is not None and FORMAT.encode() in z.read(pkl)
    except (OSError, zipfile.BadZipFile):
        return False


def _embed(ns: argparse.Namespace) -> int:
    import numpy as np

    from .inference import embed, is_embeddings_file

    from .corpus import Corpus, CorpusError

    out = Path(ns.out)
    check_output_file(out, "TxFM embeddings file (.npz written by txfm embed)", is_embeddings_file, ns.overwrite,
                      protect=[ns.checkpoint, ns.input])

    if not (Path(ns.input).is_dir() and (Path(ns.input) / "manifest.json").is_file()):
        raise CorpusError(f"{ns.input}: not a corpus folder; `python -m txfm embed` embeds a corpus (checked when it "
                          f"was built). For a count file (.h5ad, 10x, CSV/TSV) use `python -m data embed "
                          f"--checkpoint {ns.checkpoint} --input {ns.input} --out {ns.out}`, which validates the "
                          f"counts and maps gene ids like build-corpus")
    c = Corpus(ns.input)
    obs = c.obs
    names = obs["dataset"].astype(str).to_numpy()
    cls, layers = None, None
    for i, d in enumerate(c.datasets):  # each dataset shows the encoder only the genes it measures
        rows = np.flatnonzero(names == d.name)
        if rows.size == 0:
            continue
        x, _ = c.read_rows(rows)
        res = embed(ns.checkpoint, x[:, d.measured], [c.genes[j] for j in d.measured], max_genes=ns.max_genes,
                    seed=ns.seed, batch_size=ns.batch_size, all_layers=ns.all_layers, device=ns.device,
                    progress=False)
        if cls is None:
            cls = np.zeros((c.n_samples, res.cls.shape[1]), dtype=np.float32)
            layers = None if res.layers is None else np.zeros((c.n_samples, *res.layers.shape[1:]), np.float32)
        cls[rows] = res.cls
        if layers is not None:
            layers[rows] = res.layers
        print(f"{d.name}: {rows.size} samples, {len(d.measured)} measured genes")
    ids = obs["sample_id"] if "sample_id" in obs else obs.index
    arrays = {"cls": cls, "sample_id": np.asarray([str(i) for i in ids], dtype=str)}
    if layers is not None:
        arrays["layers"] = layers
    with atomic_path(out, suffix=".npz") as tmp:     # a failure leaves the old file and no temp file
        np.savez(tmp, **arrays)
    print(f"embeddings {cls.shape} -> {out}")
    return 0


def _baseline(ns: argparse.Namespace) -> int:
    from .baseline import PCAConfig, run_baseline

    check_output_file(ns.out, "PCA baseline file", _is_pca_baseline, ns.overwrite, protect=[ns.corpus])
    out = run_baseline(ns.corpus, ns.out, PCAConfig(**collect(ns, PCAConfig)))
    print(f"PCA baseline -> {out}")
    return 0


def _bench(ns: argparse.Namespace) -> int:
    from .bench import run_benchmarks

    if Path(ns.out).is_dir():
        raise UserError(f"{ns.out}: is a folder, expected a markdown file path; pass e.g. {ns.out}/bench.md")
    run_benchmarks(ns.out, quick=ns.quick)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m txfm", description="TxFM: masked-autoencoder transformer for RNA-seq counts", epilog=EXIT_CODES_HELP)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train (or resume) a run on a corpus",
                       description=f"Train TxFM on a corpus. Presets: {', '.join(f'{k} {v}' for k, v in PRESETS.items())}. "
                                   "Under torchrun, DDP is used automatically (nccl on GPU, gloo on CPU).")
    add_dataclass_args(t, TrainConfig, required={"corpus", "out"})
    add_dataclass_args(t, ModelConfig, skip={"n_genes"}, defaults={"dim": "preset", "depth": "preset",
                                                                   "heads": "preset", "drop_path": "preset"})
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.pt exactly; options given with it must equal "
                        "the run's own, except --corpus, --workers, --device, --log-every, --save-every, "
                        "--keep-last and --max-steps (e.g. to extend the run)")
    t.add_argument("--overwrite", action="store_true",
                   help="replace an existing run in --out with a new one (trained beside it, swapped in when "
                        "finished); without it an existing run is refused. A folder that is not a run is "
                        "never replaced")
    t.set_defaults(func=_train)

    e = sub.add_parser("embed", help="CLS embeddings of a corpus' samples (count files: python -m data embed)")
    e.add_argument("--checkpoint", required=True, help="a TxFM checkpoint (.pt)")
    e.add_argument("--input", required=True, help="a corpus folder (for .h5ad/10x/CSV count files use "
                   "`python -m data embed`, which validates and harmonises them)")
    e.add_argument("--out", required=True, help="output .npz with 'cls' (n, d), 'sample_id' and optionally 'layers'")
    e.add_argument("--overwrite", action="store_true", help="replace an existing embeddings .npz at --out "
                   "(any other existing file is refused)")
    e.add_argument("--max-genes", type=int, default=None, help="cap on genes shown to the encoder (default: training K)")
    e.add_argument("--all-layers", action="store_true", help="also save the CLS state after each block")
    e.add_argument("--batch-size", type=int, default=None,
                   help="samples per forward pass (default: 16 on CPU, 256 on GPU)")
    e.add_argument("--seed", type=int, default=0, help="seed of the gene selection when capped (default: 0)")
    e.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: cpu)")
    e.set_defaults(func=_embed)

    from .baseline import PCAConfig

    b = sub.add_parser("baseline-pca", help="fit the PCA baseline on a corpus")
    b.add_argument("--corpus", required=True, help="corpus directory")
    b.add_argument("--out", required=True, help="output file (.pt, plain types)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing PCA baseline file at --out "
                   "(any other existing file is refused)")
    add_dataclass_args(b, PCAConfig)
    b.set_defaults(func=_baseline)

    k = sub.add_parser("bench", help="throughput, MFU, MAE asymmetry and reader benchmarks -> a markdown table")
    k.add_argument("--out", default="docs/bench-txfm.md", help="markdown file to write (default: docs/bench-txfm.md)")
    k.add_argument("--quick", action="store_true", help="few steps only (smoke test of the benchmark itself)")
    k.set_defaults(func=_bench)

    return p


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the subcommand; errors propagate to `common.errors.run_main`."""
    ns = build_parser().parse_args(argv)
    return ns.func(ns)


def expected_errors() -> tuple[type[BaseException], ...]:
    """txfm's exceptions that carry a user-facing message (printed in one line, exit 2)."""
    from .trainer import TrainingDiverged
    return (TrainingDiverged,)


if __name__ == "__main__":
    from common.errors import run_main
    sys.exit(run_main(main, expected=expected_errors()))
