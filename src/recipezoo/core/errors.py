"""Error types for user mistakes.

Every error a user can fix (a wrong path, a wrong column, a wrong recipe) is a :class:`UserError`. The entry points
catch it and print its message as one short line instead of a traceback; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from pathlib import Path


class UserError(Exception):
    """A mistake the user can fix; its message says what went wrong and how to fix it."""


class ConfigError(UserError):
    """An unknown recipe, an unknown key or an invalid value."""


class DataError(UserError):
    """Missing, empty, corrupt or inconsistent data."""


class PretrainedError(UserError):
    """Pretrained weights that cannot be found or do not fit the model."""


class CheckpointError(UserError):
    """A checkpoint that is missing or does not match the data it is used with."""


class OutputExistsError(UserError):
    """An output location that already holds results we would overwrite."""


class ExportParityError(UserError):
    """An exported model whose outputs differ from eager PyTorch by more than the tolerance."""


def new_output_file(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """``path`` (``~`` expanded) if writing there loses nothing; else :class:`OutputExistsError`.

    ``overwrite`` replaces only a file recipezoo wrote itself (see :mod:`recipezoo.core.outputs`).
    """
    from recipezoo.core.outputs import new_output_file as checked  # outputs imports this module

    return checked(path, overwrite)


def write_rows(out: Path, rows: list[dict]) -> None:
    """Write prediction rows (dicts with the same keys) to a CSV file that :func:`new_output_file` cleared."""
    import csv

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def close_matches(word: str, options: Iterable[str], n: int = 4) -> str:
    """Return a ``did you mean ...?`` hint, or an empty string when nothing is close."""
    options = list(dict.fromkeys(options))  # the same name may come from several sources
    matches = difflib.get_close_matches(word, options, n=n, cutoff=0.5)
    if not matches:
        # Substring matches catch "resnet" -> "vision/cifar10_resnet18", which difflib scores low.
        matches = [o for o in options if word.split("/")[-1] in o][:n]
    return f" Did you mean: {', '.join(matches)}?" if matches else ""
