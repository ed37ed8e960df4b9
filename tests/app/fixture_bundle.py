"""A synthetic bundle with planted gene programs, for the app's tests and benchmark (no torch).

Genes belong to programs (p53 pathway, ribosome, interferon response, then generic ones);
each matrix places a program's genes near a shared centroid, so neighbours, modules,
enrichment and known pairs all agree with the planted truth and tests can check them.

    python tests/app/fixture_bundle.py --out bundles/synthetic --genes 45000
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from precompute.enrichment import enrich_membership  # noqa: E402
from precompute.bundle_io import finalise, now_iso, partial_dir, save_npy, save_parquet, write_json_atomic  # noqa: E402
from precompute.subspaces import pca_scores, spectrum_table  # noqa: E402

NAMED_PROGRAMS = {
    "p53 pathway": ["TP53", "MDM2", "CDKN1A", "BAX", "GADD45A", "BBC3", "PMAIP1", "FAS", "SESN1", "RRM2B", "TP53I3", "ZMAT3"],
    "ribosome": ["RPL3", "RPL4", "RPL5", "RPL7", "RPL10", "RPL11", "RPS3", "RPS6", "RPS8", "RPS14", "RPS19", "RPLP0"],
    "interferon response": ["ISG15", "IFIT1", "IFIT3", "MX1", "STAT1", "IRF7", "OAS1", "OAS2", "IFI6", "RSAD2", "IFI44L", "HERC5"],
}
ALIASES = {"TP53": "p53|LFS1", "CDKN1A": "p21|CIP1|WAF1", "MDM2": "HDM2", "BBC3": "PUMA", "PMAIP1": "NOXA", "ISG15": "G1P2"}
MATRICES = {"codebook": 31, "decoder": 64, "pca": 48}


def _programs(n_genes: int, n_programs: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray, dict[str, list[int]]]:
    """Symbols (G,), program id per gene (G,) (-1 = background gene), {program name: rows}."""
    symbols = [g for genes in NAMED_PROGRAMS.values() for g in genes]
    symbols += [f"GENE{i:05d}" for i in range(n_genes - len(symbols))]
    program = np.full(n_genes, -1, dtype=np.int64)
    members: dict[str, list[int]] = {}
    start = 0
    for p, (name, genes) in enumerate(NAMED_PROGRAMS.items()):
        members[name] = list(range(start, start + len(genes)))
        program[start:start + len(genes)] = p
        start += len(genes)
    rest = np.arange(start, n_genes)
    n_in_programs = int(len(rest) * 0.6)
    chosen = rng.permutation(rest)[:n_in_programs]
    for j, chunk in enumerate(np.array_split(chosen, n_programs - len(NAMED_PROGRAMS))):
        p = len(NAMED_PROGRAMS) + j
        members[f"program {p}"] = sorted(chunk.tolist())
        program[chunk] = p
    return symbols, program, members


def _matrix(program: np.ndarray, n_programs: int, dim: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    centroids = rng.normal(size=(n_programs, dim)) * 2.0
    x = rng.normal(scale=noise, size=(len(program), dim))
    in_prog = program >= 0
    x[in_prog] += centroids[program[in_prog]]
    return x.astype(np.float32)


def _knn(x: np.ndarray, k: int, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    g = len(xn)
    idx = np.empty((g, k), np.int32)
    sims = np.empty((g, k), np.float32)
    for s in range(0, g, block):
        e = min(s + block, g)
        sim = xn[s:e] @ xn.T
        sim[np.arange(e - s), np.arange(s, e)] = -np.inf
        part = np.argpartition(-sim, k, axis=1)[:, :k]
        v = np.take_along_axis(sim, part, axis=1)
        order = np.argsort(-v, axis=1, kind="stable")
        idx[s:e] = np.take_along_axis(part, order, axis=1)
        sims[s:e] = np.take_along_axis(v, order, axis=1)
    return idx, sims


def _recall(xn: np.ndarray, pairs: np.ndarray, rng: np.random.Generator) -> float:
    null_a, null_b = rng.integers(0, len(xn), 5000), rng.integers(0, len(xn), 5000)
    null = np.einsum("ij,ij->i", xn[null_a], xn[null_b])
    lo, hi = np.quantile(null, [0.05, 0.95])
    s = np.einsum("ij,ij->i", xn[pairs[:, 0]], xn[pairs[:, 1]])
    return float(np.mean((s < lo) | (s > hi)))


def make_bundle(out: Path, n_genes: int = 400, n_programs: int = 12, k: int = 20, seed: int = 0,
                with_pca: bool = True, variant: int = 0) -> Path:
    """Write a complete synthetic bundle to ``out`` (atomically) and return its path.

    Args:
        out: bundle folder to create (replaced if present).
        n_genes: G (>= 60).
        n_programs: planted programs (>= 4); the first three are named (p53, ribosome, interferon).
        k: neighbours stored in knn/.
        seed: RNG seed; the same seed gives the same bundle.
        with_pca: include the "pca" baseline matrix.
        variant: another "checkpoint" of the same genes: programs, references and libraries stay
            those of ``seed``, the matrices' noise and layout change (for Compare).
    """
    rng = np.random.default_rng(seed)
    out = Path(out)
    work = partial_dir(out)
    if work.exists():
        import shutil
        shutil.rmtree(work)
    work.mkdir(parents=True)
    symbols, program, members = _programs(n_genes, n_programs, rng)
    sym = np.asarray(symbols, dtype=object)
    aliases = [ALIASES.get(s, "") for s in symbols]
    save_parquet(work / "genes.parquet", pd.DataFrame({
        "gene": np.arange(n_genes, dtype=np.int64), "symbol": symbols,
        "ensembl_id": [f"ENSG{i + 1:011d}" for i in range(n_genes)], "aliases": aliases}))

    # Known pairs: within-program pairs from two sources, plus a few random ones.
    prog_rows = [np.asarray(r) for r in members.values()]
    pair_rows = []
    for src, n_per in (("CORUM", 3), ("StringDB", 6)):
        for rows in prog_rows:
            a, b = rng.choice(rows, n_per), rng.choice(rows, n_per)
            keep = a != b
            pair_rows += [(src, sym[x], sym[y]) for x, y in zip(a[keep], b[keep])]
    for rows in prog_rows[: len(NAMED_PROGRAMS)]:   # hubs: the first named gene pairs with four others
        pair_rows += [("CORUM", sym[rows[0]], sym[r]) for r in rows[1:5]]
    pairs = pd.DataFrame(pair_rows, columns=["source", "gene_a", "gene_b"]).drop_duplicates(ignore_index=True)
    save_parquet(work / "references" / "pairs.parquet", pairs)
    pos = {s: i for i, s in enumerate(symbols)}

    # Gene-set libraries: the planted programs (half of each, so enrichment is partial) and random sets.
    hallmark = {f"HALLMARK_{n.upper().replace(' ', '_')}": [symbols[r] for r in rows[: max(3, len(rows) * 3 // 4)]]
                for n, rows in members.items()}
    go = {f"GO_RANDOM_{j:03d}": [symbols[r] for r in rng.choice(n_genes, 15, replace=False)] for j in range(30)}
    libraries = {"Hallmark_synthetic": hallmark, "GO_synthetic": go}
    for lib, sets in libraries.items():
        p = work / "references" / "gmt" / f"{lib}.gmt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(f"{t}\tsynthetic\t" + "\t".join(g) + "\n" for t, g in sets.items()))

    matrices, recall_rows, best, steps = {}, [], {}, {}
    rng = np.random.default_rng([seed, variant])
    for name, dim in MATRICES.items():
        if name == "pca" and not with_pca:
            continue
        m = _matrix(program, n_programs, dim, noise={"codebook": 1.4, "decoder": 1.6, "pca": 2.2}[name], rng=rng)
        save_npy(work / "matrices" / f"{name}.npy", m)
        scores, ev = pca_scores(m)
        save_npy(work / "subspaces" / f"{name}.npy", scores)
        spectrum_part = spectrum_table(name, ev)
        ranks = [r for r in (4, 8, 16, 32, 64) if r <= scores.shape[1]]
        for r in ranks:
            xn = scores[:, :r] / np.maximum(np.linalg.norm(scores[:, :r], axis=1, keepdims=True), 1e-12)
            for src in ("CORUM", "StringDB"):
                sp_ = pairs[pairs.source == src]
                pr = np.stack([sp_.gene_a.map(pos).to_numpy(), sp_.gene_b.map(pos).to_numpy()], axis=1)
                vals = [_recall(xn, pr, rng) for _ in range(3)]
                recall_rows.append((name, r, src, float(np.mean(vals)), float(np.std(vals)), len(pr), 0.1))
        rec = pd.DataFrame(recall_rows, columns=["matrix", "rank", "source", "recall_mean", "recall_std", "n_pairs", "chance"])
        mine = rec[rec.matrix == name].groupby("rank").recall_mean.mean()
        best[name] = {"rank": int(mine.idxmax()), "recall": float(mine.max())}
        # The chosen rank (kNN, manifest) follows a fixed policy like precompute's "paper" one,
        # so it can differ from the best-recall rank: the app must use the manifest's.
        chosen = 8
        matrices[name] = {"shape": list(m.shape), "rank": chosen}
        idx, sims = _knn(scores[:, :chosen], k)
        save_npy(work / "knn" / f"{name}.indices.npy", idx)
        save_npy(work / "knn" / f"{name}.sims.npy", sims)
        # A UMAP-like layout: programs as separate clouds, background genes spread in between.
        centres = rng.uniform(-12, 12, size=(n_programs + 1, 2))
        centres[n_programs] = 0
        spread = np.where(program >= 0, 1.0, 6.0)[:, None]
        xy = centres[np.where(program >= 0, program, n_programs)] + rng.normal(size=(n_genes, 2)) * spread
        save_parquet(work / "umap" / f"{name}.parquet", pd.DataFrame({"gene": np.arange(n_genes), "x": xy[:, 0], "y": xy[:, 1]}))
        coarse = np.where(program >= 0, program, n_programs)
        fine = coarse * 2 + (rng.random(n_genes) < 0.5)
        mods = pd.DataFrame({"gene": np.arange(n_genes), "res_0.5": coarse.astype(np.int64), "res_1.0": fine.astype(np.int64)})
        save_parquet(work / "modules" / f"{name}.parquet", mods)
        enr = [enrich_membership(mods[res].to_numpy(), sym, sets, lib, float(res[4:]), min_set_size=3)
               for res in ("res_0.5", "res_1.0") for lib, sets in libraries.items()]
        save_parquet(work / "enrichment" / f"{name}.parquet", pd.concat(enr, ignore_index=True))
        if "spectrum" in locals():
            spectrum = pd.concat([spectrum, spectrum_part], ignore_index=True)
        else:
            spectrum = spectrum_part
    save_parquet(work / "subspaces" / "spectrum.parquet", spectrum)
    save_parquet(work / "recall" / "recall.parquet", rec)
    write_json_atomic(work / "recall" / "best.json", best)
    stepno = np.arange(0, 2001, 50)
    save_parquet(work / "training" / "metrics.parquet", pd.DataFrame({
        "step": stepno, "samples_seen": stepno * 64, "loss": 0.6 + 2.0 * np.exp(-stepno / 400) + rng.normal(0, 0.02, len(stepno))}))
    for s in ("subspaces", "recall", "knn", "umap", "modules", "enrichment"):
        steps[s] = {"params": {"synthetic": True, "seed": seed}, "seconds": 0.0, "finished": now_iso()}
    manifest = {
        "format": "txfm-bundle", "format_version": 1, "created": now_iso(),
        "source": {"kind": "txfm", "checkpoint": f"synthetic-seed{seed}", "sha256": f"{seed:064x}",
                   "model_config": {"preset": "synthetic", "d_model": 32, "n_layers": 2, "n_heads": 2},
                   "train_config": {"epochs": 1, "batch_size": 64},
                   "corpus": {"path": "corpora/synthetic", "n_samples": 128000, "n_genes": n_genes,
                              "datasets": ["synthetic_a", "synthetic_b"]},
                   "n_parameters": 1_234_567, "samples_seen": int(stepno[-1] * 64)},
        "matrices": matrices, "steps": steps,
    }
    return finalise(work, out, manifest)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Write a synthetic TxFM bundle with planted gene programs.")
    ap.add_argument("--out", type=Path, required=True, help="bundle folder to write (replaced if present)")
    ap.add_argument("--genes", type=int, default=400, help="number of genes G (default 400)")
    ap.add_argument("--programs", type=int, default=12, help="planted gene programs (default 12)")
    ap.add_argument("--k", type=int, default=20, help="neighbours stored per gene in knn/ (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--variant", type=int, default=0, help="same genes and programs, other matrix noise (default 0)")
    ap.add_argument("--no-pca", action="store_true", help="leave out the PCA baseline matrix")
    a = ap.parse_args(argv)
    print(make_bundle(a.out, a.genes, a.programs, a.k, a.seed, not a.no_pca, a.variant))


if __name__ == "__main__":
    main()
