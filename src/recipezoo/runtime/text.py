"""Predict with an exported text bundle using onnxruntime, numpy and the ``tokenizers`` library alone (no torch).

This file is copied into every ONNX text bundle as ``loader.py``, so a bundle works on a machine without recipezoo
or transformers::

    from loader import load_bundle                    # or: from recipezoo.runtime.text import load_bundle
    model = load_bundle("path/to/bundle")
    model.predict(["a gripping, funny film", "dull"])  # text classification: [("positive", 0.98), ...]
    model.predict([["John", "lives", "in", "Paris"]])  # token classification: [["B-PER", "O", "O", "B-LOC"]]

or from the shell: ``python loader.py path/to/bundle "some text" ["more text" ...]``.

recipezoo tokenizes its training data with the same functions (:func:`encode_texts`, :func:`encode_words`,
:func:`pad`), so a bundle reproduces training-time tokenization exactly: the bundle's ``tokenizer.json``, truncated
at ``max_length``, padded per batch to its longest sequence.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

IGNORE = -100  # label of the sub-tokens that carry no word label (the first sub-token of a word carries it)


TASKS = ("text_classification", "token_classification")  # the tasks this loader serves (metadata.json's "task")


class BundleError(ValueError):
    """A path this loader cannot serve: missing, not an export folder, another task's bundle, a damaged bundle."""


def read_metadata(
    bundle: str | Path, tasks: Sequence[str] = TASKS, required: Sequence[str] = (), files: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``metadata.json`` of an ONNX bundle folder, checked before anything is opened.

    Args:
        bundle: the folder ``scripts/export.py`` wrote.
        tasks: the tasks this loader serves (a bundle whose metadata names no task is accepted).
        required: metadata keys the caller reads.
        files: files the caller reads besides the model file.

    Raises:
        BundleError: one line saying what ``bundle`` is instead (missing, a file, a folder without metadata.json,
            another task's or format's bundle, a bundle missing a file) and what to pass.
    """
    p = Path(bundle).expanduser()
    export = "pass the folder scripts/export.py wrote (it holds metadata.json and model.onnx)"
    if not p.exists():
        raise BundleError(f"{p} not found; {export}.")
    if p.is_file():
        if (p.parent / "metadata.json").is_file():
            raise BundleError(f"{p} is a file; pass the bundle folder that holds it: {p.parent}")
        if p.suffix == ".ckpt":
            raise BundleError(
                f"{p} is a checkpoint, not an export bundle; export it first (scripts/export.py ckpt={p} "
                "format=onnx) or predict from it with scripts/predict.py."
            )
        raise BundleError(f"{p} is a file, not a bundle folder; {export}.")
    meta_file = p / "metadata.json"
    if not meta_file.is_file():
        inner = sorted(p.glob("*/metadata.json")) + sorted(p.glob("export/*/metadata.json"))
        hint = f"; the bundle inside it is {inner[0].parent}" if inner else f"; {export}"
        raise BundleError(f"{p} holds no metadata.json, so it is not an export bundle{hint}.")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BundleError(
            f"{meta_file} is damaged ({type(e).__name__}); copy the bundle again or re-export it."
        ) from None
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_file} holds no bundle metadata; {export}.")
    task, fmt = meta.get("task"), meta.get("format", "onnx")
    if task is not None and task not in tasks:
        own = p / "loader.py"
        where = f": python {own} ..." if own.is_file() else " (scripts/predict.py reads every task's bundle)"
        raise BundleError(
            f"{p} holds a model for '{task}', not {' or '.join(tasks)}; use that bundle's own loader{where}"
        )
    if fmt != "onnx":
        raise BundleError(
            f"{p} is a {fmt} bundle; this loader runs ONNX bundles (export with format=onnx, or predict from this "
            "one with scripts/predict.py)."
        )
    missing = [k for k in ("model_file", *required) if k not in meta]
    if missing:
        raise BundleError(
            f"{meta_file} lacks {', '.join(missing)}: a bundle of another recipezoo version? Re-export it."
        )
    absent = [f for f in (meta["model_file"], *files) if not (p / f).is_file()]
    if absent:
        raise BundleError(f"{p} lacks {', '.join(absent)}: copy the whole folder that scripts/export.py wrote.")
    return meta


def open_session(path: str | Path, providers: Sequence[str]) -> Any:
    """An onnxruntime session on ``path`` (warnings off); a file onnxruntime cannot read raises :class:`BundleError`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=list(providers))
    except Exception as e:  # onnxruntime's own error types (InvalidProtobuf, Fail...) live in a private module
        text = (str(e).strip().splitlines() or [""])[0]
        reason = text if 0 < len(text) <= 160 else type(e).__name__
        raise BundleError(
            f"cannot open {path} with onnxruntime ({reason}); copy the bundle again or re-export it."
        ) from None


