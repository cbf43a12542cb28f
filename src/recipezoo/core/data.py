"""DataLoader defaults per accelerator (and, for older imports, :func:`recipezoo.data.splits.stratified_split`)."""

from __future__ import annotations

import os
from typing import Any

import torch

from recipezoo.data.splits import stratified_split

__all__ = ["loader_settings", "stratified_split"]


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
