"""NLP prediction on raw text with a checkpoint, an ONNX bundle or a TorchScript bundle, into a CSV.

Inputs: a text file (one example per line; for token classification, one sentence per line, split on whitespace),
a table (CSV/TSV/JSON lines/Parquet: the text column the model was trained on, or ``column=...``; a sentence-pair
model needs a table holding both texts), or for token classification a CoNLL-style file or JSON lines
``{"tokens": [...]}``. Files that are not UTF-8 are read as Latin-1 unless ``encoding`` says otherwise. Every
backend tokenizes with :mod:`recipezoo.runtime.text` and the tokenizer the model was trained with (from the
checkpoint or the bundle), so the three give the same predictions.

Output rows: text classification ``row, text, prediction, confidence, prob_<label>...`` (multi-label:
``prediction`` lists the labels at or above their thresholds, joined by ``;``); token classification
``row, tokens, tags, entities`` (``TYPE: words | ...``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recipezoo.core.bundle import Loaded, load
from recipezoo.core.errors import ConfigError, DataError, new_output_file, write_rows
from recipezoo.data import columns as C
from recipezoo.data.columns import spec_text
from recipezoo.runtime import text as rt

log = logging.getLogger("recipezoo")

TASKS = ("text_classification", "token_classification")
_TABLES = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".json", ".parquet", ".pq")


class TextPredictor:
    """Logits for padded token batches from a checkpoint (eager), a TorchScript or an ONNX bundle.

    Attributes:
        meta: task, labels, preprocessing, and for multi-label the thresholds (a bundle's ``metadata.json``, or
            the same facts from a checkpoint).
        tokenizer: the ``tokenizers.Tokenizer`` the model was trained with.
    """

    def __init__(self, ckpt: str | Path | Loaded) -> None:
        loaded = load(ckpt, TASKS)
        self.run: Callable[[dict[str, np.ndarray]], np.ndarray]
        if loaded.is_checkpoint:
            spec = loaded.module.export_spec(1)
            self.meta = {"format": "ckpt", **spec.metadata}
            tokenizer_json = loaded.module.files.get(rt_file(self.meta))
            net = spec.model
        else:
            self.meta = loaded.metadata
            tokenizer_json = (loaded.bundle / rt_file(self.meta)).read_text()
            net = loaded.model  # an onnxruntime session, a TorchScript module or a torch.export program
        if loaded.format == "onnx":
            names = [i.name for i in net.get_inputs()]

            def run(batch: dict[str, np.ndarray]) -> np.ndarray:
                return net.run(None, {n: batch[n] for n in names})[0]

        else:
            import torch

            def run(batch: dict[str, np.ndarray]) -> np.ndarray:
                with torch.no_grad():
                    return net(*(torch.from_numpy(batch[n]) for n in self.inputs)).float().numpy()

        if not tokenizer_json:
            raise ConfigError(f"{loaded.path} carries no tokenizer; re-export it with this version of recipezoo.")
        pp = self.meta["preprocessing"]
        self.inputs = list(pp["model_inputs"])
        self.pad_id = int(pp["pad_id"])
        self.labels: list[str] = list(self.meta["labels"])
        self.tokenizer = rt.load_tokenizer(tokenizer_json, int(pp["max_length"]))
        self.run = run

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    def logits(self, encodings: Sequence[Any]) -> np.ndarray:
        batch = rt.pad(
            [e.ids for e in encodings],
            self.pad_id,
            [e.type_ids for e in encodings] if "token_type_ids" in self.inputs else None,
        )
        return self.run(batch)

    def classify(self, texts: Sequence[str], pairs: Sequence[str] | None, batch_size: int) -> np.ndarray:
        """Probabilities ``(N, num_labels)``."""
        out = []
        for i in range(0, len(texts), batch_size):
            enc = rt.encode_texts(
                self.tokenizer, texts[i : i + batch_size], pairs[i : i + batch_size] if pairs is not None else None
            )
            logits = self.logits(enc)
            out.append(rt.sigmoid(logits) if self.meta.get("multi_label") else rt.softmax(logits))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def tag(self, sentences: Sequence[Sequence[str]], batch_size: int) -> list[list[str]]:
        """One tag per word (words cut off by truncation: ``O``)."""
        outside = self.labels.index("O") if "O" in self.labels else 0
        tags = []
        for i in range(0, len(sentences), batch_size):
            chunk = sentences[i : i + batch_size]
            enc = rt.encode_words(self.tokenizer, chunk)
            pred = self.logits(enc).argmax(-1)  # (B, T)
            for b, (e, words) in enumerate(zip(enc, chunk)):
                index = rt.first_subtokens(e.word_ids, len(words))
                ks = np.where(index >= 0, pred[b, index.clip(min=0)], outside)
                tags.append([self.labels[int(k)] for k in ks])
        return tags


def rt_file(meta: dict[str, Any]) -> str:
    return str(meta["preprocessing"].get("tokenizer_file", "tokenizer.json"))


def read_text(p: Path, encoding: str = "auto") -> str:
    """A whole text file; ``encoding="auto"``: UTF-8, else Latin-1 (logged), as the table reader does."""
    from recipezoo.nlp.data import read_text_file

    if encoding != "auto":
        return read_text_file(p, encoding)
    try:
        return read_text_file(p, "utf-8")
    except DataError:  # not UTF-8: Latin-1 decodes any byte (the table reader's fallback too)
        log.info("%s is not UTF-8: read as Latin-1.", p.name)
        return read_text_file(p, "latin-1")


def read_token_lists(p: Path, field: str = "tokens", encoding: str = "auto") -> list[list[str]]:
    """The word lists of a JSON-lines file (``{"tokens": [...]}`` per line; a ``.json`` array of such objects too).

    Raises:
        DataError: a line that is not JSON, or an object without ``field`` or whose ``field`` is not a list.
    """
    text = read_text(p, encoding)
    rows: list[tuple[int, Any]] = []
    if p.suffix.lower() == ".json" and text.lstrip().startswith("["):
        try:
            rows = list(enumerate(json.loads(text), start=1))
        except json.JSONDecodeError as e:
            raise DataError(f"{p}: not valid JSON ({e.msg}, line {e.lineno}).") from None
        where = "item"
    else:
        where = "line"
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                raise DataError(f"{p}, line {n}: not valid JSON ({e.msg}).") from None
    words = []
    for n, row in rows:
        tokens = row.get(field) if isinstance(row, dict) else None
        if not isinstance(tokens, list):
            found = ", ".join(map(str, row)) if isinstance(row, dict) else type(row).__name__
            raise DataError(
                f"{p}, {where} {n}: expected a list of words in the field '{field}', found {found or 'nothing'}. "
                "Name the field that holds the words with column=<field>."
            )
        words.append([str(w) for w in tokens])
    return words


def read_inputs(
    input: str | Path, predictor: TextPredictor, column: str | None, encoding: str = "auto"
) -> tuple[list[str], list[Any], list[str] | None]:
    """``(row ids, texts or word lists, second texts or None)`` from a text file, a table or a CoNLL-style file.

    ``encoding`` is the file's text encoding (``auto``: UTF-8, else Latin-1).
    """
    from recipezoo.nlp.data import read_text_table

    p = Path(os.path.expanduser(str(input)))
    if not p.is_file():
        raise DataError(f"input not found: {p}. Pass input=<text file (one example per line), or a table>.")
    suffix = p.suffix.lower()
    if predictor.task == "token_classification":
        if suffix in (".jsonl", ".ndjson", ".json"):
            words = [ws for ws in read_token_lists(p, column or "tokens", encoding) if ws]
        elif suffix == ".txt":
            words = [line.split() for line in read_text(p, encoding).splitlines() if line.strip()]
        else:  # CoNLL-style: the token in the first column, a blank line between sentences, tags ignored
            words, current = [], []
            for line in [*read_text(p, encoding).splitlines(), ""]:
                parts = line.split()
                if parts and parts[0] != "-DOCSTART-":
                    current.append(parts[0])
                elif current:
                    words.append(current)
                    current = []
        if not words:
            raise DataError(f"{p} holds no sentences.")
        return [str(i) for i in range(len(words))], words, None
    pp = predictor.meta["preprocessing"]
    pair_name = pp.get("text_pair_column")
    if suffix == ".txt" or suffix not in _TABLES:
        if pair_name is not None:
            # One text per line cannot carry the second text: scoring the first alone would be silently wrong.
            raise DataError(
                f"{p} is a text file, but this model scores pairs of texts (trained with data.text_pair_column="
                f"{spec_text(pair_name)}); pass a CSV/TSV/JSON-lines table with both text columns "
                f"('{spec_text(pp.get('text_column') or 'text')}' and '{spec_text(pair_name)}')."
            )
        texts = [line for line in read_text(p, encoding).splitlines() if line.strip()]
        if not texts:
            raise DataError(f"{p} has no non-empty lines.")
        return [str(i) for i in range(len(texts))], texts, None
    frame = read_text_table(p, encoding=encoding)
    texts = C.column_values(
        frame, column or pp.get("text_column") or "text", "text", p, fix=" Name the text column with column=<name>."
    )
    pairs = None
    if pair_name is not None:
        # No option renames the second text at prediction: the table must use the trained name (no close matches
        # are offered, as the closest is often the first text's column).
        found = C.find_column(list(frame.columns), pair_name)
        if found is None:
            raise DataError(
                f"{p.name} has no '{spec_text(pair_name)}' column, the second text this model was trained with "
                f"(data.text_pair_column); its columns are: {C.shown_columns(frame.columns, 20)}. Name the column of "
                f"second texts {spec_text(pair_name)}."
            )
        pairs = ["" if v is None else str(v) for v in frame[found].tolist()]
    return [str(i) for i in range(len(texts))], texts, pairs


def predict_texts(
    ckpt: str | Path | Loaded,
    input: str | Path,
    output: str | Path = "predictions.csv",
    batch_size: int = 64,
    overwrite: bool = False,
    column: str | None = None,
    encoding: str = "auto",
) -> list[dict[str, Any]]:
    """Predict every example of ``input`` and write one CSV row each to ``output`` (see the module docstring).

    ``column`` names the text column of a table (or the words' field of token JSON lines); ``encoding`` is the
    input's text encoding (``auto``: UTF-8, else Latin-1).
    """
    from recipezoo.nlp.metrics import get_entities

    out = new_output_file(output, overwrite)
    predictor = TextPredictor(ckpt)
    ids, texts, pairs = read_inputs(input, predictor, column, encoding)
    rows: list[dict[str, Any]] = []
    if predictor.task == "token_classification":
        for i, words, tags in zip(ids, texts, predictor.tag(texts, batch_size)):
            spans = get_entities(tags) if predictor.meta.get("scheme") != "tags" else []
            rows.append(
                {
                    "row": i,
                    "tokens": " ".join(words),
                    "tags": " ".join(tags),
                    "entities": " | ".join(f"{k}: {' '.join(words[a : b + 1])}" for k, a, b in spans),
                }
            )
    else:
        proba = predictor.classify(texts, pairs, batch_size)
        thresholds = np.asarray(predictor.meta.get("threshold", 0.5), dtype=np.float32)
        for i, text, p in zip(ids, texts, proba):
            if predictor.meta.get("multi_label"):
                picked = [predictor.labels[j] for j in np.flatnonzero(p >= np.broadcast_to(thresholds, p.shape))]
                head = {"prediction": ";".join(picked), "confidence": float(p.max()) if len(p) else 0.0}
            else:
                k = int(p.argmax())
                head = {"prediction": predictor.labels[k], "confidence": float(p[k])}
            rows.append(
                {"row": i, "text": text, **head, **{f"prob_{n}": float(v) for n, v in zip(predictor.labels, p)}}
            )
    write_rows(out, rows)
    log.info("Wrote %d predictions to %s", len(rows), out)
    return rows
