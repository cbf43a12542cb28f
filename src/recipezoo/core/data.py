"""Data helpers every domain uses: seeded stratified splits and DataLoader defaults per accelerator."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import torch

from recipezoo.core.errors import DataError

log = logging.getLogger(__name__)


def loader_settings(num_workers: int | str | None = "auto", pin_memory: bool | str | None = "auto") -> dict[str, Any]:
    """DataLoader keyword arguments: workers, pinned memory and persistent workers chosen for the machine.

    ``auto`` uses worker processes and pinned memory only when a GPU is present: on a CPU-only machine the
    training step already uses every core, and workers would compete with it.
    """
    cuda = torch.cuda.is_available()
    if num_workers in ("auto", None):
        num_workers = min(8, max(1, (os.cpu_count() or 2) - 1)) if cuda else 0
    if pin_memory in ("auto", None):
        pin_memory = cuda
    kwargs: dict[str, Any] = {"num_workers": int(num_workers), "pin_memory": bool(pin_memory)}
    if int(num_workers) > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=4)
    return kwargs


def stratified_split(
    labels: Sequence[int], fractions: Sequence[float], seed: int, what: str = "data"
) -> list[list[int]]:
    """Split indices into ``len(fractions) + 1`` parts (the first gets the rest), stratified by label.

    Args:
        labels: one label per example.
        fractions: the sizes of the parts after the first, as fractions of all examples (e.g. val, test).
        seed: the split is a function of the seed alone.
        what: how to name the data in error messages.
    """
    from sklearn.model_selection import train_test_split

    indices = list(range(len(labels)))
    parts: list[list[int]] = []
    remaining, remaining_labels = indices, list(labels)
    total = len(indices)
    for frac in fractions:
        n = int(round(frac * total))
        if n == 0:
            parts.append([])
            continue
        if n >= len(remaining):
            raise DataError(
                f"{what}: {len(remaining)} examples are too few to split off {frac:.0%}; "
                "add data or lower the split fractions."
            )
        try:
            rest, part, rest_labels, _ = train_test_split(
                remaining, remaining_labels, test_size=n, random_state=seed, stratify=remaining_labels
            )
        except ValueError:
            log.warning("%s: some classes are too small to stratify the split; splitting at random.", what)
            rest, part, rest_labels, _ = train_test_split(remaining, remaining_labels, test_size=n, random_state=seed)
        parts.append(sorted(part))
        remaining, remaining_labels = rest, rest_labels
    return [sorted(remaining)] + parts
