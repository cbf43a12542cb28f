"""Seeding and the RNG state that makes resumed runs continue exactly where they stopped."""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (and dataloader workers); optionally ask torch for deterministic kernels."""
    L.seed_everything(seed, workers=True, verbose=False)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


class RNGStateCallback(L.Callback):
    """Saves the python, numpy and torch RNG states in checkpoints and restores them on resume.

    Lightning restores model, optimizer, scheduler and loop state but not the global RNGs, which drive data shuffling
    and augmentation; without this callback a resumed run draws different batches than an uninterrupted one.
    Everything is stored as tensors and plain python so checkpoints load with ``weights_only=True``.
    """

    def state_dict(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        state = {
            "python": random.getstate(),
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Restored at once: the fit loop creates the train DataLoader iterator (which draws its shuffling seed)
        # before any later hook, and Lightning isolates the RNG around the sanity-check validation.
        version, internal, gauss = state_dict["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = state_dict["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
