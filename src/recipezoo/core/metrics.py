"""Reporting helpers every classification task shares."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as L


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
