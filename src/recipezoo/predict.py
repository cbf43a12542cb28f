"""Predict with a checkpoint or an exported bundle: the function behind ``scripts/predict.py``.

The model's task (looked up in :mod:`recipezoo.core.registry`) decides what ``input`` is and what the CSV holds, by
its registered predictor: e.g. images -> label and class probabilities; a table -> score, calibrated probability and
decision per row (fraud detection); texts -> label and probabilities, or tags and entities per word; users -> their
top-``k`` items, or (user, item) pairs -> a score each (recommendation).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from recipezoo.core import bundle


def task_of(ckpt: str | Path) -> str:
    """The task of a checkpoint (from its config) or of an export bundle (from its metadata)."""
    return bundle.task_of(ckpt).name


def predict(
    ckpt: str | Path,
    input: str | Path,
    output: str | Path = "predictions.csv",
    batch_size: int = 64,
    overwrite: bool = False,
    column: str | None = None,
    k: int = 10,
) -> list[dict[str, Any]]:
    """Predict every example of ``input`` and write one CSV row each to ``output`` (never overwritten unless asked).

    ``column`` names the text column of a table input (text tasks; default: the one the model was trained on);
    ``k`` is the length of each user's list (recommendation); a task's predictor gets the options it takes. Returns
    the rows written.
    """
    fn = bundle.task_of(ckpt).predictor_fn()
    params = inspect.signature(fn).parameters
    options = {name: value for name, value in (("column", column), ("k", k)) if name in params}
    return fn(ckpt, input, output, batch_size=batch_size, overwrite=overwrite, **options)


def predict_paths(ckpt: str | Path, paths: Any) -> Any:
    """Class probabilities ``(N, num_classes)`` for image paths (a shortcut for tests and notebooks)."""
    return bundle.task_of(ckpt).function("predict_paths")(ckpt, paths)
