"""The base LightningModule: the plumbing every task shares, so a task holds only what is its own.

A task (``ImageClassifier``, ``FraudDetector``...) subclasses :class:`Task` once and keeps its forward, ``loss``,
``eval_step``, epoch-end metrics, ``predict_step`` and ``export_spec``. :class:`Task` holds the network and:

- the optimizer and its schedule (``configure_optimizers``, :func:`recipezoo.core.optim.configure_module`):
  per-block learning rates for a fine-tuned network, one weight-decay split for a network trained from scratch;
- the fine-tuning policy (:mod:`recipezoo.core.finetune`), whose callback it adds;
- ``model.compile`` (:mod:`recipezoo.core.compile`): :attr:`Task.network` is what forward calls;
- the loss-logging convention: ``training_step`` returns the loss and does not log it
  (:class:`recipezoo.core.metrics.TrainLoss` does); ``train_metrics``, when a task has them, are logged once per
  epoch;
- the classification metric set (:func:`recipezoo.core.metrics.classification_metrics`) and the test confusion
  matrix (:meth:`Task.save_confusion_matrix`).

It adds no state of its own to the state dict and no hyper-parameter, so checkpoints are the tasks' as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import lightning.pytorch as L
import torch
import torchmetrics as tm
from torch import nn

from recipezoo.core.compile import compile_network
from recipezoo.core.compile import network as compiled_network
from recipezoo.core.finetune import FineTuningCallback, FineTuningPolicy
from recipezoo.core.lean import LeanHookName
from recipezoo.core.metrics import classification_metrics, write_confusion_matrix
from recipezoo.core.optim import configure_module

__all__ = ["Task", "classification_metrics"]


class Task(LeanHookName, L.LightningModule):
    """What every recipezoo LightningModule shares.

    Args:
        net: the network (a plain ``nn.Module`` from the domain's ``models.py``).
        optimizer: a partial optimizer (``torch.optim.AdamW`` with its lr and weight decay) taking param groups.
        scheduler: a partial ``(optimizer, total_steps) -> LRScheduler`` from :mod:`recipezoo.core.optim`, or
            None / ``{}``.
        policy: the fine-tuning policy of a network with ``head`` and ``layer_groups()``; None for a network
            trained from scratch (no fine-tuning callback, one weight-decay split).
        compile: ``torch.compile`` the network when fitting starts.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        policy: FineTuningPolicy | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.policy = policy
        self.compile = bool(compile)
        # Training metrics, updated in training_step and logged once per epoch (a self.log per step costs
        # milliseconds: see core.metrics.TrainLoss).
        self.train_metrics: tm.MetricCollection | None = None
        # Files the checkpoint carries (a tokenizer, the interactions): core.checkpoint.load_module sets them.
        self.files: dict[str, Any] = {}

    @property
    def network(self) -> nn.Module:
        """What forward calls: the compiled network when ``compile`` is on and fitting started, else ``net``."""
        return compiled_network(self)

    # -- Lightning hooks ----------------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        compile_network(self, self.compile, stage)

    def configure_callbacks(self) -> list[L.Callback]:
        return [FineTuningCallback(self.policy)] if self.policy is not None else []

    def configure_optimizers(self) -> Any:
        return configure_module(self)

    def loss(self, batch: Any) -> torch.Tensor:
        """The training objective of a batch, without metrics or logging (what a plain PyTorch loop computes)."""
        raise NotImplementedError(f"{type(self).__name__} defines no loss(batch)")

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        return self.loss(batch)

    def logits_and_labels(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits and class labels of an evaluation batch (no augmentation, no logging): what the linear probe
        (:mod:`recipezoo.core.probe`) runs to read the head's input. Single-label classification tasks define it."""
        raise NotImplementedError(f"{type(self).__name__} defines no logits_and_labels(batch)")

    def eval_step(self, batch: Any, stage: str) -> Any:
        """One validation (``stage="val"``) or test (``"test"``) batch: update and log the stage's metrics."""
        raise NotImplementedError(f"{type(self).__name__} defines no eval_step(batch, stage)")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.eval_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.eval_step(batch, "test")

    def on_train_epoch_end(self) -> None:
        if self.train_metrics is not None:
            self.log_dict(self.train_metrics.compute())
            self.train_metrics.reset()

    # -- classification -----------------------------------------------------------------------------------------

    def save_confusion_matrix(self, confusion: tm.ConfusionMatrix, labels: Sequence[str]) -> None:
        """At the end of testing: keep the confusion matrix (reduced over ranks; rows = true, columns = predicted)
        as ``test_confusion_matrix`` (what evaluate reports) and write ``test_confusion_matrix.csv``."""
        matrix = confusion.compute().cpu().tolist()
        confusion.reset()
        self.test_confusion_matrix = matrix
        write_confusion_matrix(self.trainer, labels, matrix)
