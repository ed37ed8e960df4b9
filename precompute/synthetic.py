"""Synthetic gene matrices with planted modules, matching reference tables, and whole bundles.

For tests, the app's fixtures and the 45,000-gene benchmark. The structure is known:
genes in planted blocks share a latent factor, reference pairs are drawn inside blocks
(plus a share of random pairs), and one gene set library lists the blocks.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

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
        The bundle path (validates with precompute.validate.validate_bundle).
    """
    from .pipeline import BundleParams, build_bundle

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
