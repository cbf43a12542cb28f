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


def check_evaluable(
    test: dict[str, int],
    method: str,
    feedback: str,
    users_with_history: int,
    n_users: int,
    what: str,
    user_column: str | None = None,
) -> None:
    """Refuse a log whose test split cannot evaluate anything, with the reason and what to change.

    Such a run would end with empty test metrics; stopping at data setup costs the user a second instead of a
    training run. Ranking needs users with two or more interactions (one to learn the user from, one to test);
    ratings need a non-empty test split. (A test split whose users or items all happen to be unknown to training is
    reported by the test step itself.)

    Args:
        test: the test split's counts (``interactions``).
        method: the split method (``data.split``).
        feedback: ``implicit`` (ranking) or ``explicit`` (ratings).
        users_with_history: users with 2 or more interactions after cleaning (those leave-last-out can test).
        n_users: users after cleaning.
        what: the data, for messages.
        user_column: the log's user column, for messages.

    Raises:
        DataError: nothing in the test split can be evaluated.
    """
    n_test = int(test.get("interactions", 0))
    if feedback == "explicit":
        if n_test:
            return
        raise DataError(
            f"{what}: the test split is empty, so nothing can be evaluated: each of the {n_users} users has a single "
            f"rating and data.split={method} tests a user's last rating only when an earlier one trains. Split the "
            "ratings at random instead: data.split=random"
        )
    if users_with_history and n_test:
        return
    column = f" '{user_column}'" if user_column else ""
    raise DataError(
        f"{what}: no user can be evaluated: each of the {n_users} users has a single interaction (after cleaning), "
        "and ranking needs an earlier interaction to learn a user from and a later one to test. Pass a log where "
        f"users have 2 or more interactions (and check that the user column{column} holds user ids: "
        "data.user_column=<column>)."
    )


__all__ = ["SPLIT_METHODS", "check_evaluable", "split_interactions"]
