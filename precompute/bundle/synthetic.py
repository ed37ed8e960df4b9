"""Synthetic bundles with known structure, for tests and benchmarks (the bundle contract's one writer of them).

Two writers, for two needs:
* ``make_synthetic_bundle``: planted-block matrices and matching reference tables run through the
  real pipeline (``build_bundle``: subspaces, recall, kNN, UMAP, Leiden, enrichment); for the
  pipeline's tests and ``precompute bench``.
* ``make_planted_bundle``: named gene programs (p53, ribosome, interferon, with real symbols and
  aliases) written directly, with planted layouts and modules, in seconds at 45,000 genes; for
  the app's tests and ``app.bench`` (``python -m precompute synthetic --planted``).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from common.outputs import discard_staging, remove_stale_staging, stage_dir

from . import files as bundle_files
from .files import finalise, now_iso, save_npy, save_parquet, write_json_atomic

REFERENCE_SOURCES = ("CORUM", "huMAP", "Reactome", "SIGNOR", "StringDB")


def synthetic_genes(n_genes: int) -> pd.DataFrame:
    """Gene table: symbol SYN00000..., ensembl_id ENSG9xxxxxxxxxx (fake, well-formed)."""
    width = max(5, len(str(n_genes - 1)))
    return pd.DataFrame({"symbol": [f"SYN{i:0{width}d}" for i in range(n_genes)],
                         "ensembl_id": [f"ENSG9{i:010d}" for i in range(n_genes)]})


def planted_blocks(n_genes: int, n_blocks: int, structured_fraction: float,
                   rng: np.random.Generator) -> np.ndarray:
    """(G,) block label per gene, -1 for unstructured genes; block sizes vary (Dirichlet)."""
    n_struct = int(round(n_genes * structured_fraction))
    sizes = rng.multinomial(n_struct - 5 * n_blocks, rng.dirichlet(np.full(n_blocks, 2.0))) + 5
    labels = np.full(n_genes, -1, dtype=np.int64)
    labels[:n_struct] = np.repeat(np.arange(n_blocks), sizes)
    return labels[rng.permutation(n_genes)]


def synthetic_matrices(n_genes: int, dims: dict[str, int], n_blocks: int = 40,
                       structured_fraction: float = 0.8, signal: float = 1.5, seed: int = 0
                       ) -> tuple[dict[str, np.ndarray], pd.DataFrame, np.ndarray]:
    """Gene matrices with planted blocks.

    Each gene has a latent vector (block factor * signal + unit noise) in 32 dims; each matrix is
    a random linear map of the latent plus isotropic noise, so all matrices share the blocks.

    Returns:
        matrices {name: (G, D) float32}, genes table (symbol, ensembl_id), blocks (G,) int (-1 = none).
    """
    rng = np.random.default_rng(seed)
    blocks = planted_blocks(n_genes, n_blocks, structured_fraction, rng)
    latent_dim = 32
    factors = rng.standard_normal((n_blocks, latent_dim))
    latent = rng.standard_normal((n_genes, latent_dim))
    inb = blocks >= 0
    latent[inb] += signal * factors[blocks[inb]]
    mats = {}
    for name, d in dims.items():
        proj = rng.standard_normal((latent_dim, d)) / np.sqrt(latent_dim)
        mats[name] = (latent @ proj + 0.3 * rng.standard_normal((n_genes, d))).astype(np.float32)
    return mats, synthetic_genes(n_genes), blocks


def write_synthetic_references(ref_dir: Path, symbols: list[str], blocks: np.ndarray,
                               pairs_per_source: int = 2000, random_share: float = 0.3,
                               n_random_sets: int = 50, seed: int = 0) -> Path:
    """Write a reference folder (docs/formats.md layout) matching planted blocks.

    pairs/SOURCE.tsv: pairs inside blocks, plus `random_share` random pairs. gmt/: SYN_BLOCKS
    (one term per block) and SYN_RANDOM (random sets of 10-100 genes). genes/genes.tsv: aliases.
    """
    rng = np.random.default_rng(seed)
    ref_dir = Path(ref_dir)
    for sub in ("pairs", "gmt", "genes"):
        (ref_dir / sub).mkdir(parents=True, exist_ok=True)
    symbols = np.asarray(symbols, dtype=object)
    g = len(symbols)
    members = [np.nonzero(blocks == b)[0] for b in range(blocks.max() + 1)]
    members = [m for m in members if m.size >= 2]
    tables = []
    for src in REFERENCE_SOURCES:
        n_rand = int(pairs_per_source * random_share)
        n_in = pairs_per_source - n_rand
        which = rng.integers(0, len(members), n_in)
        a = np.array([rng.choice(members[w], 2, replace=False) for w in which]).reshape(-1, 2)
        r1 = rng.integers(0, g, n_rand)
        r2 = (r1 + rng.integers(1, g, n_rand)) % g
        p = np.vstack([a, np.stack([r1, r2], 1)])
        p = np.unique(np.sort(p, axis=1), axis=0)
        df = pd.DataFrame({"gene_a": symbols[p[:, 0]], "gene_b": symbols[p[:, 1]]})
        f = ref_dir / "pairs" / f"{src}.tsv"
        df.to_csv(f, sep="\t", index=False)
        tables.append({"name": src, "kind": "pairs", "file": f"pairs/{src}.tsv",
                       "source_package": "synthetic", "version": "0", "licence": "CC0",
                       "n_records": int(len(df)), "n_genes": int(len(np.unique(p)))})
    with open(ref_dir / "gmt" / "SYN_BLOCKS.gmt", "w") as f:
        for b, m in enumerate(members):
            f.write(f"BLOCK_{b:03d}\tplanted block {b}\t" + "\t".join(symbols[m]) + "\n")
    with open(ref_dir / "gmt" / "SYN_RANDOM.gmt", "w") as f:
        for t in range(n_random_sets):
            m = rng.choice(g, int(rng.integers(10, 101)), replace=False)
            f.write(f"RANDOM_{t:03d}\trandom set\t" + "\t".join(symbols[m]) + "\n")
    for lib in ("SYN_BLOCKS", "SYN_RANDOM"):
        tables.append({"name": lib, "kind": "gmt", "file": f"gmt/{lib}.gmt", "source_package": "synthetic",
                       "version": "0", "licence": "CC0"})
    pd.DataFrame({"symbol": symbols, "ensembl_id": [f"ENSG9{i:010d}" for i in range(g)],
                  "entrez_id": "", "name": [f"synthetic gene {i}" for i in range(g)],
                  "aliases": [f"SYNA{i}|ALT-{s}" for i, s in enumerate(symbols)],
                  "previous_symbols": ""}).to_csv(ref_dir / "genes" / "genes.tsv", sep="\t", index=False)
    tables.append({"name": "genes", "kind": "genes", "file": "genes/genes.tsv", "source_package": "synthetic",
                   "version": "0", "licence": "CC0"})
    (ref_dir / "manifest.json").write_text(json.dumps(
        {"format": "txfm-references", "format_version": 1, "created": "synthetic", "tables": tables}, indent=1))
    return ref_dir


def synthetic_training_metrics(n_points: int = 50, seed: int = 0) -> pd.DataFrame:
    """A plausible decreasing loss curve (step, samples_seen, loss, lr)."""
    rng = np.random.default_rng(seed)
    step = np.arange(1, n_points + 1) * 100
    loss = 1.0 + 2.0 * np.exp(-step / 1500) + 0.02 * rng.standard_normal(n_points)
    return pd.DataFrame({"step": step, "samples_seen": step * 64, "loss": loss,
                         "lr": 1e-3 * np.minimum(1, step / 500)})


def make_synthetic_bundle(out: Path | str, n_genes: int = 2000,
                          dims: dict[str, int] | None = None, seed: int = 0,
                          params=None, force: bool = True, progress: bool = False,
                          references_dir: Path | str | None = None, overwrite: bool = False) -> Path:
    """A complete, valid bundle from planted-structure matrices (for the app and benchmarks).

    Args:
        out: bundle folder to write.
        n_genes: G. dims: {matrix name: width}, default {"codebook": 63, "decoder": 128}.
        params: precompute.pipeline.BundleParams; default uses small UMAP epochs for speed.
        references_dir: use this reference folder instead of the synthetic one written in a
            temporary directory.
    Returns:
        The bundle path (validates with precompute.bundle.validate.validate_bundle).
    """
    from ..params import BundleParams
    from ..pipeline import build_bundle

    dims = dims or {"codebook": 63, "decoder": 128}
    mats, genes, blocks = synthetic_matrices(n_genes, dims, n_blocks=max(4, n_genes // 50), seed=seed)
    if params is None:
        params = BundleParams(umap_epochs=100, null_size=min(5000, max(100, n_genes // 2)), seed=seed)
    source = {"kind": "txfm", "checkpoint": f"synthetic(n_genes={n_genes}, seed={seed})", "sha256": "",
              "model_config": {"synthetic": True, "dims": dims}, "train_config": {},
              "corpus": {"path": "", "fingerprint": "", "n_samples": 0, "n_genes": n_genes},
              "n_parameters": int(sum(n_genes * d for d in dims.values())), "samples_seen": 3200,
              "synthetic": True}
    metrics = synthetic_training_metrics(seed=seed)
    if references_dir is not None:
        return build_bundle(mats, genes, references_dir, out, source, params, force=force,
                            training_metrics=metrics, progress=progress, overwrite=overwrite)
    with tempfile.TemporaryDirectory() as tmp:
        ref = write_synthetic_references(Path(tmp) / "references", genes["symbol"].tolist(), blocks,
                                         pairs_per_source=max(200, n_genes), seed=seed)
        return build_bundle(mats, genes, ref, out, source, params, force=force,
                            training_metrics=metrics, progress=progress, overwrite=overwrite)


# ---------------------------------------------------------------------- planted programs, written directly
NAMED_PROGRAMS = {
    "p53 pathway": ["TP53", "MDM2", "CDKN1A", "BAX", "GADD45A", "BBC3", "PMAIP1", "FAS", "SESN1", "RRM2B", "TP53I3", "ZMAT3"],
    "ribosome": ["RPL3", "RPL4", "RPL5", "RPL7", "RPL10", "RPL11", "RPS3", "RPS6", "RPS8", "RPS14", "RPS19", "RPLP0"],
    "interferon response": ["ISG15", "IFIT1", "IFIT3", "MX1", "STAT1", "IRF7", "OAS1", "OAS2", "IFI6", "RSAD2", "IFI44L", "HERC5"],
}
ALIASES = {"TP53": "p53|LFS1", "CDKN1A": "p21|CIP1|WAF1", "MDM2": "HDM2", "BBC3": "PUMA", "PMAIP1": "NOXA", "ISG15": "G1P2"}
PLANTED_MATRICES = {"codebook": 31, "decoder": 64, "pca": 48}


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


def _program_matrix(program: np.ndarray, n_programs: int, dim: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    centroids = rng.normal(size=(n_programs, dim)) * 2.0
    x = rng.normal(scale=noise, size=(len(program), dim))
    in_prog = program >= 0
    x[in_prog] += centroids[program[in_prog]]
    return x.astype(np.float32)


def make_planted_bundle(out: Path | str, n_genes: int = 400, n_programs: int = 12, k: int = 20, seed: int = 0,
                        with_pca: bool = True, variant: int = 0) -> Path:
    """Write a complete bundle with planted gene programs to ``out`` directly (seconds for 45,000
    genes, no UMAP or Leiden) and return its path; for the app's tests and benchmark.

    Genes belong to programs (p53 pathway, ribosome, interferon response with real symbols and
    aliases, then generic ones); each matrix places a program's genes near a shared centroid, so
    neighbours, modules, enrichment and known pairs agree with the planted truth. Subspaces, kNN
    and recall are computed by the pipeline's own functions; the layout and the modules are
    planted (program clouds, program membership) instead of UMAP and Leiden.

    Args:
        out: bundle folder to create (an existing one is replaced once the new one is complete; the
            command checks first that it is a bundle). Built in a staging sibling, removed on failure.
        n_genes: G (>= 60: the 36 named genes and room for the other programs).
        n_programs: planted programs (>= 4); the first three are named (p53, ribosome, interferon).
        k: neighbours stored in knn/.
        seed: RNG seed; the same seed gives the same bundle.
        with_pca: include the "pca" baseline matrix.
        variant: another "checkpoint" of the same genes: programs, references and libraries stay
            those of ``seed``, the matrices' noise and layout change (for Compare).
    """
    from common.options import check_range
    named = sum(len(g) for g in NAMED_PROGRAMS.values())
    check_range("n_genes", n_genes, lo=named + 24, integer=True, what="genes of a planted bundle")
    check_range("programs", n_programs, lo=len(NAMED_PROGRAMS) + 1, integer=True, what="planted gene programs")
    out = Path(out)
    remove_stale_staging(out)                     # leftovers of killed runs (their PID is gone)
    work = stage_dir(out)
    work.mkdir(parents=True)
    try:
        return _write_planted(work, out, n_genes, n_programs, k, seed, with_pca, variant)
    except BaseException as e:
        err = discard_staging(work, out, e)
        if err is e:
            raise
        raise err from e


def _write_planted(work: Path, out: Path, n_genes: int, n_programs: int, k: int, seed: int, with_pca: bool,
                   variant: int) -> Path:
    """The body of ``make_planted_bundle``: every file into ``work``, then ``finalise`` onto ``out``."""
    from .enrichment import enrich_membership
    from ..knn import cosine_knn
    from .recall import best_rank, recall_sweep
    from .recall import pairs_to_indices
    from ..subspaces import pca_scores, spectrum_table

    rng = np.random.default_rng(seed)
    symbols, program, members = _programs(n_genes, n_programs, rng)
    sym = np.asarray(symbols, dtype=object)
    aliases = [ALIASES.get(s, "") for s in symbols]
    save_parquet(work / bundle_files.GENES, pd.DataFrame({
        "gene": np.arange(n_genes, dtype=np.int64), "symbol": symbols,
        "ensembl_id": [f"ENSG{i + 1:011d}" for i in range(n_genes)], "aliases": aliases,
        "name": [f"planted gene {i} (programme {program[i]})" if program[i] >= 0 else f"planted gene {i}"
                 for i in range(n_genes)],
        "entrez_id": [str(100000 + i) for i in range(n_genes)]}))

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
    save_parquet(work / bundle_files.PAIRS, pairs)

    # Gene-set libraries: the planted programs (half of each, so enrichment is partial) and random sets.
    hallmark = {f"HALLMARK_{n.upper().replace(' ', '_')}": [symbols[r] for r in rows[: max(3, len(rows) * 3 // 4)]]
                for n, rows in members.items()}
    go = {f"GO_RANDOM_{j:03d}": [symbols[r] for r in rng.choice(n_genes, 15, replace=False)] for j in range(30)}
    libraries = {"Hallmark_synthetic": hallmark, "GO_synthetic": go}
    for lib, sets in libraries.items():
        p = work / bundle_files.gmt_file(lib)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(f"{t}\tsynthetic\t" + "\t".join(g) + "\n" for t, g in sets.items()))

    matrices, recall_tables, spectra, best, steps = {}, [], [], {}, {}
    pair_idx = pairs_to_indices(pairs, symbols)
    rng = np.random.default_rng([seed, variant])
    for name, dim in PLANTED_MATRICES.items():
        if name == "pca" and not with_pca:
            continue
        m = _program_matrix(program, n_programs, dim, noise={"codebook": 1.4, "decoder": 1.6, "pca": 2.2}[name], rng=rng)
        save_npy(work / bundle_files.matrix_file(name), m)
        scores, ev = pca_scores(m)
        save_npy(work / bundle_files.subspace_file(name), scores)
        spectra.append(spectrum_table(name, ev))
        ranks = [r for r in (4, 8, 16, 32, 64) if r <= scores.shape[1]]
        rec = recall_sweep(scores, pair_idx, ranks, n_nulls=3, null_size=min(n_genes, 2000), seed=seed)
        rec.insert(0, "matrix", name)
        recall_tables.append(rec)
        top = best_rank(rec)
        best[name] = {"rank": int(top["rank"]), "recall": float(top.recall_mean), "source": "mean_of_sources",
                      "population": "whole vocabulary", "n_genes": n_genes}
        # The chosen rank (kNN, manifest) follows a fixed policy like precompute's "paper" one,
        # so it can differ from the best-recall rank: the app must use the manifest's.
        chosen = 8
        matrices[name] = {"shape": list(m.shape), "rank": chosen}
        idx, sims = cosine_knn(scores[:, :chosen], k)
        save_npy(work / bundle_files.knn_files(name)[0], idx)
        save_npy(work / bundle_files.knn_files(name)[1], sims)
        # A UMAP-like layout: programs as separate clouds, background genes spread in between.
        centres = rng.uniform(-12, 12, size=(n_programs + 1, 2))
        centres[n_programs] = 0
        spread = np.where(program >= 0, 1.0, 6.0)[:, None]
        xy = centres[np.where(program >= 0, program, n_programs)] + rng.normal(size=(n_genes, 2)) * spread
        save_parquet(work / bundle_files.umap_file(name), pd.DataFrame({"gene": np.arange(n_genes), "x": xy[:, 0], "y": xy[:, 1]}))
        coarse = np.where(program >= 0, program, n_programs)
        fine = coarse * 2 + (rng.random(n_genes) < 0.5)
        mods = pd.DataFrame({"gene": np.arange(n_genes), "res_0.5": coarse.astype(np.int64), "res_1.0": fine.astype(np.int64)})
        save_parquet(work / bundle_files.modules_file(name), mods)
        enr = [enrich_membership(mods[res].to_numpy(), sym, sets, lib, float(res[4:]), min_set_size=3)
               for res in ("res_0.5", "res_1.0") for lib, sets in libraries.items()]
        save_parquet(work / bundle_files.enrichment_file(name), pd.concat(enr, ignore_index=True))
    save_parquet(work / bundle_files.SPECTRUM, pd.concat(spectra, ignore_index=True))
    table = pd.concat(recall_tables, ignore_index=True)
    table["population"], table["n_genes"] = "whole vocabulary", n_genes
    save_parquet(work / bundle_files.RECALL, table)
    write_json_atomic(work / bundle_files.BEST, best)
    stepno = np.arange(0, 2001, 50)
    save_parquet(work / bundle_files.METRICS, pd.DataFrame({
        "step": stepno, "samples_seen": stepno * 64, "loss": 0.6 + 2.0 * np.exp(-stepno / 400) + rng.normal(0, 0.02, len(stepno))}))
    for s in ("subspaces", "recall", "knn", "umap", "modules", "enrichment"):
        steps[s] = {"params": {"synthetic": True, "seed": seed}, "seconds": 0.0, "finished": now_iso()}
    manifest = {
        "format": bundle_files.BUNDLE_FORMAT, "format_version": bundle_files.BUNDLE_FORMAT_VERSION, "created": now_iso(),
        "source": {"kind": "txfm", "checkpoint": f"synthetic-seed{seed}", "sha256": f"{seed:064x}",
                   "model_config": {"preset": "synthetic", "d_model": 32, "n_layers": 2, "n_heads": 2},
                   "train_config": {"epochs": 1, "batch_size": 64},
                   "corpus": {"path": "corpora/synthetic", "n_samples": 128000, "n_genes": n_genes,
                              "datasets": ["synthetic_a", "synthetic_b"]},
                   "n_parameters": 1_234_567, "samples_seen": int(stepno[-1] * 64)},
        "matrices": matrices, "steps": steps,
    }
    return finalise(work, out, manifest)
