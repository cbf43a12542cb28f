"""Negative sampling: membership of (user, item) pairs, and the fixed sampled negatives of evaluation."""

from __future__ import annotations

import numpy as np
import torch


class SortedKeys:
    """Membership of (user, item) pairs in a set, by binary search over sorted ``user * stride + item`` keys."""

    def __init__(self, users: np.ndarray, items: np.ndarray, stride: int) -> None:
        self.stride = int(stride)
        self.keys = torch.from_numpy(np.unique(users.astype(np.int64) * self.stride + items.astype(np.int64)))

    def contains(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Whether each pair is in the set; ``items`` may have one more dimension than ``users`` (a row each)."""
        q = (
            users.unsqueeze(-1).expand_as(items) * self.stride + items
            if items.dim() > users.dim()
            else (users * self.stride + items)
        )
        if self.keys.numel() == 0:
            return torch.zeros_like(q, dtype=torch.bool)
        pos = torch.searchsorted(self.keys, q.reshape(-1)).clamp(max=self.keys.numel() - 1)
        return (self.keys[pos] == q.reshape(-1)).reshape(q.shape)


def sample_negatives(
    users: np.ndarray,
    keys: SortedKeys,
    n_items: int,
    count: int,
    seed: int,
    known_ptr: np.ndarray,
    known_items: np.ndarray,
) -> np.ndarray:
    """Per user, ``count`` distinct catalogue items (1..``n_items``) they never interacted with, fixed by the seed.

    Args:
        users: ``(U,)`` user indices.
        keys: every known (user, item) pair.
        n_items: the catalogue size.
        count: negatives per user.
        seed: the draw is a function of the seed alone.
        known_ptr: ``(n_users + 2,)`` CSR row pointers of each user's known items.
        known_items: the CSR values.

    Returns:
        ``(U, count)`` item indices; 0 pads the rows of users who know almost every item.
    """
    n, m = len(users), count
    rng = np.random.default_rng(seed)
    out = np.zeros((n, m), dtype=np.int64)
    todo = np.arange(n)
    for _ in range(20):
        if not len(todo):
            break
        cand = rng.integers(1, n_items + 1, (len(todo), 2 * m + 8))
        bad = keys.contains(torch.from_numpy(users[todo]), torch.from_numpy(cand)).numpy()
        still = []
        for j, row in enumerate(todo):
            c = cand[j][~bad[j]]
            _, first = np.unique(c, return_index=True)
            c = c[np.sort(first)]
            if len(c) >= m:
                out[row] = c[:m]
            else:
                still.append(row)
        todo = np.asarray(still, dtype=np.int64)
    for row in todo:  # users who saw most of the catalogue: sample exactly from what is left
        known = set(known_items[known_ptr[users[row]] : known_ptr[users[row] + 1]].tolist())
        left = np.asarray([x for x in range(1, n_items + 1) if x not in known], dtype=np.int64)
        if len(left) == 0:
            continue
        pick = rng.choice(left, size=min(m, len(left)), replace=False)
        out[row, : len(pick)] = pick
    return out


__all__ = ["SortedKeys", "sample_negatives"]
