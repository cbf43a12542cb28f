"""Finding columns: by name, by a list of alternatives, by position, or among recognised candidate names.

:func:`find_column` only looks; :func:`resolve_column` also raises a one-line error that lists the columns found and
the close matches, and points at the setting to change. :func:`shown_columns` and :func:`separator_hint` are the
pieces of those messages, for callers that phrase their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from recipezoo.core.errors import DataError, UserError, close_matches

# How names are compared with candidates: exactly, ignoring case, or ignoring case, spaces, "_" and "-".
NORMALIZERS = {
    "exact": lambda name: str(name),
    "lower": lambda name: str(name).lower(),
    "loose": lambda name: re.sub(r"[\s_\-]", "", str(name).lower()),
}


def normalize(name: Any, how: str = "loose") -> str:
    """``name`` as compared with candidate names (see :data:`NORMALIZERS`)."""
    return NORMALIZERS[how](name)


def _options(spec: Any) -> list[Any]:
    """A column spec as its alternatives: a list/tuple (or an OmegaConf list) of them, or one."""
    if isinstance(spec, (list, tuple)) or type(spec).__name__ == "ListConfig":
        return list(spec)
    return [spec]


def spec_text(spec: Any) -> str:
    """A column spec as messages show it: ``a`` or ``a/b``."""
    return "/".join(str(o) for o in _options(spec))


def shown_columns(columns: Iterable[Any], limit: int = 40) -> str:
    """Column names for a message: the first ``limit``, then how many there are in all."""
    found = [str(c) for c in columns]
    return ", ".join(found[:limit]) + (f" ... ({len(found)} in all)" if len(found) > limit else "")


def separator_hint(columns: Sequence[Any]) -> str:
    """When a table came out as one column that holds separators, say that the file uses another delimiter."""
    if len(columns) == 1 and any(sep in str(columns[0]) for sep in ";|\t"):
        return " The file seems to use another delimiter: save it with commas, or as .tsv for tabs."
    return ""


def find_column(
    columns: Sequence[Any],
    spec: Any = None,
    *,
    candidates: Sequence[str] = (),
    match: str = "loose",
    positions: bool = True,
) -> Any:
    """The column ``spec`` names, else the first present of ``candidates``; None when neither is found.

    Args:
        columns: the table's column names.
        spec: a name, a position (an int, or digits when no column has that name; negative counts from the end),
            or a list of alternatives, the first present winning (names before positions). None: use candidates.
        candidates: names recognised when ``spec`` is None, in order of preference.
        match: how candidates are compared (``exact``, ``lower`` or ``loose``; see :data:`NORMALIZERS`).
        positions: whether digits may name a position.

    Returns:
        The column name as it is in ``columns`` (its first occurrence).
    """
    cols = list(columns)
    if spec is not None:
        options = _options(spec)
        texts = {str(c): c for c in reversed(cols)}
        for key in options:
            if str(key) in texts:
                return texts[str(key)]
        if positions:
            for key in options:
                if re.fullmatch(r"-?\d+", str(key)) and -len(cols) <= int(key) < len(cols):
                    return cols[int(key)]
        return None
    how = NORMALIZERS[match]
    by_norm: dict[str, Any] = {}
    for c in cols:
        by_norm.setdefault(how(c), c)
    return next((by_norm[how(c)] for c in candidates if how(c) in by_norm), None)


def resolve_column(
    columns: Sequence[Any],
    spec: Any,
    what: str,
    required: bool = True,
    *,
    candidates: Sequence[str] = (),
    match: str = "loose",
    positions: bool = True,
    where: str = "the table",
    key: str | None = None,
    error: type[UserError] = DataError,
    limit: int = 40,
    fix: str | None = None,
) -> Any:
    """:func:`find_column`, raising a message that lists the columns found when the column is not there.

    Args:
        columns: the table's column names.
        spec: see :func:`find_column` (None: look among ``candidates``).
        what: what the column holds, for messages (``text``, ``label``, ``user ids``).
        required: raise when nothing is found; else return None.
        candidates, match, positions: see :func:`find_column`.
        where: the table, for messages (a file name, ``interactions <path>``).
        key: the setting that names the column (default ``data.<what>_column``).
        error: the error raised.
        limit: how many column names messages show.
        fix: the end of the message for a missing ``spec`` (default `` Set <key>=<name>.``).

    Raises:
        UserError: (``error``) the column is not there and ``required``.
    """
    found = find_column(columns, spec, candidates=candidates, match=match, positions=positions)
    if found is not None or not required:
        return found
    key = key or f"data.{what.replace(' ', '_')}_column"
    shown = shown_columns(columns, limit)
    if spec is not None:
        first = str(_options(spec)[0])
        raise error(
            f"{where} has no {what} column '{spec_text(spec)}'; columns found: {shown}."
            f"{close_matches(first, [str(c) for c in columns])}"
            f"{f' Set {key}=<name>.' if fix is None else fix}{separator_hint(list(columns))}"
        )
    looked = f" (looked for {', '.join(candidates[:12])}{' ...' if len(candidates) > 12 else ''})" if candidates else ""
    raise error(
        f"cannot tell which column of {where} holds the {what}{looked}; columns found: {shown}. "
        f"Set {key}=<column>.{separator_hint(list(columns))}"
    )


def column_values(frame: Any, spec: Any, what: str, where: Any, fix: str | None = None, limit: int = 20) -> list[str]:
    """A column of a text table (see :func:`find_column`) as strings (None as ""); when it is missing, the error
    lists the columns found, or names the separator the file seems to use when it came out as one column.

    Args:
        frame: the table (from :func:`~recipezoo.data.tables.read_table`).
        spec: a name, a position or a list of alternatives.
        what: what the column holds (``text``, ``label``).
        where: the file (its name is shown).
        fix: the end of the message (default: how to set ``data.<what>_column``).
        limit: how many column names the message shows.
    """
    from pathlib import Path

    from recipezoo.data.tables import wrong_separator_hint

    found = find_column(list(frame.columns), spec)
    if found is not None:
        return ["" if v is None else str(v) for v in frame[found].tolist()]
    path = Path(str(where))
    separator = wrong_separator_hint(frame, path)
    if separator:  # one column holding the whole line: the separator is wrong, not the column name
        raise DataError(f"cannot find the {what} column '{spec_text(spec)}':{separator}")
    if fix is None:
        fix = (
            f" Set data.{what}_column=<name> (a position 0, 1, ... also works, and a list [a, b] takes whichever each "
            "file has; for a file without a header row: data.header=false, with data.columns=[...] to name its "
            "columns)."
        )
    shown = ", ".join(map(str, frame.columns[:limit]))
    raise DataError(
        f"{path.name} has no {what} column '{spec_text(spec)}'; columns found: {shown}."
        f"{close_matches(str(_options(spec)[0]), [str(c) for c in frame.columns])}{fix}"
    )


def missing_columns(columns: Sequence[Any], wanted: Iterable[Any]) -> list[str]:
    """The names in ``wanted`` that are not columns (in ``wanted``'s order)."""
    have = {str(c) for c in columns}
    return [str(w) for w in wanted if str(w) not in have]


__all__ = [
    "NORMALIZERS",
    "column_values",
    "find_column",
    "missing_columns",
    "normalize",
    "resolve_column",
    "separator_hint",
    "shown_columns",
    "spec_text",
]
