"""Tagged-token files: CoNLL-style columns and JSON lines of tokens and tags, and the tag scheme they use.

Each reader returns a :class:`~recipezoo.nlp.sources.Split` whose texts are word lists and whose targets are tag
lists (one tag per word). Decoding goes through :func:`recipezoo.data.tables.read_text_file`, so an undecodable byte
is reported with its line and the ``data.encoding`` fix.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from recipezoo.core.errors import DataError
from recipezoo.data.labels import ENTITY_TAG
from recipezoo.data.tables import read_text_file
from recipezoo.nlp.sources import Split

__all__ = ["read_conll", "read_token_jsonl", "tag_scheme"]


def tag_scheme(tags: Sequence[str]) -> str:
    """``BIOES`` / ``BIO`` for entity tags (``B-PER``, ``I-LOC``, ``O``...), ``tags`` for plain tags (POS)."""
    prefixes = set()
    for t in set(tags):
        if t == "O":
            continue
        m = ENTITY_TAG.match(t)
        if not m:
            return "tags"
        prefixes.add(m.group(1))
    return "BIOES" if prefixes & {"E", "S", "L", "U"} else "BIO"


def read_conll(path: Path, tag_column: int = -1, token_column: int = 0, encoding: str = "utf-8") -> Split:
    """CoNLL-style file: whitespace-separated columns, one token per line, a blank line between sentences;
    ``-DOCSTART-`` lines are skipped.

    Raises:
        DataError: a line without a tag, a missing ``tag_column``, or no sentence at all.
    """
    sentences: list[list[str]] = []
    tags: list[list[str]] = []
    words: list[str] = []
    ws_tags: list[str] = []
    for n, line in enumerate(read_text_file(path, encoding).splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0] == "-DOCSTART-":
            if words:
                sentences.append(words)
                tags.append(ws_tags)
            words, ws_tags = [], []
            continue
        if len(parts) < 2:
            raise DataError(
                f"{path}, line {n}: expected a token and a tag separated by whitespace, got {line.strip()[:60]!r}. "
                "Token-classification files have one token per line with its tag in the last column."
            )
        try:
            words.append(parts[token_column])
            ws_tags.append(parts[tag_column])
        except IndexError:
            raise DataError(
                f"{path}, line {n}: no column {tag_column} (data.tag_column); the line has {len(parts)}."
            ) from None
    if words:
        sentences.append(words)
        tags.append(ws_tags)
    if not sentences:
        raise DataError(f"{path} holds no sentences.")
    return Split(sentences, tags, path.name, Counter())


def read_token_jsonl(path: Path, tokens_field: str, tags_field: str, encoding: str = "utf-8") -> Split:
    """JSON lines with a list of tokens and a list of tags per line (``{"tokens": [...], "tags": [...]}``); the tags
    may also be in ``ner_tags`` (the Hugging Face datasets' name). Lines without tokens are skipped and counted.

    Raises:
        DataError: a line that is not JSON, lacks a field, or has more tokens than tags (or fewer).
    """
    sentences, tags = [], []
    dropped: Counter = Counter()
    for n, line in enumerate(read_text_file(path, encoding).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {n}: not valid JSON ({e.msg}).") from None
        fields = tags_field if tags_field in row else ("ner_tags" if "ner_tags" in row else tags_field)
        if tokens_field not in row or fields not in row:
            raise DataError(
                f"{path}, line {n}: expected fields '{tokens_field}' and '{tags_field}', found {', '.join(row)}. "
                "Set data.tokens_field / data.tags_field."
            )
        words, ws_tags = [str(w) for w in row[tokens_field]], [str(t) for t in row[fields]]
        if len(words) != len(ws_tags):
            raise DataError(f"{path}, line {n}: {len(words)} tokens but {len(ws_tags)} tags.")
        if not words:
            dropped["no tokens"] += 1
            continue
        sentences.append(words)
        tags.append(ws_tags)
    return Split(sentences, tags, path.name, dropped)
