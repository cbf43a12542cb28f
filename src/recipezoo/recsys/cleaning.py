"""Cleaning an interaction log: which columns hold what, canonical ids, ratings, times, duplicates and the k-core.

Each stage is a function of its inputs: the log as read (a DataFrame) in, plain arrays and counts out. The counts
say what was dropped or merged; they travel in ``data_info`` as ``cleaning``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from recipezoo.core.errors import ConfigError, DataError, close_matches
from recipezoo.data import columns as C
from recipezoo.data import timeparse as TP
from recipezoo.recsys.readers import CANDIDATES
from recipezoo.runtime.recsys import canonical_id

log = logging.getLogger(__name__)

ROLES = ("user", "item", "rating", "time")
DUPLICATES = ("last", "first", "mean", "max")
_WITHOUT_TIME = "run without a time column (data.time_column=null: the file's row order is then the time order)"


def canonical_ids(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Ids as codes into canonical text uniques (see :func:`recipezoo.runtime.recsys.canonical_id`); -1 = missing.

    Returns:
        ``(codes (N,) int64, uniques (K,) object)``: distinct raw values that mean the same id (``1`` and ``"1.0"``)
        share a code.
    """
    raw_codes, raw_uniques = pd.factorize(values, use_na_sentinel=True)
    canon = [canonical_id(v) for v in np.asarray(raw_uniques, dtype=object).tolist()]
    canon_codes, uniques = pd.factorize(pd.Series(canon, dtype=object), use_na_sentinel=True)
    lookup = np.append(canon_codes.astype(np.int64), -1)  # raw code -1 (missing) -> -1
    return lookup[raw_codes], np.asarray(uniques, dtype=object)


def parse_ratings(values: pd.Series, column: str) -> np.ndarray:
    """Ratings as float64 (NaN = missing); non-numeric text is an error that names examples."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(np.float64).to_numpy()
    numbers = pd.to_numeric(values, errors="coerce")
    blank = values.isna() | values.astype(str).str.strip().str.lower().isin(["", "nan", "none", "null", "na"])
    bad = numbers.isna() & ~blank
    if bad.any():
        examples = ", ".join(repr(v) for v in values[bad].astype(str).unique()[:3])
        raise DataError(
            f"rating column '{column}' has {int(bad.sum())} non-numeric value(s) (e.g. {examples}); make them numbers "
            "(or empty), or train on implicit feedback without ratings (data.feedback=implicit)."
        )
    out = numbers.to_numpy(dtype=np.float64)
    if np.isinf(out).any():
        raise DataError(f"rating column '{column}' has infinite values; ratings must be finite numbers.")
    return out


def parse_times(values: pd.Series, column: str) -> tuple[np.ndarray, str]:
    """Timestamps as float64 seconds (see :func:`recipezoo.data.timeparse.parse_times`; numbers mixed with date
    text are read as Unix seconds or milliseconds).

    Returns:
        The values and a note on how they were read (for the log).
    """
    return TP.parse_times(values, column, without=_WITHOUT_TIME)


def resolve_columns(
    frame: pd.DataFrame,
    given: Mapping[str, str | None],
    feedback: str,
    min_rating: float | None,
    where: str,
) -> dict[str, str | None]:
    """The column of each role (``user``, ``item``, ``rating``, ``time``): the one given, else a recognised name.

    Args:
        frame: the interactions.
        given: the columns set by ``data.<role>_column`` (None: detect among :data:`CANDIDATES`).
        feedback: ``implicit`` (the rating column is then only kept when ``min_rating`` filters on it) or
            ``explicit`` (a rating column is required).
        min_rating: the rating threshold of implicit feedback, if any.
        where: the interactions, for messages.

    Raises:
        ConfigError: a given column is not there, or the settings need a rating column that is not there.
        DataError: the user or item column cannot be detected.
    """
    found = list(frame.columns)
    shown = C.shown_columns(found, 30)
    out: dict[str, str | None] = {}
    for role in ROLES:
        name = given.get(role)
        if name:
            if name not in frame.columns:
                raise ConfigError(
                    f"data.{role}_column='{name}' is not a column of {where}; its columns are: {shown}."
                    + close_matches(name, [str(c) for c in found])
                )
            out[role] = name
            continue
        out[role] = C.find_column(found, candidates=CANDIDATES[role], match="loose")
    if out["user"] is None or out["item"] is None:
        role = "user" if out["user"] is None else "item"
        raise DataError(
            f"cannot tell which column of {where} holds the {role} ids; its columns are: {shown}. "
            f"Set data.{role}_column=<column>.{C.separator_hint(found)}"
        )
    if out["user"] == out["item"]:
        raise ConfigError(f"the user and item columns are both '{out['user']}'; they must differ.")
    if feedback == "explicit" and out["rating"] is None:
        raise ConfigError(
            f"data.feedback=explicit needs ratings, but {where} has no rating column (columns: {shown}). "
            "Set data.rating_column=<column>, or use data.feedback=implicit."
        )
    if feedback == "implicit" and min_rating is None:
        out["rating"] = None  # implicit feedback ignores ratings unless min_rating filters on them
    if min_rating is not None and out["rating"] is None:
        raise ConfigError("data.min_rating needs a rating column (data.rating_column=<column>).")
    return out


def read_interactions(
    raw: pd.DataFrame, cols: Mapping[str, str | None], min_rating: float | None, where: str
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Ids, ratings and times of the usable rows: rows without an id (or a rating, when rated) and ratings below
    ``min_rating`` dropped, all counted.

    Returns:
        ``(f, uniques, counts)``: ``f`` holds ``u``/``i`` (codes into ``uniques["user"]``/``["item"]``), ``r``
        (ratings; ones without a rating column), ``t`` (times; the row order without a time column) and ``o`` (the
        row's position in the file, which breaks ties of time).
    """
    counts: dict[str, Any] = {"rows_read": len(raw)}
    u_codes, u_uniques = canonical_ids(raw[cols["user"]])
    i_codes, i_uniques = canonical_ids(raw[cols["item"]])
    for name, uniques in (("user", u_uniques), ("item", i_uniques)):
        bad = [v for v in uniques[:100000] if "\n" in v or "\r" in v]
        if bad:  # the id maps are stored one id a line
            raise DataError(f"{name} ids may not contain line breaks (e.g. {bad[0]!r}).")
    keep = (u_codes >= 0) & (i_codes >= 0)
    counts["dropped_missing_id"] = int((~keep).sum())
    if counts["dropped_missing_id"]:
        log.warning("Dropped %d row(s) with no user or item id.", counts["dropped_missing_id"])
    rating = np.ones(len(raw), dtype=np.float64)
    if cols["rating"]:
        rating = parse_ratings(raw[cols["rating"]], cols["rating"])
        missing = np.isnan(rating) & keep
        counts["dropped_missing_rating"] = int(missing.sum())
        if missing.any():
            log.warning("Dropped %d row(s) with no rating.", int(missing.sum()))
        keep &= ~np.isnan(rating)
    order = np.arange(len(raw), dtype=np.int64)
    if cols["time"]:
        times, note = parse_times(raw[cols["time"]], cols["time"])
        log.info("Time column '%s' read as %s.", cols["time"], note)
    else:
        times = order.astype(np.float64)
        log.info("No time column: the file's row order is taken as the time order.")
    if min_rating is not None:
        low = keep & (rating < float(min_rating))
        counts["dropped_below_min_rating"] = int(low.sum())
        log.info("%d interaction(s) rated below %s are not positives: dropped.", int(low.sum()), min_rating)
        keep &= ~low
    if not keep.any():
        raise DataError(f"{where} has no usable interactions after cleaning ({counts}).")
    f = {"u": u_codes[keep], "i": i_codes[keep], "r": rating[keep], "t": times[keep], "o": order[keep]}
    return f, {"user": u_uniques, "item": i_uniques}, counts


