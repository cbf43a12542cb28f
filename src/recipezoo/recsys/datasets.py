"""Recommendation datasets: in-memory rows of a split whose ``__getitems__`` gathers a whole batch with a few tensor
operations (see :mod:`recipezoo.recsys.data` for the batch keys).

Each dataset reads the index structures of an :class:`~recipezoo.recsys.data.InteractionsDataModule` once, at
construction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from recipezoo.recsys.data import InteractionsDataModule


def gather_rows(
    indptr: torch.Tensor, values: torch.Tensor, rows: torch.Tensor, width: int | None = None, last: bool = False
) -> torch.Tensor:
    """Rows of a CSR matrix as a zero-padded ``(B, width)`` tensor.

    Args:
        indptr: ``(R + 1,)``.
        values: ``(nnz,)``.
        rows: ``(B,)`` row numbers.
        width: the output width (default: the longest row).
        last: keep each row's last ``width`` values, right-aligned (left padding: histories); else the first ones,
            left-aligned.
    """
    starts, ends = indptr[rows], indptr[rows + 1]
    lens = ends - starts
    if width is None:
        width = int(lens.max()) if len(lens) else 0
    width = max(int(width), 1)
    if values.numel() == 0:
        return torch.zeros(len(rows), width, dtype=values.dtype)
    offsets = torch.arange(width)
    if last:
        take = lens.clamp(max=width)
        pos = (starts + lens - take).unsqueeze(1) + offsets - (width - take).unsqueeze(1)
        ok = offsets.unsqueeze(0) >= (width - take).unsqueeze(1)
    else:
        pos = starts.unsqueeze(1) + offsets
        ok = offsets.unsqueeze(0) < lens.unsqueeze(1)
    return torch.where(ok, values[pos.clamp(0, values.numel() - 1)], torch.zeros((), dtype=values.dtype))


# -- datasets -----------------------------------------------------------------------------------------------------


class Batch(dict):
    """A batch already gathered by a dataset's ``__getitems__`` (passed through by :func:`collate`)."""


def collate(batch: Any) -> Any:
    if isinstance(batch, Batch):
        return dict(batch)
    raise TypeError("recommendation datasets gather whole batches; use the DataModule's loaders")


