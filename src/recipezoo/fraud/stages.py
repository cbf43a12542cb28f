"""The pure stages :class:`~recipezoo.fraud.data.TabularDataModule` composes: reader -> column check -> binary
target -> split -> feature columns.

Each stage is a plain function of a DataFrame and settings, testable alone on a tiny table; reading, time parsing
and the splits themselves come from :mod:`recipezoo.data`. The preprocessing (the encoder stage) is
:class:`~recipezoo.runtime.tabular.TabularPreprocessor`, shared with the torch-free runtime.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recipezoo.core.errors import ConfigError, DataError, close_matches
from recipezoo.data import columns as C
from recipezoo.data import splits as S
from recipezoo.data import tables as T
from recipezoo.data.timeparse import parse_times
from recipezoo.runtime.tabular import factorize_categories

log = logging.getLogger("recipezoo.fraud.data")

# Target values that name the positive class when the user did not say which one it is (compared lower-cased).
POSITIVE_WORDS = frozenset({"1", "true", "yes", "y", "fraud", "fraudulent", "positive", "pos", "chargeback"})
_MISSING_HINT = (
    " Pass data.path=<CSV, TSV, JSON lines or Parquet file>, or data.synthetic=true to try the recipe on generated "
    "transactions."
)


def read_table(path: str | os.PathLike, sep: str | None = "auto", encoding: str = "auto") -> pd.DataFrame:
    """A CSV, TSV, JSON lines or Parquet file of transactions (by extension, optionally compressed) as a DataFrame.

    Args:
        path: the file.
        sep: the separator of delimited text; ``auto`` sniffs it (a ``.csv`` written with ``;`` reads).
        encoding: the text encoding; ``auto`` is UTF-8 with a Latin-1 fallback.

    Raises:
        DataError: the file is missing, empty or cannot be parsed.
        ConfigError: the extension is not one we read.
    """
    return T.read_table(
        path,
        sep=sep,
        encoding=encoding,
        missing_hint=_MISSING_HINT,
        empty_hint=" Expected a header row and one row per transaction.",
    )


def check_columns(
    frame: pd.DataFrame,
    target: str,
    *,
    where: str,
    named: Mapping[str, str | None] | None = None,
    listed: Mapping[str, Sequence[str] | None] | None = None,
    optional: Collection[str] = (),
) -> None:
    """Every column the settings name is in ``frame``, else an error that lists the columns found.

    Args:
        frame: the table.
        target: the target column.
        where: the data, for messages.
        named: single columns by setting (``{"time_column": "ts", "id_column": None}``); None is not set.
        listed: lists of columns by setting (``{"numeric_columns": [...], "drop_columns": [...]}``).
        optional: settings of ``listed`` whose columns may be absent (the synthetic twin has no columns to drop).

    Raises:
        DataError: no target column.
        ConfigError: a named or listed column is missing.
    """
    found = list(frame.columns)
    shown = C.shown_columns(found, 40)
    if target not in frame.columns:
        hint = close_matches(target, found) + C.separator_hint(found)
        raise DataError(
            f"target column '{target}' not found in {where}; its columns are: {shown}. Set data.target=<column>.{hint}"
        )
    for key, name in (named or {}).items():
        if name and name not in frame.columns:
            raise ConfigError(
                f"data.{key}='{name}' is not a column of {where}; its columns are: {shown}."
                + close_matches(name, found)
            )
    for key, names in (listed or {}).items():
        absent = C.missing_columns(frame.columns, names or [])
        if absent and key not in optional:
            raise ConfigError(
                f"data.{key} names column(s) missing from {where}: {', '.join(absent)}. Its columns are: {shown}."
            )


def binary_target(
    frame: pd.DataFrame, target: str, positive_label: Any, *, where: str, restored: bool = False
) -> tuple[pd.DataFrame, np.ndarray, Any]:
    """Drop rows without a target; the frame, ``y`` (int64, 1 = positive) and the positive label as a plain value.

    Args:
        frame: the table.
        target: the target column.
        positive_label: the value marking the positive class, or None to infer it (1, True, or a word such as
            ``fraud`` / ``yes``).
        where: the data, for messages.
        restored: the positive label comes from a checkpoint: a single-class table (scoring new data) is a warning,
            not an error.

    Raises:
        DataError: no values, more than two classes, or (not restored) a single class.
        ConfigError: the positive label is not a value, or cannot be inferred.
    """
    uniques, inverse = factorize_categories(frame[target])
    canon = np.array(uniques, dtype=object)[inverse] if len(inverse) else np.zeros(0, object)
    missing = np.array([c is None for c in canon], dtype=bool)
    if missing.all():
        raise DataError(f"target column '{target}' of {where} has no values.")
    if missing.any():
        log.warning("Dropped %d row(s) with no '%s' value.", int(missing.sum()), target)
        frame, canon = frame.loc[~missing].reset_index(drop=True), canon[~missing]
    values, counts = np.unique(canon.astype(str), return_counts=True)
    values = [str(v) for v in values]
    order = np.argsort(-counts, kind="stable")
    summary = ", ".join(f"{values[i]!r}: {counts[i]}" for i in order[:6]) + (" ..." if len(values) > 6 else "")
    if len(values) > 2:
        raise DataError(
            f"target column '{target}' has {len(values)} distinct values ({summary}); fraud detection needs "
            "two classes. Map the labels to fraud / not fraud, or set data.target to a 0/1 column."
        )
    if len(values) < 2:
        message = (
            f"target column '{target}' has a single value ({summary}); fraud detection needs examples of both classes."
        )
        if not restored:
            raise DataError(message)
        log.warning("%s Scores are computed, but metrics that need both classes are undefined.", message)
    positive, label = positive_class(values, target, positive_label, summary, restored=restored)
    return frame, (canon == positive).astype(np.int64), label


def positive_class(
    values: list[str], target: str, positive_label: Any, summary: str, *, restored: bool = False
) -> tuple[str, Any]:
    """The canonical string of the positive class among the target's (canonical) values, and the label as a plain
    value (1, True, ``"fraud"``) for checkpoints and exports to say what "positive" meant."""
    if positive_label is not None:
        wanted = factorize_categories(np.array([positive_label], dtype=object))[0][0]
        if wanted not in values and not (restored and len(values) < 2):
            raise ConfigError(
                f"data.positive_label={positive_label!r} is not a value of target '{target}' "
                f"(found {summary}); set it to the value that marks fraud."
            )
        return str(wanted), positive_label
    pair = set(values)
    if pair <= {"0", "1"}:
        choice = "1"
    elif pair <= {"False", "True"}:
        choice = "True"
    else:
        candidates = [v for v in values if v.lower() in POSITIVE_WORDS]
        if len(values) != 2 or len(candidates) != 1:
            raise ConfigError(
                f"cannot tell which value of target '{target}' marks fraud (found {summary}); "
                "set data.positive_label=<that value>."
            )
        choice = candidates[0]
    return choice, True if choice == "True" else int(choice) if choice.lstrip("-").isdigit() else choice


def split_rows(
    frame: pd.DataFrame,
    y: np.ndarray,
    *,
    time_column: str | None,
    group_column: str | None,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    where: str,
) -> tuple[dict[str, np.ndarray], str]:
    """``{split: row indices}`` and how the rows were split: by time (earliest train, latest test), else by whole
    groups (stratified by ``y``), else a seeded stratified random split.

    Raises:
        DataError: too few rows or groups for the fractions, or an unreadable time column.
    """
    if time_column:
        times = parse_times(
            frame[time_column], time_column, mixed="error", without="split without time (data.time_column=null)"
        )[0]
        parts = S.time_split(times, val_fraction, test_fraction, what=where)
        return dict(zip(S.SPLITS, parts)), f"time column '{time_column}'"
    if group_column:
        groups = frame[group_column]
        n_na = int(groups.isna().sum())
        if n_na:
            log.info("%d row(s) have no '%s'; each is treated as its own group.", n_na, group_column)
        out = dict(zip(S.SPLITS, S.group_split(groups, [val_fraction, test_fraction], seed, strata=y)))
        if len(out["val"]) == 0:
            raise DataError(
                f"{where}: the groups of '{group_column}' are too few or too large to split off "
                f"val_fraction={val_fraction}; use more groups, a larger fraction, or no group column."
            )
        return out, f"groups of '{group_column}'"
    parts = S.stratified_split(y.tolist(), [val_fraction, test_fraction], seed, where)
    return (
        {s: np.asarray(p, dtype=np.int64) for s, p in zip(S.SPLITS, parts)},
        f"a stratified random split (seed {seed})",
    )


def feature_columns(
    frame: pd.DataFrame,
    *,
    target: str,
    id_column: str | None = None,
    drop_columns: Sequence[str] = (),
    explicit: Sequence[str] = (),
    position_columns: Sequence[str | None] = (),
) -> list[str]:
    """The columns that may be features: all but the target, the id and the dropped ones.

    ``position_columns`` (time stamps, group ids) describe where a row sits, not what it is: as features they would
    make the model extrapolate in time or memorise customers, so they are left out unless listed in ``explicit``.
    """
    not_features = {target, id_column, *drop_columns}
    not_features.update(c for c in position_columns if c and c not in set(explicit))
    return [c for c in frame.columns if c not in not_features]


__all__ = [
    "POSITIVE_WORDS",
    "binary_target",
    "check_columns",
    "feature_columns",
    "positive_class",
    "read_table",
    "split_rows",
]
