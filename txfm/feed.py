"""Batches onto the training device: pinned host memory, non-blocking copies on a side stream, the
next batch prefetched while the current one trains, and the dense batch built on the device.

The host side (txfm.dataset.sparse_batch) ships a few MB per batch: the preprocessed CSR values,
dataset ids and the encoder's inputs. ``densify`` builds the dense target and the measured and revealed
masks with torch wherever those tensors are, so on a GPU the (B, G) tensors are made in device memory
and never cross a process or the host-device link; on a CPU the same code runs on the host.
"""
from __future__ import annotations

from typing import Iterable, Iterator

import torch
from torch.utils.data import IterableDataset


def densify(batch: dict[str, torch.Tensor], measured_by_dataset: torch.Tensor) -> dict[str, torch.Tensor]:
    """The dense training batch from a ``sparse_batch``, built with torch wherever its tensors are (the
    training device): ``target`` [B, G] float32 (preprocessed values), ``measured`` [B, G] bool (a gather
    from ``measured_by_dataset`` (D, G) bool, on the same device) and ``revealed`` [B, G] bool, beside
    ``gene_idx``, ``values`` and ``pad_mask`` (absent when no row is padded). No host synchronisation:
    every size is known from shapes. A batch that is already dense is returned as it is.
    """
    if "target" in batch:
        return batch
    data, gene_idx = batch["data"], batch["gene_idx"]
    b, g, dev = gene_idx.shape[0], measured_by_dataset.shape[1], data.device
    rows = torch.repeat_interleave(torch.arange(b, device=dev), batch["indptr"].diff(), output_size=data.shape[0])
    target = torch.zeros(b * g, dtype=torch.float32, device=dev)
    target[rows * g + batch["indices"].long()] = data
    pad = batch.get("pad_mask")
    cols = gene_idx if pad is None else gene_idx.masked_fill(pad, g)   # padding lands in a spare column
    revealed = torch.zeros(b, g + 1, dtype=torch.bool, device=dev).scatter_(1, cols, True)[:, :g]
    out = {"gene_idx": gene_idx, "values": batch["values"], "target": target.view(b, g),
           "measured": measured_by_dataset[batch["datasets"]], "revealed": revealed}
    if pad is not None:
        out["pad_mask"] = pad
    return out


class HostDense(IterableDataset):
    """Dense batches built on the host from a stream of sparse ones (by the DataLoader worker that reads
    the stream). The stream has ``path``, its corpus folder, and yields ``txfm.dataset.sparse_batch``es."""

    def __init__(self, stream: IterableDataset):
        self.stream = stream

    def __iter__(self):
        from .corpus import Corpus
        measured = torch.from_numpy(Corpus(self.stream.path).measured_matrix())
        for batch in self.stream:
            yield densify(batch, measured)


def loader_source(stream: IterableDataset, device: torch.device, workers: int) -> IterableDataset:
    """What the DataLoader iterates for a run on ``device`` with ``workers`` processes: sparse batches,
    densified by DeviceFeed on the device, except on a CPU with workers, where the workers densify (the
    same ``densify``, on cores beside the training step rather than in its way)."""
    return HostDense(stream) if torch.device(device).type == "cpu" and workers > 0 else stream


def resolve_device(pref: str = "auto") -> torch.device:
    """'auto' -> the first CUDA device when there is one, else the CPU; anything else as given."""
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(pref)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Every tensor of a batch on ``device`` (non-blocking: from pinned memory the copy overlaps compute)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class DeviceFeed:
    """Iterate dense batches on ``device`` from an iterable of host batches (sparse or dense).

    On CUDA the next batch is copied and densified on a side stream while the current step runs (one
    batch ahead); the compute stream waits for it only when it takes the batch. On a CPU it densifies
    in place, one batch at a time. Taking one batch ahead does not change which batches a run sees.
    """

    def __init__(self, batches: Iterable[dict[str, torch.Tensor]], device: torch.device,
                 measured_by_dataset: torch.Tensor):
        self.it = iter(batches)
        self.device = torch.device(device)
        self.measured = measured_by_dataset.to(self.device)
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._next = self._load() if self.stream is not None else None

    def _load(self) -> dict[str, torch.Tensor] | None:
        try:
            host = next(self.it)
        except StopIteration:
            return None
        with torch.cuda.stream(self.stream):
            return densify(to_device(host, self.device), self.measured)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self.stream is None:
            return densify(to_device(next(self.it), self.device), self.measured)
        batch = self._next
        if batch is None:
            raise StopIteration
        current = torch.cuda.current_stream(self.device)
        current.wait_stream(self.stream)
        for v in batch.values():      # made on the side stream, used on this one: keep the memory until then
            v.record_stream(current)
        self._next = self._load()
        return batch


__all__ = ["densify", "to_device", "DeviceFeed", "HostDense", "loader_source", "resolve_device"]