def load_tokenizer(source: str | Path, max_length: int) -> Any:
    """A ``tokenizers.Tokenizer`` from a ``tokenizer.json`` file (or its JSON text), truncating at ``max_length``.

    Padding is off: batches are padded by :func:`pad` to their own longest sequence.
    """
    from tokenizers import Tokenizer

    text = str(source)
    tok = Tokenizer.from_str(text) if text.lstrip().startswith("{") else Tokenizer.from_file(text)
    tok.no_padding()
    tok.enable_truncation(int(max_length))
    return tok


def encode_texts(tokenizer: Any, texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[Any]:
    """Tokenize texts (and optional second texts of a pair); ``Encoding.overflowing`` is non-empty when truncated."""
    if pairs is not None:
        return tokenizer.encode_batch(list(zip(texts, pairs)))
    return tokenizer.encode_batch(list(texts))


def encode_words(tokenizer: Any, words: Sequence[Sequence[str]]) -> list[Any]:
    """Tokenize pre-split words (token classification); ``Encoding.word_ids`` maps sub-tokens back to words."""
    return tokenizer.encode_batch([list(w) for w in words], is_pretokenized=True)


def first_subtokens(word_ids: Sequence[int | None], n_words: int) -> np.ndarray:
    """Position of each word's first sub-token, or -1 for words cut off by truncation: ``(n_words,)`` int64."""
    index = np.full(n_words, -1, dtype=np.int64)
    for pos, w in enumerate(word_ids):
        if w is not None and index[w] < 0:
            index[w] = pos
    return index


def pad(
    sequences: Sequence[Sequence[int]], pad_id: int, type_ids: Sequence[Sequence[int]] | None = None
) -> dict[str, np.ndarray]:
    """Pad to the longest sequence: ``input_ids``, ``attention_mask`` (and ``token_type_ids``), ``(B, T)`` int64."""
    length = max((len(s) for s in sequences), default=0)
    ids = np.full((len(sequences), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), length), dtype=np.int64)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    out = {"input_ids": ids, "attention_mask": mask}
    if type_ids is not None:
        types = np.zeros((len(sequences), length), dtype=np.int64)
        for i, t in enumerate(type_ids):
            types[i, : len(t)] = t
        out["token_type_ids"] = types
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


class _Bundle:
    """What both text tasks share: metadata, tokenizer, onnxruntime session, batched inference."""

    task = ""

    def __init__(self, bundle: str | Path, providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        self.bundle = Path(bundle).expanduser()
        self.metadata: dict[str, Any] = read_metadata(
            self.bundle, (self.task,) if self.task else TASKS, required=("labels", "preprocessing")
        )
        pp = self.metadata["preprocessing"]
        self.labels: list[str] = self.metadata["labels"]
        self.max_length = int(pp["max_length"])
        self.pad_id = int(pp["pad_id"])
        self.model_inputs: list[str] = list(pp["model_inputs"])
        tokenizer_file = self.bundle / pp["tokenizer_file"]
        if not tokenizer_file.is_file():
            raise BundleError(f"{self.bundle} lacks {pp['tokenizer_file']}: copy the whole folder export.py wrote.")
        self.tokenizer = load_tokenizer(tokenizer_file, self.max_length)
        self.session = open_session(self.bundle / self.metadata["model_file"], providers)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, encodings: Sequence[Any]) -> np.ndarray:
        batch = pad(
            [e.ids for e in encodings],
            self.pad_id,
            [e.type_ids for e in encodings] if "token_type_ids" in self.model_inputs else None,
        )
        return self.session.run(None, {name: batch[name] for name in self.input_names})[0]