def merge_duplicates(f: dict[str, np.ndarray], how: str, n_items: int) -> tuple[dict[str, np.ndarray], int]:
    """One row per (user, item): the ``last`` or ``first`` by time (file order breaks ties), or the ``mean`` /
    ``max`` rating at the last time.

    Returns:
        The merged rows (sorted by user, item, time) and how many rows were merged away.
    """
    if how not in DUPLICATES:
        raise ConfigError(f"unknown data.duplicates '{how}'; choose one of {', '.join(DUPLICATES)}.")
    u, i, r, t, o = f["u"], f["i"], f["r"], f["t"], f["o"]
    key = u.astype(np.int64) * (n_items + 1) + i
    srt = np.lexsort((o, t, key))
    u, i, r, t, o, key = u[srt], i[srt], r[srt], t[srt], o[srt], key[srt]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], len(key)) - 1
    pick = starts if how == "first" else ends
    if how == "mean":
        r_new = np.add.reduceat(r, starts) / (ends - starts + 1)
    elif how == "max":
        r_new = np.maximum.reduceat(r, starts)
    else:
        r_new = r[pick]
    return {"u": u[pick], "i": i[pick], "r": r_new, "t": t[pick], "o": o[pick]}, int(len(key) - len(starts))


def k_core(f: dict[str, np.ndarray], min_user: int, min_item: int) -> tuple[dict[str, np.ndarray], int]:
    """Drop users with fewer than ``min_user`` and items with fewer than ``min_item`` interactions, repeatedly,
    until both hold.

    Returns:
        The rows left and how many were dropped.
    """
    before = len(f["u"])
    while True:
        ok = (np.bincount(f["u"])[f["u"]] >= min_user) & (np.bincount(f["i"])[f["i"]] >= min_item)
        if ok.all():
            return f, before - len(f["u"])
        f = {k: v[ok] for k, v in f.items()}


def clean_interactions(
    raw: pd.DataFrame,
    cols: Mapping[str, str | None],
    *,
    duplicates: str = "last",
    min_rating: float | None = None,
    min_user_interactions: int = 1,
    min_item_interactions: int = 1,
    where: str = "interactions",
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """:func:`read_interactions`, then :func:`merge_duplicates` and :func:`k_core`, all counted and logged.

    Returns:
        ``(f, uniques, counts)`` as :func:`read_interactions` returns them.

    Raises:
        DataError: nothing usable is left.
    """
    f, uniques, counts = read_interactions(raw, cols, min_rating, where)
    f, counts["duplicates_merged"] = merge_duplicates(f, duplicates, len(uniques["item"]))
    if counts["duplicates_merged"]:
        log.info(
            "Merged %d duplicate (user, item) row(s) (data.duplicates=%s).", counts["duplicates_merged"], duplicates
        )
    if min_user_interactions > 1 or min_item_interactions > 1:
        f, dropped = k_core(f, min_user_interactions, min_item_interactions)
        counts["dropped_by_min_interactions"] = dropped
        log.info("Dropped %d interaction(s) below the minimum counts (k-core).", dropped)
    if len(f["u"]) == 0:
        raise DataError(
            f"no interactions are left after data.min_user_interactions={min_user_interactions} / "
            f"min_item_interactions={min_item_interactions}; lower them."
        )
    return f, uniques, counts


__all__ = [
    "DUPLICATES",
    "canonical_ids",
    "clean_interactions",
    "k_core",
    "merge_duplicates",
    "parse_ratings",
    "parse_times",
    "read_interactions",
    "resolve_columns",
]
