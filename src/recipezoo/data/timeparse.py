"""Reading a time column: numbers, datetimes, or date text in any mix of formats, as float seconds.

One parser for every domain. Numbers are kept as they are (they only need to sort); datetimes and date text become
seconds since 1970 (naive times are UTC). A column that mixes numbers with date text is either an error
(``mixed="error"``) or read with its numbers as Unix seconds / milliseconds, chosen by magnitude (``mixed="unix"``).
"""

from __future__ import annotations

import numpy as np

MIXED = ("error", "unix")
_DEFAULT_WITHOUT = "run without a time column (data.time_column=null)"


def seconds_since_epoch(dates: object) -> np.ndarray:
    """Datetimes (a pandas Series; naive = UTC) as float seconds since 1970, whatever their resolution."""
    import pandas as pd

    dates = pd.Series(dates)
    if getattr(dates.dt, "tz", None) is None:
        dates = dates.dt.tz_localize("UTC")
    return (dates - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)


def parse_times(
    values: object, column: str, *, mixed: str = "unix", without: str = _DEFAULT_WITHOUT
) -> tuple[np.ndarray, str]:
    """A time column as float64 values that sort in time order, and a note on how they were read (for the log).

    Args:
        values: the column (a pandas Series).
        column: its name, for messages.
        mixed: numbers mixed with date text: ``unix`` reads them as Unix seconds (or milliseconds, by magnitude:
            [1e8, 1e10) seconds, [1e11, 1e13) milliseconds) and fails otherwise; ``error`` always fails.
        without: how to do without a time column, for the message on missing values (after "fill or drop those
            rows, or ").

    Returns:
        ``(values, note)``: numbers as they are, dates as seconds since 1970; note is ``numbers``, ``datetimes``,
        ``dates`` or ``dates, and N numbers read as Unix seconds``.

    Raises:
        DataError: missing values, booleans, unreadable values, or numbers mixed with dates that cannot be read.
    """
    import pandas as pd

    from recipezoo.core.errors import ConfigError, DataError

    if mixed not in MIXED:
        raise ConfigError(f"unknown policy for mixed times '{mixed}'; choose one of {', '.join(MIXED)}.")
    values = pd.Series(values)
    n_missing = int(values.isna().sum())
    if n_missing:
        raise DataError(
            f"time column '{column}' has {n_missing} missing value(s); fill or drop those rows, or {without}."
        )
    if pd.api.types.is_bool_dtype(values):
        raise DataError(f"time column '{column}' holds booleans; expected numbers or dates.")
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=np.float64), "numbers"
    if pd.api.types.is_datetime64_any_dtype(values):
        return seconds_since_epoch(values), "datetimes"
    text = values.astype(str).str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    is_number = numbers.notna().to_numpy()
    if is_number.all():
        return numbers.to_numpy(dtype=np.float64), "numbers"
    out = np.empty(len(text), dtype=np.float64)
    note = "dates"
    fix = "use Unix seconds or dates like 2024-01-31 12:00:00"
    if is_number.any():
        if mixed == "error":
            examples = ", ".join(repr(v) for v in text[~is_number].unique()[:3])
            raise DataError(
                f"time column '{column}' mixes numbers and text ({int(is_number.sum())} numbers; also {examples}); "
                "use one format: numbers (e.g. seconds) or dates like 2024-01-31 12:00:00."
            )
        nums = numbers[is_number].to_numpy(dtype=np.float64)
        if np.all((nums >= 1e8) & (nums < 1e10)):
            out[is_number], unit = nums, "seconds"
        elif np.all((nums >= 1e11) & (nums < 1e13)):
            out[is_number], unit = nums / 1e3, "milliseconds"
        else:
            examples = ", ".join(repr(v) for v in text[~is_number].unique()[:2])
            raise DataError(
                f"time column '{column}' mixes numbers ({int(is_number.sum())}, e.g. {text[is_number].iloc[0]!r}) "
                f"and dates (e.g. {examples}), and the numbers are not Unix times; use one format."
            )
        note = f"dates, and {int(is_number.sum())} numbers read as Unix {unit}"
    elif mixed == "error":
        fix = "use numbers (e.g. seconds) or dates like 2024-01-31 12:00:00"
    try:
        dates = pd.to_datetime(text[~is_number], errors="coerce", utc=True, format="mixed")
    except (ValueError, TypeError) as e:
        raise DataError(f"time column '{column}' cannot be read as dates: {str(e)[:200]}") from None
    bad = dates.isna().to_numpy()
    if bad.any():
        examples = ", ".join(repr(v) for v in text[~is_number][bad].unique()[:3])
        raise DataError(
            f"time column '{column}': {int(bad.sum())} of {len(text)} values are neither numbers nor dates (e.g. "
            f"{examples}); {fix}."
        )
    out[~is_number] = seconds_since_epoch(dates)
    return out, note


__all__ = ["MIXED", "parse_times", "seconds_since_epoch"]
