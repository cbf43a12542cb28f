"""Text sources: the rows of a split, read from a table and cleaned, before labels are mapped and texts tokenized.

Reading, column resolution and split files come from :mod:`recipezoo.data`; what is NLP's own is the
:class:`Split` container (texts, text pairs or word lists, with their raw targets) and the cleaning of text rows
(empty texts and labels are skipped and counted). Every function here is pure: a file or a split in, a split out.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recipezoo.data import columns as C
from recipezoo.data import tables as T
from recipezoo.data.tables import read_text_file

__all__ = [
    "Split",
    "column",
    "column_ref",
    "flat_texts",
    "read_labelled_texts",
    "read_text_file",
    "read_text_table",
    "subsample",
    "subset",
]


@dataclass
class Split:
    """The rows of one split that survived cleaning: model inputs and raw targets."""

    texts: Any  # list[str] | (list[str], list[str]) | list[list[str]]
    targets: list[Any]
    source: str = ""
    dropped: Counter = field(default_factory=Counter)


def subset(split: Split, idx: Sequence[int], source: str | None = None) -> Split:
    """The rows ``idx`` of ``split`` (texts, pairs and targets alike)."""
    idx = list(idx)
    if isinstance(split.texts, tuple):
        texts: Any = ([split.texts[0][i] for i in idx], [split.texts[1][i] for i in idx])
    else:
        texts = [split.texts[i] for i in idx]
    return Split(texts, [split.targets[i] for i in idx], split.source if source is None else source)


def subsample(split: Split, n: int | float | str | None, seed: int) -> Split:
    """A seeded random subset of ``n`` rows (a fraction when ``n`` is a float <= 1), in file order.

    Returns ``split`` itself when ``n`` is empty or not smaller than the split.
    """
    if n in (None, 0, "null"):
        return split
    size = len(split.targets)
    k = int(round(float(n) * size)) if isinstance(n, float) and n <= 1 else int(n)
    if k >= size:
        return split
    keep = np.sort(np.random.default_rng(seed).choice(size, size=k, replace=False))
    return subset(split, keep.tolist(), source=split.source)


def flat_texts(texts: Any, kind: str) -> list[str]:
    """Every text of a split as one list (what a tokenizer is trained on): both sides of pairs, words joined."""
    if kind == "pairs":
        return list(texts[0]) + list(texts[1])
    if kind == "words":
        return [" ".join(w) for w in texts]
    return list(texts)


def read_text_table(
    path: str | os.PathLike,
    sep: str | None = None,
    header: bool = True,
    columns: Sequence[str] | None = None,
    encoding: str = "utf-8",
) -> Any:
    """A CSV/TSV/JSON-lines/Parquet table as a pandas DataFrame of strings (missing cells are empty strings).

    Args:
        path: the file.
        sep: field separator; None: from the extension (``.csv`` comma, ``.tsv`` tab), else detected.
        header: whether the first line names the columns; without one, columns are named by ``columns`` or by
            position (``"0"``, ``"1"``, ...).
        columns: names for the columns of a header-less file.
        encoding: the file's text encoding.

    Raises:
        DataError: missing, empty, undecodable or unparsable file (a wrong separator is detected and named).
    """
    # Texts are read as written (no number or NA inference), and tab-separated files (GLUE, CoNLL-like exports)
    # do not quote fields: a text starting with '"' is just a quote.
    return T.read_table(
        path,
        sep=sep,
        header=header,
        names=columns if not header else None,
        encoding=encoding,
        text=True,
        quote_tabs=False,
        unknown_kind="text",
        allow_empty=True,
    )


def column(frame: Any, name: Any, path: Path, what: str) -> list[str]:
    """A column as strings, with a clear error listing the columns found when it is missing.

    ``name`` is a column name, a position (``0``, ``1``... when no column has that name), or a list of
    alternatives, the first present winning (files whose splits name the column differently: ``[sentence,
    content]``).
    """
    return C.column_values(frame, name, what, path)


def column_ref(value: Any) -> str | list[str]:
    """A column reference from the config: a name/position, or a list of alternative names."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [str(v) for v in value]
    return str(value)


def read_labelled_texts(
    path: Path,
    text_column: Any,
    label_column: Any,
    parse_label: Callable[[str], Any],
    *,
    pair_column: Any = None,
    empty_labels: bool = False,
    sep: str | None = None,
    header: bool = True,
    columns: Sequence[str] | None = None,
    encoding: str = "utf-8",
) -> Split:
    """The labelled texts of one table: rows with an empty text (or pair text) are skipped, as are rows with an
    empty label unless ``empty_labels`` (multi-label rows may have none); ``dropped`` counts them by reason.

    Args:
        path: the table.
        text_column, label_column, pair_column: column references (see :func:`column`); ``pair_column`` None
            reads single texts.
        parse_label: a raw label cell to the target kept (e.g. a tuple of labels for multi-label data).
        empty_labels: keep rows whose label is empty.
        sep, header, columns, encoding: see :func:`read_text_table`.
    """
    frame = read_text_table(path, sep, header, columns, encoding)
    texts = column(frame, text_column, path, "text")
    pairs = column(frame, pair_column, path, "text_pair") if pair_column is not None else None
    raw = column(frame, label_column, path, "label")
    dropped: Counter = Counter()
    keep = []
    for i, (t, y) in enumerate(zip(texts, raw)):
        if not t.strip() or (pairs is not None and not pairs[i].strip()):
            dropped["empty text"] += 1
        elif not y.strip() and not empty_labels:
            dropped["empty label"] += 1
        else:
            keep.append(i)
    kept: Any = [texts[i] for i in keep]
    if pairs is not None:
        kept = (kept, [pairs[i] for i in keep])
    return Split(kept, [parse_label(raw[i]) for i in keep], path.name, dropped)
