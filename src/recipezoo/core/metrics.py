"""What every task shares for reporting: the training-loss logger, the classification metric set and the
confusion-matrix writer."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
import torchmetrics as tm
from lightning.pytorch.utilities.data import extract_batch_size


def classification_metrics(
    num_classes: int,
    prefix: str | None = None,
    f1: bool = True,
    top_k: int = 0,
    ignore_index: int | None = None,
) -> tm.MetricCollection:
    """The multi-class metric set the classification tasks log: ``acc``, macro ``f1`` and ``acc_top{k}``.

    Args:
        num_classes: number of classes.
        prefix: put before every name (``val/`` gives ``val/acc``, ``val/f1``...).
        f1: include macro F1 (``f1``).
        top_k: include top-k accuracy (``acc_top{k}``) when there are more than ``top_k`` classes; 0 never.
        ignore_index: target value that is not scored (padding).
    """
    kw: dict[str, Any] = {"task": "multiclass", "num_classes": num_classes, "ignore_index": ignore_index}
    m: dict[str, tm.Metric] = {"acc": tm.Accuracy(**kw)}
    if f1:
        m["f1"] = tm.F1Score(average="macro", **kw)
    if top_k and num_classes > top_k:
        m[f"acc_top{top_k}"] = tm.Accuracy(top_k=top_k, **kw)
    # compute_groups=False: with groups on, torchmetrics shares one state between metrics whose states look alike,
    # and top-5 accuracy's stat scores then leak into macro F1 (F1 = 1.0 beside 99% accuracy).
    return tm.MetricCollection(m, prefix=prefix, compute_groups=False)


def write_confusion_matrix(trainer: L.Trainer, labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> None:
    """Write ``test_confusion_matrix.csv`` (rows: true class, columns: predicted) next to the run's metrics.

    A logger-less trainer (scripts/evaluate.py) writes nothing. ``Trainer.log_dir`` broadcasts, so every rank must
    call this (only rank 0 writes), or DDP hangs.
    """
    log_dir = trainer.log_dir if trainer.loggers else None
    if trainer.is_global_zero and log_dir:
        with open(Path(log_dir) / "test_confusion_matrix.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["true\\predicted", *labels])
            for name, row in zip(labels, matrix):
                w.writerow([name, *row])


class TrainLoss(L.Callback):
    """Logs the training loss: ``train/loss_step`` every ``trainer.log_every_n_steps`` steps (and on the progress
    bar), ``train/loss_epoch`` the epoch's mean weighted by batch size.

    Tasks return their loss from ``training_step`` and do not ``self.log`` it: in Lightning 2.6 every ``self.log``
    call costs 1-3 ms of Python (the result collection is re-walked on each call), which is most of a small model's
    step (docs/performance.md). Here a step costs two tensor operations, and ``self.log`` runs only on the steps whose
    values reach the logger anyway.
    """

    def __init__(self) -> None:
        self.total: torch.Tensor | None = None
        self.count = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.total, self.count = None, 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):  # a skipped step
            return
        value = loss.detach().float()
        try:
            n = extract_batch_size(batch)
        except Exception:  # a batch Lightning cannot size: weight it 1
            n = 1
        self.total = value * n if self.total is None else self.total + value * n
        self.count += n
        connector = getattr(trainer, "_logger_connector", None)
        due = getattr(connector, "should_update_logs", True)
        if due or trainer.fast_dev_run:
            pl_module.log("train/loss_step", value, prog_bar=True, on_step=True, on_epoch=False, batch_size=n)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.count:
            pl_module.log("train/loss_epoch", self.total / self.count, on_step=False, on_epoch=True)
        self.total, self.count = None, 0
