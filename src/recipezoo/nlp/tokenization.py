"""Tokenizers and tokenized splits.

The tokenizer is the backbone's own (a Hugging Face fast tokenizer), one named by the user, or for recipezoo's
from-scratch networks a WordPiece tokenizer trained on the training split. Splits are tokenized with
:mod:`recipezoo.runtime.text`, the code exported bundles run, so predictions on raw text reproduce training exactly,
and kept as packed int arrays (:class:`Packed`): compact, cacheable, loadable with ``weights_only``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recipezoo.runtime import text as rt

log = logging.getLogger(__name__)

__all__ = ["TOKENIZER_FILE", "Encoded", "Packed", "TokenizerInfo", "encode", "resolve_tokenizer", "train_wordpiece"]

TOKENIZER_FILE = "tokenizer.json"


def train_wordpiece(texts: Sequence[str], vocab_size: int, lowercase: bool = True) -> Any:
    """A BERT-style WordPiece tokenizer trained on ``texts`` (``[CLS] text [SEP]``, ``[PAD]`` = 0).

    Written with the ``tokenizers`` library, so it saves to the same ``tokenizer.json`` format as pretrained ones.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=None, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=int(vocab_size), min_frequency=2, special_tokens=specials)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return tok


@dataclass
class TokenizerInfo:
    """The tokenizer a model was trained with, as the data module and the checkpoint keep it."""

    json: str  # the tokenizers-library serialisation (tokenizer.json)
    pad_id: int
    vocab_size: int
    model_inputs: list[str]  # input_ids, attention_mask (+ token_type_ids when the model takes them)
    source: str  # where it came from, for the log and the metadata
    encoder_config: dict[str, Any] | None = None  # the Hugging Face encoder's config (rebuilds it offline)

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> TokenizerInfo | None:
        """The tokenizer a checkpoint's ``data_info`` holds (its ``files`` and ``preprocessing``), or None."""
        files = info.get("files") or {}
        if TOKENIZER_FILE not in files:
            return None
        pp = info.get("preprocessing") or {}
        content = files[TOKENIZER_FILE]
        return cls(
            content.decode() if isinstance(content, bytes) else content,
            int(pp.get("pad_id", 0)),
            int(info.get("vocab_size") or 0),
            list(pp.get("model_inputs") or ["input_ids", "attention_mask"]),
            str(pp.get("tokenizer_source", "the checkpoint")),
            info.get("encoder_config"),
        )


def resolve_tokenizer(
    tokenizer: Any, backbone: str, pretrained: Any, train_texts: Sequence[str], vocab_size: int, lowercase: bool
) -> TokenizerInfo:
    """The tokenizer to use: ``tokenizer`` if given, else the backbone's own, else (scratch networks) a WordPiece
    tokenizer trained on the training texts."""
    from recipezoo.core.backbones.hf import encoder_source, load_config, load_tokenizer
    from recipezoo.nlp.models import is_scratch

    scratch = is_scratch(backbone)
    encoder_config = None
    if not scratch:
        encoder_config = load_config(backbone, pretrained).to_dict()
    if tokenizer in (None, "", "backbone") and scratch or tokenizer == "train":
        tok = train_wordpiece(train_texts, vocab_size, lowercase)
        log.info("Trained a WordPiece tokenizer on the training texts: %d tokens.", tok.get_vocab_size())
        return TokenizerInfo(
            tok.to_str(), tok.token_to_id("[PAD]"), tok.get_vocab_size(), ["input_ids", "attention_mask"],
            "trained on the training split", encoder_config,
        )  # fmt: skip
    source = str(tokenizer) if tokenizer not in (None, "", "backbone") else encoder_source(backbone, pretrained)
    hf = load_tokenizer(source)
    backend = hf.backend_tokenizer
    pad_id = hf.pad_token_id if hf.pad_token_id is not None else 0
    inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if "token_type_ids" in hf.model_input_names else [])
    return TokenizerInfo(backend.to_str(), int(pad_id), len(hf), inputs, source, encoder_config)


@dataclass
class Packed:
    """Variable-length int sequences in one flat array plus offsets (compact, and loads with weights_only)."""

    flat: np.ndarray
    offsets: np.ndarray  # (n + 1,)

    @classmethod
    def pack(cls, seqs: Sequence[Sequence[int]], dtype: Any = np.int32) -> Packed:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((x for s in seqs for x in s), dtype=dtype, count=int(offsets[-1]))
        return cls(flat, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i] : self.offsets[i + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {"flat": torch.from_numpy(self.flat), "offsets": torch.from_numpy(self.offsets)}

    @classmethod
    def from_tensors(cls, d: dict[str, torch.Tensor]) -> Packed:
        return cls(d["flat"].numpy(), d["offsets"].numpy())


@dataclass
class Encoded:
    """One split, tokenized: ids (and type ids), how many were truncated, and for words their first sub-tokens."""

    ids: Packed
    type_ids: Packed | None
    truncated: int
    first_index: Packed | None = None  # token classification: per sentence, each word's first sub-token or -1

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ids": self.ids.to_tensors(), "truncated": int(self.truncated)}
        if self.type_ids is not None:
            d["type_ids"] = self.type_ids.to_tensors()
        if self.first_index is not None:
            d["first_index"] = self.first_index.to_tensors()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Encoded:
        return cls(
            Packed.from_tensors(d["ids"]),
            Packed.from_tensors(d["type_ids"]) if "type_ids" in d else None,
            int(d["truncated"]),
            Packed.from_tensors(d["first_index"]) if "first_index" in d else None,
        )


def encode(tokenizer_json: str, max_length: int, texts: Any, kind: str, with_types: bool) -> Encoded:
    """Tokenize a split with :mod:`recipezoo.runtime.text` (the code bundles run).

    Args:
        tokenizer_json: the tokenizer.
        max_length: truncation length in tokens.
        texts: ``list[str]`` (``kind="texts"``), ``(list[str], list[str])`` (``"pairs"``) or ``list[list[str]]``
            (``"words"``).
        kind: see ``texts``.
        with_types: keep the token type ids.
    """
    tok = rt.load_tokenizer(tokenizer_json, max_length)
    if kind == "words":
        encodings = rt.encode_words(tok, texts)
    elif kind == "pairs":
        encodings = rt.encode_texts(tok, texts[0], texts[1])
    else:
        encodings = rt.encode_texts(tok, texts)
    first = None
    if kind == "words":
        first = Packed.pack([rt.first_subtokens(e.word_ids, len(w)) for e, w in zip(encodings, texts)], dtype=np.int64)
    return Encoded(
        Packed.pack([e.ids for e in encodings]),
        Packed.pack([e.type_ids for e in encodings], dtype=np.int8) if with_types else None,
        sum(1 for e in encodings if e.overflowing),
        first,
    )
