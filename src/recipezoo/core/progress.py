"""The progress bar: Lightning's Rich bar, redrawn at most a few times a second.

Lightning's ``RichProgressBar`` updates, re-reads every progress-bar metric (a ``.item()`` each: a device sync on
GPU) and redraws after every batch. Measured on the 2-core CPU that is 1.7 ms a step, half the step time of a small
tabular model (docs/performance.md). Redrawn at most every ``interval`` seconds it looks the same to a person and
costs nothing measurable.

Under DDP Lightning disables the bar on every rank but 0, and a disabled bar never records which evaluation
dataloader is running (``RichProgressBar.on_validation_batch_start`` returns first), so Lightning's
``total_val_batches_current_dataloader`` asserts there. The bar below reads the batch counts from the hook's own
``dataloader_idx`` and does nothing at all on a disabled bar.
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning.pytorch as L
from lightning.pytorch.callbacks import RichProgressBar


class ProgressBar(RichProgressBar):
    """``RichProgressBar`` redrawn at most every ``interval`` seconds during training and evaluation (and always
    at an epoch's last batch).

    Args:
        interval: seconds between redraws.
        kwargs: passed to ``RichProgressBar`` (``leave``, ``theme``, ``console_kwargs``).
    """

    def __init__(self, interval: float = 0.25, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.interval = float(interval)
        self._last = -math.inf

    def _due(self, batch_idx: int, total: float) -> bool:
        """Whether to redraw now: ``interval`` seconds since the last redraw, or the last of ``total`` batches."""
        now = time.monotonic()
        if now - self._last >= self.interval or batch_idx + 1 >= total:
            self._last = now
            return True
        return False

    @staticmethod
    def _batches(counts: int | float | list[int | float], dataloader_idx: int) -> int | float:
        """The batch count of one evaluation dataloader (Lightning keeps a list, one per dataloader)."""
        return counts[dataloader_idx] if isinstance(counts, list) else counts

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.is_disabled:  # another rank's bar, or one turned off: nothing to draw
            return
        # The epoch's length, not ``self.total_train_batches``: with max_steps and no max_epochs that is the steps
        # *remaining*, which would make every batch of the run's second half look like an epoch's last.
        total = trainer.num_training_batches
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:  # the run's last step
            total = batch_idx + 1
        if self._due(batch_idx, total):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.is_disabled:
            return
        if trainer.sanity_checking or self._due(batch_idx, self._batches(trainer.num_val_batches, dataloader_idx)):
            super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.is_disabled:
            return
        if self._due(batch_idx, self._batches(trainer.num_test_batches, dataloader_idx)):
            super().on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
