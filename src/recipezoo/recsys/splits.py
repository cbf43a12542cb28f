"""Splitting cleaned interactions into train / val / test with :mod:`recipezoo.data.splits`, without leakage."""

from __future__ import annotations

import logging

import numpy as np

from recipezoo.core.errors import DataError
from recipezoo.data import splits as S

log = logging.getLogger(__name__)

SPLIT_METHODS = ("leave_last_out", "time", "random")


def split_interactions(
    f: dict[str, np.ndarray],
    method: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    what: str = "interactions",
) -> tuple[np.ndarray, dict[str, int]]:
    """Per interaction 0 (train), 1 (val) or 2 (test).

    Args:
        f: cleaned interactions (``u`` user codes, ``t`` times, ``o`` file positions that break ties of time).
        method: ``leave_last_out`` (per user, the last interaction tests and the one before validates), ``time``
            (one global cut: the latest interactions test) or ``random`` (seeded).
        val_fraction: validation share (``time`` and ``random``).
        test_fraction: test share (``time`` and ``random``).
        seed: the seed of ``random``.
        what: the data, for messages.

    Returns:
        The part of each row, and counts for ``data_info`` (``users_train_only`` and ``users_without_val`` for
        ``leave_last_out``).

    Raises:
        DataError: too few interactions for the fractions, or an empty training split.
    """
    n = len(f["u"])
    counts: dict[str, int] = {}
    if method == "leave_last_out":
        part, counts = S.leave_last_out(f["u"], f["t"], tiebreak=f["o"])
        if counts["users_train_only"]:
            log.info(
                "%d user(s) have a single interaction: kept in training only (no test target).",
                counts["users_train_only"],
            )
    elif method == "time":
        _, val, test = S.time_split(
            f["t"], val_fraction, test_fraction, tiebreak=f["o"], require_test=True, what=what, unit="interactions"
        )
        part = np.zeros(n, dtype=np.int8)
        part[val], part[test] = 1, 2
    elif method == "random":
        part = S.random_split(n, val_fraction, test_fraction, seed, what=what, unit="interactions")
    else:
        raise ValueError(f"unknown split method '{method}'; choose one of {', '.join(SPLIT_METHODS)}")
    if not (part == 0).any():
        raise DataError(f"{what}: the training split is empty.")
    return part, counts


__all__ = ["SPLIT_METHODS", "split_interactions"]
