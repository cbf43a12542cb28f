"""The pure stages :class:`~recipezoo.fraud.data.TabularDataModule` composes: reader -> column check -> binary
target -> split -> feature columns -> columns that must not be features.

Each stage is a plain function of a DataFrame and settings, testable alone on a tiny table; reading, time parsing
and the splits themselves come from :mod:`recipezoo.data`. The preprocessing (the encoder stage) is
:class:`~recipezoo.runtime.tabular.TabularPreprocessor`, shared with the torch-free runtime.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from recipezoo.core.errors import ConfigError, DataError, close_matches
from recipezoo.data import columns as C
from recipezoo.data import splits as S
from recipezoo.data import tables as T
from recipezoo.data.timeparse import parse_times
from recipezoo.runtime.tabular import MAX_DISCRETE_NUMERIC, factorize_categories, to_float

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


# -- columns that must not be features ---------------------------------------------------------------------------
# Below this many non-missing training values, "unique per row" and "sorted" happen by chance and say nothing.
MIN_ROWS_FOR_KEYS = 30
# Whole names (separators and case ignored) that say "row key": id, index, row_number, ...
_ID_NAMES = frozenset(
    {"id", "ids", "idx", "index", "row", "rowid", "rowidx", "rowindex", "rowno", "rownum", "rownumber", "uuid", "guid"}
)
# Last words that say "key of something": policy_id, customerId, claim_no, account_nr, PolicyNumber, tx_uuid.
_ID_SUFFIXES = frozenset({"id", "ids", "uuid", "guid", "no", "nr", "number"})
# "week_number", "day_number" count time, they do not name a record.
_TIME_WORDS = frozenset({"second", "minute", "hour", "day", "week", "month", "quarter", "year"})
# Integer ids this wide (account, card or phone numbers) are codes even when their values are far apart.
_CODE_DIGITS = 8
# Date text carries a year (1999, 2024) or three numbers (31/12/24, 10:30:00); "may", "3-4" or "10 to 20" do not.
_DATE_TEXT = re.compile(r"(?<!\d)(?:19|20|21)\d\d(?!\d)|\d+\D+\d+\D+\d+")
_DATES = "date/time values"
_SORTED = "sorted in row order (a time or sequence counter)"


def _name_words(name: Any) -> list[str]:
    """``"PolicyNumber"``, ``"policy_number"``, ``"policy number"`` -> ``["policy", "number"]``."""
    return [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", str(name))]


def id_like_name(name: Any) -> bool:
    """Whether a column's name says it is a key: ``id``, ``index``, ``row_number``, ``*_id``, ``*Id``, ``*_no``,
    ``*_nr``, ``*number`` (``policy_number``, ``PolicyNumber``), ``*uuid``, or pandas' ``Unnamed: 0`` (a saved
    index). Counts (``number_of_claims``) and time words (``week_number``) are not keys."""
    words = _name_words(name)
    if not words:
        return False
    if words[0] == "unnamed" or "".join(words) in _ID_NAMES:
        return True
    last = words[-1]
    if last.endswith("number") and (len(words) > 1 or last != "number"):
        before = words[-2] if len(words) > 1 else last[: -len("number")]
        return before not in _TIME_WORDS and "of" not in words
    return last in _ID_SUFFIXES or last.endswith(("uuid", "guid"))


def _as_numbers(values: pd.Series) -> tuple[np.ndarray | None, bool]:
    """The column as float64 (NaN for missing) when it holds only numbers or numeric text, else None; and whether
    its type is integer (an integer dtype, or text of whole numbers), as ids are, and amounts read as floats are not."""
    if pd.api.types.is_bool_dtype(values):
        return None, False
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan), pd.api.types.is_integer_dtype(values)
    distinct = pd.unique(values.dropna())
    if any(isinstance(v, bool | np.bool_) for v in distinct[:1000].tolist()):
        return None, False
    parsed, bad = to_float(np.asarray(distinct, dtype=object))
    if bad or not len(distinct):
        return None, False
    finite = parsed[np.isfinite(parsed)]
    integer = bool(finite.size) and bool(np.all(finite == np.round(finite)))
    return to_float(values.to_numpy(dtype=object))[0], integer


def _sorted_reason(x: np.ndarray) -> str | None:
    """Why integers that rise (or fall) row by row are a position, not a property: None when they do not."""
    steps = np.diff(x)
    if not ((steps >= 0).all() or (steps <= 0).all()):
        return None
    if (steps == 0).any():
        return _SORTED
    if np.all(steps == steps[0]):
        return f"a row number (step {steps[0]:g})"
    return "strictly monotonic integers (a row or record number)"


def _is_date_text(values: pd.Series, sample: int = 200) -> bool:
    distinct = [str(v).strip() for v in pd.unique(values.dropna())[:sample].tolist()]
    if not distinct or not all(_DATE_TEXT.search(v) for v in distinct):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns when it guesses formats element by element
        parsed = pd.to_datetime(pd.Series(distinct), errors="coerce", format="mixed")
    # A missing year parses as year 1 ("10-20" -> Oct 20 of year 1): a range or a code, not a date.
    return bool(parsed.notna().all() and (parsed.dt.year >= 1800).all())


def exclusion_reason(name: Any, values: pd.Series) -> str | None:
    """Why a column must not be a feature, or None when it may be one.

    A column is excluded when it is named like a key (see :func:`id_like_name`) and has more than
    ``MAX_DISCRETE_NUMERIC`` distinct values (fewer: a small code list such as a branch number, kept as a
    category); holds dates or times (datetimes, or text that reads as dates); holds text or integers unique per row
    (integers only when packed densely or written as wide codes, so integer amounts that happen not to repeat stay);
    or holds whole numbers that rise or fall row by row (row numbers, sorted time counters). Columns of fractional
    numbers (amounts, rates) are never excluded by their values: being unique per row is normal for them.

    Args:
        name: the column's name.
        values: its training values, in the file's row order (the order matters to the "sorted" rule).
    """
    values = pd.Series(values).reset_index(drop=True)
    n, distinct = int(values.notna().sum()), int(values.nunique(dropna=True))
    # What the values show says more than the name, so it is the reason given when both apply.
    found = _value_reason(values, n, distinct)
    if found is None and id_like_name(name) and distinct > MAX_DISCRETE_NUMERIC:
        return f"named like an id, {distinct} distinct values"
    return found


def _value_reason(values: pd.Series, n: int, distinct: int) -> str | None:
    if pd.api.types.is_datetime64_any_dtype(values) or isinstance(values.dtype, pd.PeriodDtype):
        return _DATES
    numbers, integer = _as_numbers(values)
    enough = n >= MIN_ROWS_FOR_KEYS
    if numbers is None:
        if pd.api.types.is_bool_dtype(values):
            return None
        if _is_date_text(values):
            return _DATES
        return "unique per row" if enough and distinct == n else None
    finite = numbers[np.isfinite(numbers)]
    if not enough or not finite.size or np.any(finite != np.round(finite)):
        return None
    if finite.size == len(numbers) and distinct > MAX_DISCRETE_NUMERIC:
        reason = _sorted_reason(numbers)
        if reason:
            return reason
    if integer and distinct == n:
        span = float(finite.max() - finite.min()) + 1
        wide = bool(np.all(finite >= 10 ** (_CODE_DIGITS - 1)))
        if span <= 4 * n or wide:
            return "unique per row (integers)"
    return None


def excluded_columns(frame: pd.DataFrame, columns: Sequence[str], *, keep: Collection[str] = ()) -> dict[str, str]:
    """``{column: why}`` for the candidate ``columns`` of ``frame`` that must not be features (see
    :func:`exclusion_reason`): row keys would let a model memorise the rows (or the order) of its training file,
    and raw time stamps the period it was trained on, scoring well on a held-out split and failing on new data.

    Args:
        frame: the training rows, in the file's row order.
        columns: the candidate feature columns.
        keep: columns never excluded (``data.keep_columns`` and columns listed as numeric or categorical).
    """
    kept = set(keep)
    out = {}
    for name in columns:
        if name not in kept:
            reason = exclusion_reason(name, frame[name])
            if reason:
                out[name] = reason
    return out


def exclusion_message(excluded: Mapping[str, str]) -> str:
    """One log line: each excluded column and why, and the settings that keep it or split by it."""
    names = list(excluded)
    timed = [n for n, r in excluded.items() if r in (_DATES, _SORTED)]
    hint = f"; to split by time instead, data.time_column={timed[0]}" if timed else ""
    return (
        f"Not used as features ({len(names)}): "
        + "; ".join(f"{n} ({r})" for n, r in excluded.items())
        + ". Row keys and raw time stamps let a model memorise its training rows or period instead of learning "
        f"fraud. To use them anyway: data.keep_columns=[{','.join(map(str, names))}]{hint}."
    )


__all__ = [
    "MIN_ROWS_FOR_KEYS",
    "POSITIVE_WORDS",
    "binary_target",
    "check_columns",
    "excluded_columns",
    "exclusion_message",
    "exclusion_reason",
    "feature_columns",
    "id_like_name",
    "positive_class",
    "read_table",
    "split_rows",
]
