"""Side features of items and users: tabular columns (standardised numbers, categories), multi-hot tokens, and item
texts embedded by a pretrained sentence encoder.

The encoders are fitted on the catalogue (or restored from ``data_info``'s ``preprocessing``, never refitted) and
produce one row per catalogue entry, in index order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from recipezoo.core.errors import ConfigError, DataError, close_matches
from recipezoo.core.pretrained import parse_pretrained
from recipezoo.runtime.tabular import MissingColumnsError, PreprocessingError, TabularPreprocessor

log = logging.getLogger(__name__)

# Multi-hot vocabularies keep at most this many tokens (the most frequent are not favoured: sorted, then cut).
MAX_MULTI_VOCAB = 200


@dataclass(frozen=True)
class FeatureColumns:
    """The feature columns of one side table."""

    categorical: Sequence[str] = ()
    numeric: Sequence[str] = ()
    multi: Sequence[str] = ()
    text: str | None = None


def multi_hot(
    values: Sequence[Any], separator: str, vocab: Sequence[str] | None, min_count: int
) -> tuple[np.ndarray, list[str]]:
    """Multi-valued cells (``"Action|Comedy"``) as a multi-hot ``(N, V)`` matrix.

    Args:
        values: the cells (non-text cells have no token).
        separator: what separates the tokens of a cell.
        vocab: the tokens (restored); None fits them: tokens seen at least ``min_count`` times, sorted.
        min_count: see ``vocab``.

    Returns:
        The matrix and the vocabulary.
    """
    tokens = [[t.strip() for t in str(v).split(separator) if t.strip()] if isinstance(v, str) else [] for v in values]
    if vocab is None:
        freq = pd.Series([t for ts in tokens for t in ts]).value_counts()
        vocab = sorted(freq[freq >= min_count].index.tolist())[:MAX_MULTI_VOCAB]
    index = {t: j for j, t in enumerate(vocab)}
    hot = np.zeros((len(tokens), len(vocab)), dtype=np.float32)
    for r, ts in enumerate(tokens):
        for tok in ts:
            if tok in index:
                hot[r, index[tok]] = 1.0
    return hot, list(vocab)


def encode_table(
    table: pd.DataFrame,
    rows: np.ndarray,
    role: str,
    columns: FeatureColumns,
    restored: dict[str, Any] | None,
    *,
    min_count: int,
    multi_separator: str,
    text_settings: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray], list[str] | None]:
    """Encode a side table's feature columns for each catalogue entry.

    Args:
        table: the side table (one row per id).
        rows: for each catalogue entry (index order), its row in ``table``; -1: not in the table (features
            missing).
        role: ``item`` or ``user`` (array names ``<role>_num``, ``<role>_cat``; messages).
        columns: the feature columns.
        restored: the ``preprocessing`` of a checkpoint for this table (never refitted), or None to fit.
        min_count: categories and tokens seen fewer times share the out-of-vocabulary slot / are dropped.
        multi_separator: the separator of multi-valued cells.
        text_settings: the text encoder facts stored with the text column (``encoder``, ``max_length``, ``dim``).

    Returns:
        ``(info, arrays, texts)``: the preprocessing facts (``data_info``), ``<role>_num`` ``(N, D)`` float32 and
        ``<role>_cat`` ``(N, K)`` int64 arrays, and the texts to embed (None without a text column).
    """
    wanted = [*columns.categorical, *columns.numeric, *columns.multi, *([columns.text] if columns.text else [])]
    absent = [c for c in wanted if c not in table.columns]
    if absent:
        raise ConfigError(
            f"data.{role}_* feature column(s) {', '.join(absent)} are not in the {role} table; its columns are: "
            f"{', '.join(map(str, table.columns[:30]))}." + close_matches(absent[0], list(table.columns))
        )
    # Catalogue order, with empty rows for ids the table lacks (features then count as missing).
    aligned = table.reindex(np.where(rows >= 0, rows, len(table))).reset_index(drop=True)
    info: dict[str, Any] = {"tabular": None, "multi": {}, "text": None}
    arrays: dict[str, np.ndarray] = {}
    x_num_parts = []
    n_cat = 0
    categorical, numeric = list(columns.categorical), list(columns.numeric)
    if categorical or numeric:
        try:
            if restored and restored.get("tabular"):
                pre = TabularPreprocessor.from_dict(restored["tabular"])
            else:
                pre = TabularPreprocessor.fit(
                    aligned[[*categorical, *numeric]],
                    numeric=numeric,
                    categorical=categorical,
                    scaling="standard",
                    min_category_count=min_count,
                    log=log,
                )
            x_num, x_cat = pre.transform(aligned)
        except MissingColumnsError as e:
            raise DataError(f"the {role} table lacks column(s) {', '.join(e.missing)}.") from None
        except PreprocessingError as e:
            raise DataError(f"{role} features: {e}") from None
        info["tabular"] = pre.to_dict()
        x_num_parts.append(x_num.astype(np.float32))
        arrays[f"{role}_cat"] = x_cat.astype(np.int64)
        info["cardinalities"] = [int(c) for c in pre.cardinalities]
        n_cat = len(pre.cardinalities)
    for column in columns.multi:
        vocab = (restored or {}).get("multi", {}).get(column, {}).get("vocab")
        hot, vocab = multi_hot(aligned[column].tolist(), multi_separator, vocab, min_count)
        info["multi"][column] = {"separator": multi_separator, "vocab": vocab}
        x_num_parts.append(hot)
    x_num_all = np.hstack(x_num_parts) if x_num_parts else np.zeros((len(aligned), 0), np.float32)
    arrays[f"{role}_num"] = x_num_all
    arrays.setdefault(f"{role}_cat", np.zeros((len(aligned), 0), dtype=np.int64))
    info["num_dim"], info["cat_dim"] = x_num_all.shape[1], n_cat
    info.setdefault("cardinalities", [])
    texts = None
    if columns.text:
        texts = ["" if pd.isna(v) else str(v) for v in aligned[columns.text].tolist()]
        info["text"] = {"column": columns.text, **(text_settings or {})}
    return info, arrays, texts


def embed_item_texts(
    texts: list[str], encoder: str | None, pretrained: Any, batch_size: int, max_length: int
) -> np.ndarray:
    """Item texts as ``(N, H)`` float32 vectors of a sentence encoder (see
    :func:`recipezoo.core.backbones.hf.embed_texts`); empty texts get zero vectors (no signal).

    Args:
        texts: one text per catalogue item.
        encoder: hub id or local folder of the encoder.
        pretrained: its weights (see :func:`recipezoo.core.backbones.hf.load_encoder`).
        batch_size: texts per encoder pass.
        max_length: tokens per text.

    Raises:
        ConfigError: no encoder is set.
    """
    if not encoder:
        raise ConfigError(
            "data.item_text_column is set but no text encoder is: set backbone.name=<hub id or local folder of a "
            "sentence encoder> (e.g. sentence-transformers/all-MiniLM-L6-v2)."
        )
    weights = parse_pretrained(pretrained)
    if weights.off:
        log.warning("The text encoder has random weights (backbone.pretrained=false): text features carry no meaning.")
    from recipezoo.core.backbones.hf import embed_texts  # only here: transformers is imported when text is used

    source = encoder if weights.kind == "default" else str(weights)
    log.info("Embedding %d item texts with %s (%s) ...", len(texts), encoder, source)
    vectors = embed_texts(
        texts,
        str(encoder),
        pretrained,
        batch_size=batch_size,
        max_length=max_length,
        device="cuda" if torch.cuda.is_available() else "cpu",
    ).numpy()
    vectors[np.asarray([t == "" for t in texts], dtype=bool)] = 0.0
    return vectors.astype(np.float32)


__all__ = ["FeatureColumns", "embed_item_texts", "encode_table", "multi_hot"]
