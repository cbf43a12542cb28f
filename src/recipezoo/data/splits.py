"""Splitting data into train / val / test: split names, fixed files, and seeded stratified, group, time-ordered,
leave-last-out and random splits.

Every function is a function of its inputs and the seed alone, and returns indices (or a part per row), so any
DataModule can apply it to its own containers.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recipezoo.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# Names a folder, a file stem or a "split" column may give a split (compared lower-cased). For each split the
# names are listed in the order files are looked for (a folder holding dev.csv and val.csv uses dev.csv).
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "dev": "val",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


def check_split(split: str) -> str:
    """``split`` when it is ``train``, ``val`` or ``test``; else a :class:`ConfigError` naming them."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}.")
    return split


def canonical_split(name: Any) -> str | None:
    """``train``, ``val`` or ``test`` for a split name or alias (``dev``, ``validation``, ``Testing``...), else None."""
    return SPLIT_ALIASES.get(str(name).strip().lower())


def natural_key(text: Any) -> list[Any]:
    """Sort key that orders ``2`` before ``10``: values read the way people number things."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(text))]


# -- fixed files --------------------------------------------------------------------------------------------------


def find_split_files(folder: Path, extensions: Sequence[str] | None = None) -> dict[str, Path]:
    """``train``, ``val`` and ``test`` files of a folder, by file stem (:data:`SPLIT_ALIASES`).

    Args:
        folder: the folder.
        extensions: the file extensions accepted (files without one are too); default: the table formats.

    Raises:
        DataError: the folder has no training file.
    """
    if extensions is None:
        from recipezoo.data.tables import TABLE_EXTENSIONS

        extensions = TABLE_EXTENSIONS
    files: dict[str, Path] = {}
    entries = sorted(folder.iterdir())
    for split in SPLITS:
        for stem in (a for a, s in SPLIT_ALIASES.items() if s == split):
            hits = [p for p in entries if p.is_file() and p.stem.lower() == stem]
            hits = [p for p in hits if p.suffix.lower() in extensions or p.suffix == ""]
            if hits:
                files[split] = hits[0]
                break
    if "train" not in files:
        found = ", ".join(p.name for p in entries[:10])
        raise DataError(
            f"no training file in folder {folder} (looked for train.csv/.tsv/.jsonl/.parquet; found: {found}). "
            "Pass data.path=<the training file>, with data.val_path / data.test_path for fixed splits."
        )
    return files


def split_paths(path: Any, val_path: Any = None, test_path: Any = None) -> dict[str, Path]:
    """The files of each split: a folder's train/dev/test files, or ``path`` plus explicit val/test files.

    Raises:
        DataError: no path, or a path that does not exist.
    """
    if path in (None, ""):
        raise DataError("no data given: pass data.path=<file or folder>, or data.synthetic=true to try the recipe.")
    p = Path(os.path.expanduser(str(path)))
    if not p.exists():
        raise DataError(f"data path not found: {p}. Pass data.path=<file or folder>.")
    files = find_split_files(p) if p.is_dir() else {"train": p}
    for split, extra in (("val", val_path), ("test", test_path)):
        if extra not in (None, ""):
            q = Path(os.path.expanduser(str(extra)))
            if not q.is_file():
                raise DataError(f"{split} file not found: {q} (data.{split}_path).")
            files[split] = q
    return files


# -- seeded random splits -----------------------------------------------------------------------------------------


def stratified_split(
    labels: Sequence[Hashable], fractions: Sequence[float], seed: int, what: str = "data"
) -> list[list[int]]:
    """Split indices into ``len(fractions) + 1`` parts (the first gets the rest), stratified by label.

    Args:
        labels: one label per example.
        fractions: the sizes of the parts after the first, as fractions of all examples (e.g. val, test).
        seed: the split is a function of the seed alone.
        what: how to name the data in error messages.

    Returns:
        The parts' indices, each sorted.

    Raises:
        DataError: too few examples to split off a part.
    """
    from sklearn.model_selection import train_test_split

    indices = list(range(len(labels)))
    parts: list[list[int]] = []
    remaining, remaining_labels = indices, list(labels)
    total = len(indices)
    for frac in fractions:
        n = int(round(frac * total))
        if n == 0:
            parts.append([])
            continue
        if n >= len(remaining):
            raise DataError(
                f"{what}: {len(remaining)} examples are too few to split off {frac:.0%}; "
                "add data or lower the split fractions."
            )
        try:
            rest, part, rest_labels, _ = train_test_split(
                remaining, remaining_labels, test_size=n, random_state=seed, stratify=remaining_labels
            )
        except ValueError:
            log.warning("%s: some classes are too small to stratify the split; splitting at random.", what)
            rest, part, rest_labels, _ = train_test_split(remaining, remaining_labels, test_size=n, random_state=seed)
        parts.append(sorted(part))
        remaining, remaining_labels = rest, rest_labels
    return [sorted(remaining)] + parts


def _counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    n_test, n_val = int(round(test_fraction * n)), int(round(val_fraction * n))
    return n - n_val - n_test, n_val, n_test


def _too_few(n: int, sizes: tuple[int, int, int], require_test: bool, what: str, unit: str, v: float, t: float) -> None:
    n_train, n_val, n_test = sizes
    if n_train < 1 or n_val < 1 or (require_test and n_test < 1):
        raise DataError(
            f"{what}: {n} {unit} are too few for val_fraction={v} and test_fraction={t}; add data or change the "
            "fractions."
        )


def random_split(
    n: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    *,
    require_test: bool = True,
    what: str = "data",
    unit: str = "rows",
) -> np.ndarray:
    """A seeded random split of ``n`` rows: per row 0 (train), 1 (val) or 2 (test).

    The first ``round(test_fraction * n)`` rows of a seeded permutation go to test, the next
    ``round(val_fraction * n)`` to val.

    Raises:
        DataError: train or val (or test, with ``require_test``) would be empty.
    """
    perm = np.random.default_rng(seed).permutation(n)
    sizes = _counts(n, val_fraction, test_fraction)
    _too_few(n, sizes, require_test, what, unit, val_fraction, test_fraction)
    _, n_val, n_test = sizes
    part = np.zeros(n, dtype=np.int8)
    part[perm[:n_test]] = 2
    part[perm[n_test : n_test + n_val]] = 1
    return part


def time_split(
    times: Sequence[float] | np.ndarray,
    val_fraction: float,
    test_fraction: float,
    *,
    tiebreak: Sequence[int] | np.ndarray | None = None,
    require_test: bool = False,
    what: str = "data",
    unit: str = "rows",
) -> list[np.ndarray]:
    """The earliest rows train, the next validate, the latest test.

    Args:
        times: one sortable value per row (see :func:`~recipezoo.data.timeparse.parse_times`).
        val_fraction: share of rows for val (rounded).
        test_fraction: share of rows for test (rounded).
        tiebreak: order among equal times (e.g. the rows' positions in the file); default: the rows' order here.
        require_test: refuse an empty test split (else only train and val must be non-empty).
        what: the data, for messages.
        unit: what a row is, for messages (``rows``, ``interactions``).

    Returns:
        ``[train, val, test]`` row indices, each in time order.

    Raises:
        DataError: a required split would be empty.
    """
    times = np.asarray(times, dtype=np.float64)
    n = len(times)
    order = np.argsort(times, kind="stable") if tiebreak is None else np.lexsort((np.asarray(tiebreak), times))
    sizes = _counts(n, val_fraction, test_fraction)
    _too_few(n, sizes, require_test, what, unit, val_fraction, test_fraction)
    n_train, n_val, _ = sizes
    return [order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]]


def leave_last_out(
    users: np.ndarray, times: np.ndarray, tiebreak: np.ndarray | None = None
) -> tuple[np.ndarray, dict[str, int]]:
    """Per user, the last interaction to test and the one before to val; the rest (and users with one) train.

    Args:
        users: ``(N,)`` non-negative user codes.
        times: ``(N,)`` sortable times.
        tiebreak: order among a user's equal times (default: position).

    Returns:
        Per row 0 (train), 1 (val) or 2 (test); and counts ``users_train_only`` (one interaction: no test target)
        and ``users_without_val`` (two interactions).
    """
    users = np.asarray(users, dtype=np.int64)
    n = len(users)
    tb = np.arange(n) if tiebreak is None else np.asarray(tiebreak)
    srt = np.lexsort((tb, np.asarray(times), users))
    u = users[srt]
    n_u = np.bincount(u) if n else np.zeros(0, dtype=np.int64)
    total = n_u[u]
    first = np.searchsorted(u, u, side="left")
    pos = np.arange(n) - first  # position within the user's time-ordered interactions
    sorted_part = np.zeros(n, dtype=np.int8)
    sorted_part[(total >= 2) & (pos == total - 1)] = 2
    sorted_part[(total >= 3) & (pos == total - 2)] = 1
    part = np.zeros(n, dtype=np.int8)
    part[srt] = sorted_part
    active = n_u[n_u > 0]
    return part, {"users_train_only": int((active == 1).sum()), "users_without_val": int((active == 2).sum())}


def group_split(
    groups: Sequence[Any],
    fractions: Sequence[float],
    seed: int,
    *,
    strata: Sequence[Any] | None = None,
    group_order: str = "appearance",
    fill: str = "last_first",
    take_first: bool = False,
) -> list[np.ndarray]:
    """Whole groups (speakers, customers) to each held-out part until it holds its fraction of the rows.

    Groups are visited in a seeded order; a group goes to the first part (in ``fill`` order) that it does not push
    past its target by more than half the group's size, else to train. The last group of a stratum always stays in
    train. Rows without a group (None/NaN) are each a group of their own.

    Args:
        groups: one group per row.
        fractions: the held-out parts' shares of the rows (e.g. ``[val, test]``); train gets the rest.
        seed: the order of the groups is a function of the seed alone.
        strata: one number per row (e.g. the 0/1 target). Groups with a non-zero row are split first, then the
            others, each with its own targets, so that every part gets its share of positives. None: one stratum.
        group_order: the order groups are listed in before the seeded permutation: ``appearance`` (first row) or
            ``natural`` (sorted by :func:`natural_key` of their text).
        fill: ``last_first`` tries the last part first (test before val); ``first_first`` the parts in order.
        take_first: a part still empty takes the next group whatever its size (small data with big groups).

    Returns:
        ``[train, *parts]`` row indices, each sorted; a part may be empty (callers say what to do).
    """
    import pandas as pd

    values = groups if isinstance(groups, pd.Series) else pd.Series(list(groups), dtype=object)
    if group_order == "natural":
        present = values.dropna().astype(str)
        uniques = sorted(set(present), key=natural_key)
        lookup = {g: k for k, g in enumerate(uniques)}
        codes = np.array([lookup[str(g)] if g is not None and not pd.isna(g) else -1 for g in values], dtype=np.int64)
    elif group_order == "appearance":
        codes = pd.factorize(values, use_na_sentinel=True)[0].astype(np.int64)
    else:
        raise ValueError(f"unknown group_order '{group_order}'")
    na = codes < 0
    if na.any():
        # A row without a group is its own group: lumping them together would make one giant group.
        codes[na] = codes.max(initial=-1) + 1 + np.arange(int(na.sum()))
    n_groups = int(codes.max(initial=-1)) + 1
    sizes = np.bincount(codes, minlength=n_groups)
    if strata is None:
        stratum_ids = [np.arange(n_groups)]
    else:
        has = np.bincount(codes, weights=np.asarray(strata, dtype=np.float64), minlength=n_groups) > 0
        stratum_ids = [np.flatnonzero(has), np.flatnonzero(~has)]
    rng = np.random.default_rng(seed)
    k = len(fractions)
    visit = list(range(k - 1, -1, -1)) if fill == "last_first" else list(range(k))
    assign = np.zeros(n_groups, dtype=np.int64)  # 0 train, 1.. the parts
    for stratum in stratum_ids:
        perm = rng.permutation(stratum)
        total = int(sizes[perm].sum())
        targets = [f * total for f in fractions]
        filled = [0] * k
        for i, g in enumerate(perm):
            remaining = len(perm) - i
            if remaining <= 1:
                break  # never give away the last group of a stratum: training must keep some of each
            for part in visit:
                fits = filled[part] + sizes[g] / 2 <= targets[part]
                if fits or (take_first and filled[part] == 0 and targets[part] > 0):
                    assign[g] = part + 1
                    filled[part] += int(sizes[g])
                    break
    row_part = assign[codes]
    return [np.flatnonzero(row_part == p) for p in range(k + 1)]


def missing_splits(splits: Mapping[str, Any], names: Sequence[str] = ("val", "test"), empty: bool = False) -> list[str]:
    """The held-out splits to carve from train: those absent from ``splits`` (or, with ``empty``, without rows)."""
    return [s for s in names if s not in splits or (empty and not len(splits[s]))]


def carve_missing(
    keys: Sequence[Hashable],
    fractions: Sequence[float],
    seed: int,
    *,
    what: str = "data",
    groups: Sequence[Any] | None = None,
    **group_options: Any,
) -> list[list[int]]:
    """Carve held-out parts out of the training pool: whole ``groups`` (:func:`group_split`) or stratified by
    ``keys`` (:func:`stratified_split`; equal keys for a plain seeded random split).

    Returns:
        ``[train, *parts]`` indices into the pool, each sorted.
    """
    if groups is not None:
        return [p.tolist() for p in group_split(groups, fractions, seed, **group_options)]
    return stratified_split(keys, fractions, seed, what)


def group_overlap(splits: Mapping[str, Sequence[Mapping[str, Any]]], field: str) -> list[str]:
    """Values of ``field`` found in more than one split (naturally sorted)."""
    seen: dict[str, str] = {}
    shared = set()
    for s, items in splits.items():
        for item in items:
            g = str(item.get(field))
            if seen.setdefault(g, s) != s:
                shared.add(g)
    return sorted(shared, key=natural_key)


def split_counts(parts: Mapping[str, Sequence[Any]]) -> dict[str, int]:
    """Rows per split."""
    return {s: len(v) for s, v in parts.items()}


__all__ = [
    "SPLITS",
    "SPLIT_ALIASES",
    "canonical_split",
    "carve_missing",
    "find_split_files",
    "group_overlap",
    "group_split",
    "leave_last_out",
    "missing_splits",
    "natural_key",
    "random_split",
    "split_counts",
    "split_paths",
    "stratified_split",
    "time_split",
]
