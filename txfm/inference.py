"""Inference: sample embeddings for any count matrix, and the gene weight matrices."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm import tqdm

from common.gene_ids import IdentifierIndex

from .checkpoint import load_file, load_model, CheckpointError
from .config import TrainConfig, from_dict
from .dataset import BatchSpec, MeasuredGenes, encoder_inputs, library_targets, sample_rng, sparse_batch
from .model import TxFM
from .preprocessing import preprocess


@dataclass
class VocabularyMapping:
    """How a query's genes map onto a checkpoint's vocabulary (``map_to_vocabulary``)."""

    index: np.ndarray  # (g,) vocabulary index per query gene, -1 when unknown
    unknown: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)  # query genes mapping to an already-used vocabulary gene

    @property
    def n_mapped(self) -> int:
        return int((self.index >= 0).sum())

    def summary(self) -> str:
        s = f"{self.n_mapped}/{self.index.size} genes mapped onto the vocabulary"
        if self.unknown:
            s += f"; {len(self.unknown)} unknown (e.g. {', '.join(self.unknown[:5])})"
        if self.duplicated:
            s += f"; {len(self.duplicated)} duplicates summed (e.g. {', '.join(self.duplicated[:5])})"
        return s


def map_to_vocabulary(query: Sequence[str], genes: Sequence[str], gene_ids: Sequence[str] | None = None
                      ) -> VocabularyMapping:
    """Map query identifiers to vocabulary indices with the project's one resolver
    (``common.gene_ids.IdentifierIndex``: exact symbol, Ensembl id with any version, then
    case-insensitive symbol; the first vocabulary gene wins a tie). A count file's aliases and
    previous symbols are resolved before this, by ``python -m data embed`` (the gene table)."""
    index = IdentifierIndex(list(genes), list(gene_ids) if gene_ids is not None else None)
    idx = np.asarray(index.first_rows(map(str, query)), dtype=np.int64)
    unknown = [str(q) for q, i in zip(query, idx) if i < 0]
    seen, dups = set(), []
    for q, i in zip(query, idx):
        if i >= 0:
            if i in seen:
                dups.append(str(q))
            seen.add(int(i))
    return VocabularyMapping(idx, unknown, dups)


def project_counts(counts, mapping: VocabularyMapping, n_genes: int) -> sp.csr_matrix:
    """(n, g) counts in query order -> (n, G) CSR in vocabulary order (unknown genes dropped, duplicates summed)."""
    x = sp.csr_matrix(counts)
    keep = np.flatnonzero(mapping.index >= 0)
    proj = sp.csr_matrix((np.ones(keep.size), (keep, mapping.index[keep])), shape=(x.shape[1], n_genes))
    return (x @ proj).tocsr()


@dataclass
class Embeddings:
    cls: np.ndarray  # (n, d) final CLS embeddings
    layers: np.ndarray | None  # (n, depth, d) CLS state after each block, when requested
    mapping: VocabularyMapping


def default_batch_size(device: str | torch.device) -> int:
    """Samples per forward pass when none is given: 16 on a CPU, whose caches a small batch keeps
    warm (`txfm bench` measures it against the training step), 256 on a GPU, which a large batch fills."""
    return 256 if torch.device(device).type == "cuda" else 16


@torch.no_grad()
def embed(checkpoint: str | os.PathLike, counts, genes: Sequence[str], max_genes: int | None = None,
          seed: int = 0, batch_size: int | None = None, all_layers: bool = False, device: str = "cpu",
          progress: bool = True) -> Embeddings:
    """CLS embeddings of samples.

    counts: (n, g) raw counts (dense or sparse) with columns named by ``genes`` (symbols or Ensembl ids).
    Every mapped gene counts as measured; the encoder sees all of them up to ``max_genes`` (default: the
    run's training K), chosen deterministically from ``seed``.
    """
    from common.options import check_range

    check_range("batch_size", batch_size, lo=1, integer=True, none_ok=True, what="samples per forward pass")
    check_range("max_genes", max_genes, lo=1, integer=True, none_ok=True, what="genes shown to the encoder")
    model, ck = load_model(checkpoint)
    model.to(device)
    mapping = map_to_vocabulary(genes, ck["genes"], ck.get("gene_ids"))
    if mapping.n_mapped == 0:
        raise ValueError(f"none of the {len(genes)} genes is in the checkpoint's vocabulary of "
                         f"{len(ck['genes'])} genes (e.g. {list(genes)[:3]}); harmonise gene ids first")
    if mapping.unknown:
        warnings.warn(mapping.summary(), stacklevel=2)
    x = project_counts(counts, mapping, model.cfg.n_genes)
    spec = training_spec(ck, model, max_genes)
    measured = np.zeros((1, model.cfg.n_genes), dtype=bool)
    measured[0, mapping.index[mapping.index >= 0]] = True
    cls_out, layer_out = encode_counts(model, x, measured, spec, seed=seed, batch_size=batch_size,
                                       all_layers=all_layers, device=device, progress=progress)
    return Embeddings(cls_out, layer_out, mapping)


def training_spec(ck: dict, model: TxFM, max_genes: int | None = None) -> BatchSpec:
    """How the run behind checkpoint ``ck`` normalised samples and chose the genes its encoder saw (K or
    ``max_genes``, the draw law: uniform, frequency-weighted, expressed genes first, K per sample as a share
    of its expressed genes): inference shows the encoder genes drawn by the law it was trained with."""
    tc = from_dict(TrainConfig, {"corpus": "", "out": "", **ck.get("train_config", {})})
    return BatchSpec(max_genes or tc.reveal, tc.preprocessing, model.cfg.library_size, reveal_weights(ck),
                     library_norm=tc.library_norm, reveal_detected=tc.reveal_detected,
                     reveal_fraction=tc.reveal_fraction)


def reveal_weights(ck: dict) -> np.ndarray | None:
    """(G,) reveal sampling weights of a run trained with --reveal-tau != 0 (None: uniform).

    Inference must draw the genes it shows the encoder with the law training used; a checkpoint
    saved before the weights were recorded is rebuilt from its corpus if that is still at hand."""
    info = ck.get("corpus", {})
    if info.get("reveal_weights") is not None:
        return np.asarray(info["reveal_weights"], dtype=np.float64)
    tau = ck.get("train_config", {}).get("reveal_tau", 0.0)
    if not tau:
        return None
    raise CheckpointError(f"the checkpoint was trained with --reveal-tau {tau} but does not record its reveal "
                          "weights (saved by an older version of txfm train); retrain it to embed with it")


@torch.no_grad()
def encode_counts(model: TxFM, x: sp.csr_matrix, measured: np.ndarray, spec: BatchSpec, seed: int = 0,
                  batch_size: int | None = None, all_layers: bool = False, device: str = "cpu",
                  progress: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Forward-only CLS embeddings of raw counts in vocabulary order.

    x: (n, G) raw counts (CSR); measured: (1, G) bool genes the samples measure. Only the revealed
    genes' values are looked up (no dense (B, G) target), so this runs well above training speed.
    Returns cls (n, d) float32 and, with ``all_layers``, (n, depth, d). ``batch_size`` None:
    ``default_batch_size(device)``; a sample's embedding does not depend on the batch it is in.
    """
    batch_size = batch_size or default_batch_size(device)
    model.eval()
    cls_out, layer_out = [], []
    for i in tqdm(range(0, x.shape[0], batch_size), disable=not progress, desc="embed", unit="batch"):
        rows = x[i:i + batch_size]
        z = sp.csr_matrix(preprocess(rows, spec.preprocessing, library_targets(measured, spec)))
        z.sort_indices()
        gene_idx, values, pad = encoder_inputs(z, measured, [sample_rng(seed, 0, i + j) for j in range(rows.shape[0])],
                                               spec)
        res = model.forward_encoder(torch.from_numpy(gene_idx).to(device), torch.from_numpy(values).to(device),
                                    torch.from_numpy(pad).to(device) if pad.any() else None, all_layers=all_layers)
        if all_layers:
            cls_out.append(res[0].float().cpu().numpy())
            layer_out.append(torch.stack(res[1], dim=1).float().cpu().numpy())
        else:
            cls_out.append(res.float().cpu().numpy())
    return np.concatenate(cls_out), (np.concatenate(layer_out) if all_layers else None)


@torch.no_grad()
def contextual_gene_embeddings(checkpoint: str | os.PathLike, corpus: str | os.PathLike, n_samples: int = 2048,
                               seed: int = 0, batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """(G, d) mean encoder output token of each gene over ``n_samples`` random corpus samples.

    Each sample reveals genes as in training (K from the run, measured genes only); a gene's vector
    is the mean of its output token over the samples that revealed it; genes never revealed get zeros.
    """
    from .corpus import Corpus

    model, ck = load_model(checkpoint)
    c = Corpus(corpus)
    if c.genes != ck["genes"]:
        raise CheckpointError(f"{corpus}: its gene vocabulary differs from {checkpoint}'s; use the training corpus")
    spec = training_spec(ck, model)
    rows = np.sort(np.random.default_rng(seed).permutation(c.n_samples)[:n_samples])
    measured = MeasuredGenes(c.measured_matrix())
    sums = torch.zeros(model.cfg.n_genes, model.cfg.dim, dtype=torch.float64)
    counts = torch.zeros(model.cfg.n_genes, dtype=torch.float64)
    for i in tqdm(range(0, rows.size, batch_size), disable=not progress, desc="contextual", unit="batch"):
        sel = rows[i:i + batch_size]
        x, d = c.read_rows(sel)
        b = sparse_batch(x, d, [sample_rng(seed, 0, r) for r in sel], measured, spec)  # the encoder's inputs only
        pad = b.get("pad_mask", torch.zeros(b["gene_idx"].shape, dtype=torch.bool))
        tok = model.forward_encoder(b["gene_idx"], b["values"], b.get("pad_mask"), tokens=True)[:, 1:]  # [B, K, d]
        keep = ~pad
        sums.index_add_(0, b["gene_idx"][keep], tok[keep].double())
        counts.index_add_(0, b["gene_idx"][keep], torch.ones(int(keep.sum()), dtype=torch.float64))
    out = sums / counts.clamp(min=1)[:, None]
    return out.float().numpy()


def is_embeddings_file(path: str | os.PathLike) -> bool:
    """Whether `path` is an embeddings file written by `txfm embed` / `data embed` (an .npz holding 'cls')."""
    import zipfile
    try:
        with zipfile.ZipFile(path) as z:
            return "cls.npy" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def gene_table(genes: Sequence[str], gene_ids: Sequence[str] | None,
               support: Sequence[int] | None = None) -> pd.DataFrame:
    """(symbol, ensembl_id[, support]) per gene; support = datasets measuring the gene well
    (txfm.dataset.gene_support), present when the checkpoint recorded it."""
    ids = list(gene_ids) if gene_ids else [""] * len(genes)
    df = pd.DataFrame({"symbol": list(genes), "ensembl_id": ids})
    if support is not None and len(support) == len(df):
        df["support"] = np.asarray(support, dtype=np.int32)
    return df


def gene_matrices(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], pd.DataFrame, dict]:
    """Gene weight matrices of a TxFM checkpoint or a PCA baseline file.

    Returns ({"codebook": (G, d-1), "decoder": (G, h)} or {"pca": (G', k)}, genes (symbol, ensembl_id),
    meta with kind, model_config, train_config, corpus, samples_seen, n_parameters).
    """
    ck = load_file(path, ("txfm-checkpoint", "txfm-pca-baseline"))
    if ck["format"] == "txfm-pca-baseline":
        from .baseline import PCABaseline
        pca = PCABaseline.from_dict(ck, path)
        meta = {"kind": "pca", "model_config": ck["config"], "train_config": {}, "corpus": ck.get("corpus", {}),
                "samples_seen": int(ck.get("n_samples_fit", 0)), "n_parameters": int(pca.components.size)}
        support = meta["corpus"].get("gene_support")  # over the corpus vocabulary; keep the PCA's genes
        support = None if support is None else np.asarray(support)[pca.gene_index]
        return {"pca": pca.gene_loadings()}, gene_table(pca.genes, pca.gene_ids, support), meta
    model, ck = load_model(path)
    mats = {k: v.float().numpy().astype(np.float32) for k, v in model.gene_matrices().items()}
    meta = {"kind": "txfm", "model_config": ck["model_config"], "train_config": ck["train_config"],
            "corpus": ck.get("corpus", {}), "samples_seen": ck.get("samples_seen", 0),
            "n_parameters": ck.get("n_parameters", model.n_parameters()), "step": ck.get("step", 0)}
    return mats, gene_table(ck["genes"], ck.get("gene_ids"), meta["corpus"].get("gene_support")), meta


__all__ = ["embed", "default_batch_size", "gene_matrices", "contextual_gene_embeddings", "map_to_vocabulary", "project_counts", "VocabularyMapping", "Embeddings",
           "CheckpointError"]
