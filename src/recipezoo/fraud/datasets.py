"""The loaders' view of the fraud splits: whole batches gathered from in-memory tensors, and the training sampler."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset, WeightedRandomSampler, default_collate

SAMPLERS = ("none", "balanced", "ratio")


class Batch(tuple):
    """Rows already gathered into batch tensors by :meth:`GatherRows.__getitems__`."""


class GatherRows(TensorDataset):
    """The loaders' view of a split's tensors: a DataLoader fetches a whole batch with one gather per tensor.

    PyTorch's DataLoader calls ``__getitems__`` with a batch's indices when a dataset has it. One fancy index per
    tensor is 5-30x faster than indexing rows one by one and stacking them, which would otherwise dominate the step
    time of small tabular models. Only used with :func:`collate_rows`, which knows such batches are complete.
    """

    def __getitems__(self, indices: list[int]) -> Batch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return Batch(t[idx] for t in self.tensors)


def collate_rows(batch: Any) -> Any:
    """Collate function of the loaders: batches gathered by ``__getitems__`` as they are, else the default."""
    if isinstance(batch, Batch):
        return list(batch)  # a list, as default_collate returns for tuples of tensors
    return default_collate(batch)


def train_sampler(y: np.ndarray, sampler: str, ratio: float) -> WeightedRandomSampler | None:
    """The sampler of training batches: None (plain shuffling) for ``none`` or without positives, else weighted
    draws with replacement whose expected positive share is one half (``balanced``) or ``ratio``."""
    if sampler == "none":
        return None
    n_pos = int(y.sum())
    if n_pos == 0:
        return None
    share = 0.5 if sampler == "balanced" else ratio
    # Each positive drawn with probability share / n_pos, each negative (1 - share) / n_neg: the expected
    # positive share of a batch is `share`. Draws use torch's global RNG, which checkpoints save and restore.
    weights = np.where(y == 1, share / n_pos, (1 - share) / max(len(y) - n_pos, 1))
    return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), num_samples=len(y), replacement=True)


__all__ = ["SAMPLERS", "Batch", "GatherRows", "collate_rows", "train_sampler"]