class OnnxTextClassifier(_Bundle):
    """An exported text classifier (multi-class or multi-label)."""

    task = "text_classification"

    def predict_proba(
        self, texts: Sequence[str], pairs: Sequence[str] | None = None, batch_size: int = 64
    ) -> np.ndarray:
        """Probabilities ``(N, num_labels)``: softmax (multi-class) or per-label sigmoid (multi-label)."""
        out = []
        for i in range(0, len(texts), batch_size):
            chunk = encode_texts(
                self.tokenizer, texts[i : i + batch_size], pairs[i : i + batch_size] if pairs is not None else None
            )
            logits = self.run(chunk)
            out.append(sigmoid(logits) if self.metadata.get("multi_label") else softmax(logits))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def predict(self, texts: Sequence[str], pairs: Sequence[str] | None = None, batch_size: int = 64) -> list[Any]:
        """Multi-class: ``(label, probability)`` per text; multi-label: the labels at or above the threshold."""
        proba = self.predict_proba(texts, pairs, batch_size)
        if self.metadata.get("multi_label"):
            thresholds = np.broadcast_to(np.asarray(self.metadata["threshold"], dtype=np.float32), proba.shape[1:])
            return [[self.labels[j] for j in np.flatnonzero(p >= thresholds)] for p in proba]
        return [(self.labels[int(k)], float(p[k])) for p, k in zip(proba, proba.argmax(-1))]


class OnnxTokenClassifier(_Bundle):
    """An exported token classifier (NER / POS): one tag per input word."""

    task = "token_classification"

    def predict_proba(self, sentences: Sequence[Sequence[str] | str], batch_size: int = 32) -> list[np.ndarray]:
        """Per sentence, ``(n_words, num_labels)`` tag probabilities; words cut off by truncation get ``O``
        (probability 1) when the label set has one, else uniform probabilities."""
        words = [s.split() if isinstance(s, str) else list(s) for s in sentences]
        out: list[np.ndarray] = []
        outside = self.labels.index("O") if "O" in self.labels else None
        for i in range(0, len(words), batch_size):
            chunk = words[i : i + batch_size]
            encodings = encode_words(self.tokenizer, chunk)
            proba = softmax(self.run(encodings))  # (B, T, C)
            for b, (enc, ws) in enumerate(zip(encodings, chunk)):
                index = first_subtokens(enc.word_ids, len(ws))
                p = np.full((len(ws), len(self.labels)), 1.0 / len(self.labels), dtype=np.float32)
                if outside is not None:
                    p[:] = 0.0
                    p[:, outside] = 1.0
                kept = index >= 0
                p[kept] = proba[b, index[kept]]
                out.append(p)
        return out

    def predict(self, sentences: Sequence[Sequence[str] | str], batch_size: int = 32) -> list[list[str]]:
        """One tag per word; a string is split on whitespace."""
        return [[self.labels[int(k)] for k in p.argmax(-1)] for p in self.predict_proba(sentences, batch_size)]


def load_bundle(bundle: str | Path, **kwargs: Any) -> OnnxTextClassifier | OnnxTokenClassifier:
    """The right predictor for the bundle's task (:class:`BundleError` for anything else)."""
    task = read_metadata(bundle).get("task")
    if task == "token_classification":
        return OnnxTokenClassifier(bundle, **kwargs)
    return OnnxTextClassifier(bundle, **kwargs)


def main(argv: Sequence[str]) -> int:
    """``python loader.py <bundle folder> "text" ["more text" ...]``: one ``text, result`` line per text; a bad bundle
    ends in one ``error:`` line and status 2."""
    usage = 'usage: python loader.py <bundle folder> "text" ["more text" ...]'
    if argv[:1] in (["-h"], ["--help"]):
        print(usage)
        return 0
    if len(argv) < 2:
        print(usage, file=sys.stderr)
        return 2
    try:
        results = load_bundle(argv[0]).predict(list(argv[1:]))
    except (BundleError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for text, result in zip(argv[1:], results):
        print(f"{text}\t{result}")
    return 0


if __name__ == "__main__":
    if code := main(sys.argv[1:]):
        sys.exit(code)