class _Rows(Dataset):
    """Indices 0..n-1 of a split; ``__getitems__`` builds a whole batch with a few tensor gathers."""

    def __init__(self, n: int) -> None:
        self.n = int(n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:  # pragma: no cover - the loaders always fetch batches
        return self.__getitems__([i])


class PairRows(_Rows):
    """Training interactions: user, item, rating, the user's earlier items, sampled negatives."""

    def __init__(self, dm: InteractionsDataModule) -> None:
        t = dm._train
        super().__init__(len(t["user"]))
        self.user, self.item = torch.from_numpy(t["user"]), torch.from_numpy(t["item"])
        self.rating = torch.from_numpy(t["rating"].astype(np.float32))
        self.pos = torch.from_numpy(t["pos"])
        self.explicit = dm.feedback == "explicit"
        self.history_len, self.negatives = dm.history_len, dm.negatives
        self.indptr, self.seq = torch.from_numpy(dm._train_ptr), torch.from_numpy(dm._train_items)
        self.warm = torch.from_numpy(dm._warm_items)
        self.known = dm._train_keys

    def __getitems__(self, indices: list[int]) -> Batch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        user, item = self.user[idx], self.item[idx]
        out = Batch(user=user, item=item)
        if self.explicit:
            out["rating"] = self.rating[idx]
        if self.history_len:
            # The items before this one (time order), never the item itself or later ones: no target leakage.
            starts = self.indptr[user]
            before = self.pos[idx]
            offsets = torch.arange(self.history_len) - self.history_len  # -L..-1
            at = before.unsqueeze(1) + offsets
            ok = at >= 0
            hist = self.seq[(starts.unsqueeze(1) + at.clamp(min=0)).clamp(max=max(len(self.seq) - 1, 0))]
            out["history"] = torch.where(ok, hist, torch.zeros_like(hist))
        if self.negatives:
            # Uniform over items with training interactions (torch's global RNG: seeded, saved on checkpoints).
            neg = self.warm[torch.randint(len(self.warm), (len(idx), self.negatives))]
            out["neg"] = neg
            out["neg_ok"] = ~self.known.contains(user, neg)
        return out


class SequenceRows(_Rows):
    """One training row per user: ``L`` consecutive items as inputs and, at each position, the next item as target.

    The window is the user's last ``L + 1`` items (``windows="last"``, as in the SASRec paper), or ends at a random
    point of their history, drawn anew each epoch (``windows="random"``): users with histories longer than ``L``
    then contribute all of them over the epochs, not only their most recent items.
    """

    def __init__(self, dm: InteractionsDataModule) -> None:
        self.indptr, self.seq = torch.from_numpy(dm._train_ptr), torch.from_numpy(dm._train_items)
        lens = self.indptr[1:] - self.indptr[:-1]
        self.users = torch.nonzero(lens >= 2).reshape(-1)  # a user needs an input and a target
        super().__init__(len(self.users))
        self.length, self.negatives = max(1, dm.history_len), dm.negatives
        self.random = dm.sequence_windows == "random"
        self.warm = torch.from_numpy(dm._warm_items)
        self.known = dm._train_keys

    def __getitems__(self, indices: list[int]) -> Batch:
        users = self.users[torch.as_tensor(indices, dtype=torch.long)]
        starts, lens = self.indptr[users], self.indptr[users + 1] - self.indptr[users]
        # Where each window ends (exclusive): the end of the history, or a random point with >= 2 items before it
        # (torch's global RNG: seeded, and saved in checkpoints for exact resume).
        ends = 2 + (torch.rand(len(users)) * (lens - 1)).long().clamp(max=lens - 2) if self.random else lens
        at = (starts + ends).unsqueeze(1) - (self.length + 1) + torch.arange(self.length + 1)  # (B, L + 1)
        ok = at >= starts.unsqueeze(1)
        window = torch.where(ok, self.seq[at.clamp(min=0)], torch.zeros((), dtype=self.seq.dtype))
        history, target = window[:, :-1], window[:, 1:]
        # A position whose input is padding has nothing to predict from: no target there.
        target = torch.where(history > 0, target, torch.zeros_like(target))
        out = Batch(user=users, history=history, target=target)
        if self.negatives:
            neg = self.warm[torch.randint(len(self.warm), target.shape)]
            out["neg"] = neg
            out["neg_ok"] = ~self.known.contains(users, neg) & (target > 0)
        return out


class RankingRows(_Rows):
    """Evaluation users of a split: their targets, the items to mask, their history and sampled negatives."""

    def __init__(self, dm: InteractionsDataModule, split: str) -> None:
        e = dm._eval[split]
        super().__init__(len(e["users"]))
        self.users = torch.from_numpy(e["users"])
        self.t_ptr, self.t_items = torch.from_numpy(e["target_ptr"]), torch.from_numpy(e["target_items"])
        self.s_ptr, self.s_items = torch.from_numpy(e["seen_ptr"]), torch.from_numpy(e["seen_items"])
        self.negatives = torch.from_numpy(e["negatives"]) if e.get("negatives") is not None else None
        self.history_len = dm.history_len

    def __getitems__(self, indices: list[int]) -> Batch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        users = self.users[idx]
        out = Batch(
            user=users,
            targets=gather_rows(self.t_ptr, self.t_items, idx),
            seen=gather_rows(self.s_ptr, self.s_items, idx),
        )
        if self.history_len:
            out["history"] = gather_rows(self.s_ptr, self.s_items, idx, self.history_len, last=True)
        if self.negatives is not None:
            out["negatives"] = self.negatives[idx]
        return out


class RatingRows(_Rows):
    """Evaluation interactions with their ratings (explicit feedback)."""

    def __init__(self, dm: InteractionsDataModule, split: str) -> None:
        e = dm._eval[split]
        super().__init__(len(e["user"]))
        self.user, self.item = torch.from_numpy(e["user"]), torch.from_numpy(e["item"])
        self.rating = torch.from_numpy(e["rating"].astype(np.float32))
        self.history_len = dm.history_len
        self.indptr, self.seq = torch.from_numpy(dm._train_ptr), torch.from_numpy(dm._train_items)

    def __getitems__(self, indices: list[int]) -> Batch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        out = Batch(user=self.user[idx], item=self.item[idx], rating=self.rating[idx])
        if self.history_len:
            out["history"] = gather_rows(self.indptr, self.seq, self.user[idx], self.history_len, last=True)
        return out


__all__ = ["Batch", "PairRows", "RankingRows", "RatingRows", "SequenceRows", "collate", "gather_rows"]
