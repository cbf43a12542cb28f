"""Callbacks that tests add to real runs: ``+callbacks.<name>._target_=tests.helpers.<Class>``."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as L
import torch


class Killed(RuntimeError):
    """Raised by :class:`KillAfterEpoch`: stands in for a crash or a killed job."""


class KillAfterEpoch(L.Callback):
    """Crash the run at the start of training epoch ``epoch`` (0-based), i.e. after ``epoch`` whole epochs.

    The default, 1, stops a run after its first epoch: that epoch's validation and checkpoints (last.ckpt) are
    written, nothing of the second epoch is.
    """

    def __init__(self, epoch: int = 1) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch >= self.epoch:
            raise Killed(f"killed at the start of epoch {trainer.current_epoch}")


class SaveFinalWeights(L.Callback):
    """Save the model's state dict as it is when training ends (whatever checkpoints kept) to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}, self.path)
