"""Label maps: class names fitted on training labels, in a deterministic order, saved into ``data_info``.

:class:`LabelMap` turns label names into indices and back, for single-label and multi-label data (several labels in
one cell, split on a delimiter), with a policy for labels the map does not know (an error that lists them, or
dropping their rows). :func:`sort_labels` gives the orders the domains use; :func:`read_label_names` reads a
``label_names`` list or file (line ``i`` names label id ``i``).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from recipezoo.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

ORDERS = ("text", "natural", "numeric", "tags", "none")
UNSEEN = ("error", "drop")
ENTITY_TAG = re.compile(r"^([BIESLU])-(.+)$")


def _natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(text))]


def _tag_key(tag: str) -> tuple:
    """``O`` first, then entity tags grouped by entity type (``B-LOC``, ``I-LOC``, ``B-PER``...), then plain tags."""
    m = ENTITY_TAG.match(tag)
    return (tag != "O", m.group(2) if m else tag, m.group(1) if m else "")


def sort_labels(values: Iterable[Any], order: str = "numeric") -> list[str]:
    """Distinct label names (as text) in a deterministic order.

    Args:
        values: labels (duplicates allowed).
        order: ``text`` (plain string order), ``natural`` (``2`` before ``10`` inside text: ``class_2``,
            ``class_10``), ``numeric`` (numerically when all are integers, else as text), ``tags`` (``O`` first, then
            entity tags by type: ``B-LOC``, ``I-LOC``...) or ``none`` (first appearance).
    """
    if order == "none":
        return list(dict.fromkeys(str(v) for v in values))
    distinct = sorted({str(v) for v in values})
    if order == "text":
        return distinct
    if order == "natural":
        return sorted(distinct, key=_natural)
    if order == "numeric":
        if distinct and all(re.fullmatch(r"-?\d+", v) for v in distinct):
            return sorted(distinct, key=int)
        return distinct
    if order == "tags":
        return sorted(distinct, key=_tag_key)
    raise ConfigError(f"unknown label order '{order}'; choose one of {', '.join(ORDERS)}.")


def split_labels(value: Any, delimiter: str = ",") -> tuple[str, ...]:
    """A multi-label cell (``"sports, politics"``) as its labels, stripped, empty ones dropped."""
    return tuple(v.strip() for v in str(value).split(delimiter) if v.strip())


def read_label_names(spec: Any, encoding: str = "utf-8") -> list[str] | None:
    """Label names for integer label ids: a list, or a file with one name per line (blank lines skipped); None when
    ``spec`` is empty.

    Raises:
        DataError: the file does not exist.
    """
    if spec in (None, ""):
        return None
    if isinstance(spec, (list, tuple)) or type(spec).__name__ == "ListConfig":
        return [str(x) for x in spec]
    from recipezoo.data.tables import expand, read_text_file

    p = expand(spec)
    if not p.is_file():
        raise DataError(f"label names file not found: {p} (data.label_names).")
    return [line.strip() for line in read_text_file(p, encoding).splitlines() if line.strip()]


@dataclass
class LabelMap:
    """Label names and their indices (index ``i`` is ``labels[i]``).

    Args:
        labels: the label names, in index order.
        multi_label: each example has zero or more labels.
        delimiter: what separates the labels of a multi-label cell.
        names: names of integer label ids (``label_names``): the data's labels are ids ``0..N-1``, mapped through
            these names onto ``labels``.
    """

    labels: list[str]
    multi_label: bool = False
    delimiter: str = ","
    names: list[str] | None = None

    # -- fitting --------------------------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        values: Iterable[Any],
        *,
        order: str = "numeric",
        multi_label: bool = False,
        delimiter: str = ",",
        names: Sequence[str] | None = None,
        what: str = "data",
        source: str = "",
    ) -> LabelMap:
        """The label map of ``values`` (training labels; for multi-label, tuples of labels).

        With ``names``, labels must be ids ``0..N-1``: a single-label map holds the names of the ids present (in id
        order), a multi-label map every name (whether or not training has examples of it).

        Args:
            values: the training labels.
            order: see :func:`sort_labels`.
            multi_label: ``values`` holds tuples of labels.
            delimiter: what separates the labels of a multi-label cell (see :meth:`parse`).
            names: names of integer label ids (see the class).
            what: the data, for messages.
            source: where the labels come from, for messages (``label column``).

        Raises:
            DataError: no labels, or labels that are not ids of ``names``.
        """
        values = list(values)
        raw = [str(y) for ys in values for y in ys] if multi_label else [str(y) for y in values]
        names = [str(n) for n in names] if names is not None else None
        if names is not None:
            bad = sorted({y for y in raw if not (y.isdigit() and int(y) < len(names))})
            if bad:
                raise DataError(
                    f"data.label_names has {len(names)} names, but the labels include {', '.join(bad[:5])}: with "
                    "label_names, labels must be ids 0..N-1."
                )
            labels = list(names) if multi_label else [names[int(y)] for y in sort_labels(raw, "numeric")]
            return cls(labels, multi_label, delimiter, names)
        labels = sort_labels(raw, order)
        if not labels:
            raise DataError(f"{what}: no labels in the training split{f' ({source})' if source else ''}.")
        return cls(labels, multi_label, delimiter)

    def parse(self, value: Any) -> Any:
        """A raw cell as a label (stripped) or, multi-label, a tuple of labels."""
        if self.multi_label:
            return split_labels(value, self.delimiter)
        return str(value).strip()

    # -- using ----------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def index(self) -> dict[str, int]:
        """Label (or, with ``names``, label id as text) -> index."""
        index = {y: i for i, y in enumerate(self.labels)}
        if self.names is not None:  # ids in the data -> their names -> our index
            index = {str(i): index[n] for i, n in enumerate(self.names) if n in index}
        return index

    def encode(
        self, targets: Sequence[Any], *, split: str = "train", unseen: str = "error", noun: str = "labels"
    ) -> tuple[list[Any], list[int]]:
        """Labels as indices (multi-label: tuples of indices), with the policy for labels the map does not know.

        Args:
            targets: one label (multi-label: a tuple of labels) per example.
            split: the split, for messages; unseen labels in ``train`` are always an error.
            unseen: ``error`` (list them) or ``drop`` (drop their examples, with a warning).
            noun: what the labels are called in messages.

        Returns:
            ``(encoded, kept)``: the encoded targets of the examples kept, and their positions in ``targets``.

        Raises:
            DataError: unseen labels (with ``unseen="error"``, or in the training split).
        """
        if unseen not in UNSEEN:
            raise ConfigError(f"unknown unseen-label policy '{unseen}'; choose one of {', '.join(UNSEEN)}.")
        index = self.index
        encoded: list[Any] = []
        kept: list[int] = []
        missing_counts: Counter = Counter()
        for i, y in enumerate(targets):
            ys = y if self.multi_label else (y,)
            missing = [v for v in ys if v not in index]
            if missing:
                missing_counts.update(missing)
                continue
            kept.append(i)
            encoded.append(tuple(index[v] for v in ys) if self.multi_label else index[y])
        if missing_counts:
            listed = ", ".join(f"'{k}' ({v} rows)" for k, v in missing_counts.most_common(8))
            if unseen == "error" or split == "train":
                raise DataError(
                    f"{noun} in the {split} split that training never saw: {listed}. The model cannot predict "
                    "them: add training examples, fix the labels, or pass data.drop_unseen_labels=true to drop "
                    "those rows."
                )
            log.warning(
                "%s split: dropped %d rows with %s unseen in training: %s.",
                split,
                len(targets) - len(kept),
                noun,
                listed,
            )
        return encoded, kept

    def decode(self, indices: Iterable[int]) -> list[str]:
        """Indices as label names."""
        return [self.labels[int(i)] for i in indices]

    def check_known(self, found: Iterable[Any], order: str = "text", what: str = "classes") -> None:
        """Refuse data whose labels the map (e.g. a checkpoint's) does not know.

        Raises:
            DataError: the labels the map does not know (the first 20), and the map's own.
        """
        unknown = sort_labels(set(map(str, found)) - set(self.labels), order)
        if unknown:
            raise DataError(
                f"label mismatch: the data has {what} {unknown[:20]} that the checkpoint does not know (it was "
                f"trained on {len(self.labels)} {what}: {self.labels[:20]}). Use data with the checkpoint's "
                f"{what}, or train a new model."
            )

    # -- data_info ------------------------------------------------------------------------------------------------
    def to_info(self) -> dict[str, Any]:
        """The entries of ``data_info`` that describe the labels: ``num_classes``, ``labels``, ``multi_label``."""
        return {"num_classes": len(self.labels), "labels": list(self.labels), "multi_label": self.multi_label}

    @classmethod
    def from_info(
        cls, info: dict[str, Any], delimiter: str = ",", names: Sequence[str] | None = None
    ) -> LabelMap | None:
        """The label map saved by :meth:`to_info` (None when ``info`` has no labels)."""
        if not info or not info.get("labels"):
            return None
        return cls(
            [str(x) for x in info["labels"]],
            bool(info.get("multi_label", False)),
            delimiter,
            [str(n) for n in names] if names is not None else None,
        )


__all__ = ["LabelMap", "ORDERS", "UNSEEN", "read_label_names", "sort_labels", "split_labels"]
