"""NLP data: text tables and tagged-token files, tokenized once (cached), batched with dynamic padding.

- :class:`TextClassificationDataModule`: a CSV/TSV/JSON-lines/Parquet table (or a folder of ``train``/``dev``/``test``
  tables) with a text column (and an optional second text for sentence pairs) and a label column; multi-class or
  multi-label (labels in one cell, separated by ``label_delimiter``).
- :class:`TokenClassificationDataModule`: CoNLL-style files (one token per line, the tag in the last column, a blank
  line between sentences) or JSON lines with ``tokens`` and ``tags``; BIO/IOB1/BIOES entity tags or plain tags (POS).

Both tokenize with the backbone's own tokenizer, or for recipezoo's from-scratch networks with a WordPiece tokenizer
trained on the training split. Tokenization goes through :mod:`recipezoo.runtime.text`, the code exported bundles
run, so predictions on raw text reproduce training exactly. Tokenized splits are cached in ``cache_dir`` under a key
made of the tokenizer, ``max_length`` and the texts themselves: a second run on the same data does not re-tokenize.

Batches are dicts: ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the model takes them), ``(B, T)``
int64, padded to the batch's longest sequence; ``labels``: ``(B,)`` int64 (multi-class), ``(B, L)`` float32
(multi-label) or ``(B, T)`` int64 with -100 on sub-tokens that carry no word label (token classification, which
also gets ``word_index`` and ``word_tags``, ``(B, W)``, for word-level evaluation). With ``synthetic=True`` the data
are generated, tiny and offline, with the same contract.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset, Sampler

from recipezoo.core.data import loader_settings, stratified_split
from recipezoo.core.errors import ConfigError, DataError, close_matches
from recipezoo.runtime import text as rt

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
TOKENIZER_FILE = "tokenizer.json"
_SPLIT_NAMES = {"train": ("train",), "val": ("dev", "val", "valid", "validation"), "test": ("test",)}
_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_TABLE_EXTENSIONS = (".csv", ".tsv", ".tab", ".txt", ".jsonl", ".ndjson", ".json", ".parquet", ".pq")
_SEP_NAMES = {"\t": "tab ('\\t')", ",": "comma (',')", ";": "semicolon (';')", "|": "pipe ('|')"}
_CACHE_VERSION = "1"


# --------------------------------------------------------------------------------------------------------------
# Reading files


def _expand(path: str | os.PathLike) -> Path:
    return Path(os.path.expanduser(str(path)))


def read_text_file(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """A whole text file, with a clear error (line and byte) when it is not in ``encoding``."""
    p = _expand(path)
    raw = p.read_bytes()
    try:
        return raw.decode("utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{p} is not valid {encoding}: byte 0x{raw[e.start]:02x} on line {line} cannot be decoded. Pass the "
            f"file's encoding (data.encoding=latin-1, cp1252, ...), or re-save it as UTF-8."
        ) from None
    except LookupError:
        raise ConfigError(f"unknown encoding '{encoding}' (data.encoding); e.g. utf-8, latin-1, cp1252.") from None


def _guess_separator(lines: Sequence[str]) -> str | None:
    """The separator that splits every sample line into the same number (> 1) of fields, preferring tabs."""
    for sep in ("\t", ",", ";", "|"):
        counts = {len(line.split(sep)) for line in lines if line.strip()}
        if len(counts) == 1 and counts.pop() > 1:
            return sep
    return None


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
    import pandas as pd

    p = _expand(path)
    if not p.is_file():
        raise DataError(f"data file not found: {p}.")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(p)
        except ImportError:
            raise DataError(f"reading {p.name} needs a Parquet engine: pip install pyarrow (or save as CSV).") from None
        frame.columns = [str(c) for c in frame.columns]
        return frame.astype(object).where(frame.notna(), "")
    text = read_text_file(p, encoding)
    if not text.strip():
        raise DataError(f"{p} is empty.")
    if suffix in (".jsonl", ".ndjson", ".json"):
        rows = []
        for i, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    if i == 1 and suffix == ".json":  # a JSON array of records rather than JSON lines
                        rows = json.loads(text)
                        break
                    raise DataError(f"{p}, line {i}: not valid JSON ({e.msg}).") from None
        frame = pd.DataFrame(rows)
        frame.columns = [str(c) for c in frame.columns]
        return frame
    sample = text.splitlines()[:50]
    if sep is None:
        sep = _SEPARATORS.get(suffix) or _guess_separator(sample) or ","
    # TSV files (GLUE, CoNLL-like exports) do not quote fields: a text starting with '"' is just a quote.
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=0 if header else None,
            names=list(columns) if columns and not header else None,
            dtype=str,
            keep_default_na=False,
            quoting=quoting,
            engine="python" if len(sep) > 1 else "c",
        )
    except pd.errors.ParserError as e:
        guess = _guess_separator(sample)
        hint = (
            f" The file looks {_SEP_NAMES.get(guess, repr(guess))}-separated: pass "
            f"data.sep='{guess.replace(chr(9), chr(92) + 't')}'."
            if guess and guess != sep
            else " Check data.sep and that every row has the same number of fields."
        )
        raise DataError(
            f"cannot read {p} with separator {sep!r}: {str(e).strip().splitlines()[-1][:160]}.{hint}"
        ) from None
    frame.columns = [str(c) for c in frame.columns]
    frame.attrs["sep"] = sep
    return frame


def _wrong_separator_hint(frame: Any, path: Path) -> str:
    """When the table came out as one column, name the separator the file seems to use."""
    if frame.shape[1] != 1:
        return ""
    first = [str(frame.columns[0]), *map(str, frame.iloc[:20, 0].tolist())]
    guess = _guess_separator(first)
    if guess and guess != frame.attrs.get("sep"):
        shown = guess.replace("\t", "\\t")
        return f" {path.name} looks {_SEP_NAMES.get(guess, repr(guess))}-separated: pass data.sep='{shown}'."
    return ""


def column(frame: Any, name: Any, path: Path, what: str) -> list[str]:
    """A column as strings, with a clear error listing the columns found when it is missing.

    ``name`` is a column name, a position (``0``, ``1``... when no column has that name), or a list of
    alternatives, the first present winning (files whose splits name the column differently: ``[sentence,
    content]``).
    """
    options = [str(n) for n in name] if isinstance(name, (list, tuple)) or OmegaConf.is_list(name) else [str(name)]
    for key in options:
        if key in frame.columns:
            return ["" if v is None else str(v) for v in frame[key].tolist()]
    for key in options:
        if re.fullmatch(r"-?\d+", key) and -frame.shape[1] <= int(key) < frame.shape[1]:
            return ["" if v is None else str(v) for v in frame.iloc[:, int(key)].tolist()]
    key = options[0]
    separator = _wrong_separator_hint(frame, path)
    if separator:  # one column holding the whole line: the separator is wrong, not the column name
        raise DataError(f"cannot find the {what} column '{'/'.join(options)}':{separator}")
    found = ", ".join(map(str, frame.columns[:20]))
    raise DataError(
        f"{path.name} has no {what} column '{'/'.join(options)}'; columns found: {found}."
        f"{close_matches(key, frame.columns)} Set data.{what}_column=<name> (a position 0, 1, ... also works, and "
        "a list [a, b] takes whichever each file has; for a file without a header row: data.header=false, with "
        "data.columns=[...] to name its columns)."
    )


def find_split_files(folder: Path) -> dict[str, Path]:
    """``train``, ``val`` (dev/val/valid/validation) and ``test`` tables in a folder, by file stem."""
    files: dict[str, Path] = {}
    for split, stems in _SPLIT_NAMES.items():
        for stem in stems:
            hits = [p for p in sorted(folder.iterdir()) if p.is_file() and p.stem.lower() == stem]
            hits = [p for p in hits if p.suffix.lower() in _TABLE_EXTENSIONS or p.suffix == ""]
            if hits:
                files[split] = hits[0]
                break
    if "train" not in files:
        found = ", ".join(p.name for p in sorted(folder.iterdir())[:10])
        raise DataError(
            f"no training file in folder {folder} (looked for train.csv/.tsv/.jsonl/.parquet; found: {found}). "
            "Pass data.path=<the training file>, with data.val_path / data.test_path for fixed splits."
        )
    return files


def split_paths(path: Any, val_path: Any, test_path: Any) -> dict[str, Path]:
    """The files of each split: a folder's train/dev/test files, or ``path`` plus explicit val/test files."""
    if path in (None, ""):
        raise DataError("no data given: pass data.path=<file or folder>, or data.synthetic=true to try the recipe.")
    p = _expand(path)
    if not p.exists():
        raise DataError(f"data path not found: {p}. Pass data.path=<file or folder>.")
    files = find_split_files(p) if p.is_dir() else {"train": p}
    for split, extra in (("val", val_path), ("test", test_path)):
        if extra not in (None, ""):
            q = _expand(extra)
            if not q.is_file():
                raise DataError(f"{split} file not found: {q} (data.{split}_path).")
            files[split] = q
    return files


# --------------------------------------------------------------------------------------------------------------
# Tokenizers


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


def resolve_tokenizer(
    tokenizer: Any, backbone: str, pretrained: Any, train_texts: Sequence[str], vocab_size: int, lowercase: bool
) -> TokenizerInfo:
    """The tokenizer to use: ``tokenizer`` if given, else the backbone's own, else (scratch networks) a WordPiece
    tokenizer trained on the training texts."""
    from recipezoo.nlp import models

    scratch = models.is_scratch(backbone)
    encoder_config = None
    if not scratch:
        encoder_config = models.load_config(backbone, pretrained).to_dict()
    if tokenizer in (None, "", "backbone") and scratch or tokenizer == "train":
        tok = train_wordpiece(train_texts, vocab_size, lowercase)
        log.info("Trained a WordPiece tokenizer on the training texts: %d tokens.", tok.get_vocab_size())
        return TokenizerInfo(
            tok.to_str(), tok.token_to_id("[PAD]"), tok.get_vocab_size(), ["input_ids", "attention_mask"],
            "trained on the training split", encoder_config,
        )  # fmt: skip
    source = str(tokenizer) if tokenizer not in (None, "", "backbone") else models.encoder_source(backbone, pretrained)
    hf = models.load_tokenizer(source)
    backend = hf.backend_tokenizer
    pad_id = hf.pad_token_id if hf.pad_token_id is not None else 0
    inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if "token_type_ids" in hf.model_input_names else [])
    return TokenizerInfo(backend.to_str(), int(pad_id), len(hf), inputs, source, encoder_config)


# --------------------------------------------------------------------------------------------------------------
# Tokenized splits: packed token ids, cached on disk


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


def cache_key(tokenizer_json: str, max_length: int, texts: Any, kind: str, with_types: bool) -> str:
    """sha256 of everything the tokenized split depends on: tokenizer, max_length and the texts themselves."""
    h = hashlib.sha256()
    for part in (_CACHE_VERSION, kind, str(max_length), str(with_types), tokenizer_json):
        h.update(part.encode())
        h.update(b"\x00")
    items = texts[0] + texts[1] if kind == "pairs" else texts
    for t in items:
        h.update(("\x1f".join(t) if kind == "words" else t).encode())
        h.update(b"\x00")
    return h.hexdigest()


def encode_cached(
    cache_dir: str | None, tokenizer_json: str, max_length: int, texts: Any, kind: str, with_types: bool, what: str
) -> Encoded:
    """:func:`encode`, through an on-disk cache in ``cache_dir`` (None disables it)."""
    if not cache_dir:
        return encode(tokenizer_json, max_length, texts, kind, with_types)
    key = cache_key(tokenizer_json, max_length, texts, kind, with_types)
    path = _expand(cache_dir) / f"{key[:32]}.pt"
    if path.is_file():
        try:
            enc = Encoded.from_dict(torch.load(path, map_location="cpu", weights_only=True))
            log.info("%s: tokenized data loaded from the cache (%s).", what, path.name)
            return enc
        except Exception as e:  # a damaged cache file is rebuilt, never trusted
            log.warning("%s: ignoring unreadable cache file %s (%s).", what, path, type(e).__name__)
    enc = encode(tokenizer_json, max_length, texts, kind, with_types)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(enc.to_dict(), tmp)
        os.replace(tmp, path)  # atomic: concurrent runs never read a half-written file
    except OSError as e:
        log.warning("%s: could not write the tokenization cache in %s (%s).", what, cache_dir, e)
    return enc


# --------------------------------------------------------------------------------------------------------------
# Datasets, samplers, collation


class TokenizedDataset(Dataset):
    """A tokenized split: item ``i`` is ``(ids, type_ids or None, target)``."""

    def __init__(self, enc: Encoded, targets: Sequence[Any]) -> None:
        self.enc = enc
        self.targets = list(targets)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        types = self.enc.type_ids[i] if self.enc.type_ids is not None else None
        first = self.enc.first_index[i] if self.enc.first_index is not None else None
        return self.enc.ids[i], types, self.targets[i], first

    def lengths(self) -> np.ndarray:
        return self.enc.ids.lengths()


class LengthGroupedSampler(Sampler[int]):
    """Random order in which each run of ``batch_size`` indices has similar lengths (less padding per batch).

    Like Hugging Face's: shuffle, cut into mega-batches of ``mega * batch_size``, sort each by length, and shuffle
    the order of the resulting batches. The permutation is drawn from torch's global RNG when iteration starts, as
    ``RandomSampler`` does, so seeding and exact resume work the same way.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, mega: int = 50) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = int(batch_size)
        self.mega = int(mega)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(self.lengths))
        size = self.mega * self.batch_size
        batches = []
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        # The longest batch first: an out-of-memory error shows at the first step, not hours in.
        longest = max(range(len(batches)), key=lambda b: self.lengths[batches[b]].max()) if batches else 0
        rest = [b for i, b in enumerate(batches) if i != longest]
        rng.shuffle(rest)
        for batch in ([batches[longest]] if batches else []) + rest:
            yield from batch.tolist()


class SortedSampler(Sampler[int]):
    """Evaluation order by length (deterministic): every batch pads little. Metrics do not depend on order."""

    def __init__(self, lengths: np.ndarray) -> None:
        self.order = np.argsort(-np.asarray(lengths), kind="stable").tolist()

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)


@dataclass
class Collator:
    """Pads a batch to its longest sequence and stacks the targets (see the module docstring)."""

    pad_id: int
    with_types: bool
    target: str  # "class" | "multi_label" | "tokens"
    num_labels: int = 0

    def __call__(self, items: list[tuple[Any, ...]]) -> dict[str, torch.Tensor]:
        ids = [it[0] for it in items]
        batch = rt.pad(ids, self.pad_id, [it[1] for it in items] if self.with_types else None)
        out = {k: torch.from_numpy(v) for k, v in batch.items()}
        targets = [it[2] for it in items]
        if self.target == "class":
            out["labels"] = torch.tensor(targets, dtype=torch.long)
        elif self.target == "multi_label":
            y = torch.zeros(len(items), self.num_labels)
            for i, labels in enumerate(targets):
                y[i, list(labels)] = 1.0
            out["labels"] = y
        else:  # tokens: word tags -> first sub-token labels, the rest ignored
            t = out["input_ids"].shape[1]
            w = max((len(tags) for tags in targets), default=0)
            labels = torch.full((len(items), t), rt.IGNORE, dtype=torch.long)
            word_index = torch.full((len(items), w), -1, dtype=torch.long)
            word_tags = torch.full((len(items), w), -1, dtype=torch.long)
            for i, (tags, first) in enumerate(zip(targets, (it[3] for it in items))):
                first_t = torch.from_numpy(np.asarray(first, dtype=np.int64))
                tags_t = torch.as_tensor(tags, dtype=torch.long)
                kept = first_t >= 0
                labels[i, first_t[kept]] = tags_t[kept]
                word_index[i, : len(tags)] = first_t
                word_tags[i, : len(tags)] = tags_t
            out.update(labels=labels, word_index=word_index, word_tags=word_tags)
        return out


# --------------------------------------------------------------------------------------------------------------
# The DataModules


@dataclass
class Split:
    """The rows of one split that survived cleaning: model inputs and raw targets."""

    texts: Any  # list[str] | (list[str], list[str]) | list[list[str]]
    targets: list[Any]
    source: str = ""
    dropped: Counter = field(default_factory=Counter)


class _TextDataModule(L.LightningDataModule):
    """What text and token classification share: tokenizer, caching, splits, loaders, ``info`` and ``files``."""

    kind = "texts"  # how examples are tokenized: texts | pairs | words

    def __init__(
        self,
        path: str | None = None,
        val_path: str | None = None,
        test_path: str | None = None,
        encoding: str = "utf-8",
        tokenizer: str | None = None,
        backbone: str = "textcnn",
        pretrained: Any = False,
        max_length: int = 128,
        vocab_size: int = 16000,
        lowercase: bool = True,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        group_by_length: bool = True,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        max_train_samples: int | float | None = None,
        cache_dir: str | None = "data_cache/nlp",
        num_workers: int | str = 0,
        pin_memory: bool | str = "auto",
        seed: int = 42,
        synthetic: bool = False,
        synthetic_size: int = 400,
    ) -> None:
        super().__init__()
        if int(max_length) < 4:
            raise ConfigError(f"data.max_length must be at least 4 tokens, got {max_length}.")
        self.path, self.val_path, self.test_path = path, val_path, test_path
        self.encoding = encoding
        self.tokenizer_name = tokenizer
        self.backbone, self.pretrained = str(backbone), pretrained
        self.max_length, self.vocab_size, self.lowercase = int(max_length), int(vocab_size), bool(lowercase)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or 2 * self.batch_size)
        self.group_by_length = bool(group_by_length)
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.max_train_samples = max_train_samples
        self.cache_dir = cache_dir
        self.loader_kwargs = loader_settings(num_workers, pin_memory)
        self.seed = int(seed)
        self.synthetic, self.synthetic_size = bool(synthetic), int(synthetic_size)
        self.labels: list[str] | None = None
        self.tok: TokenizerInfo | None = None
        self.datasets: dict[str, TokenizedDataset] = {}
        self.counts: dict[str, int] = {}
        self._restored = False

    # -- what subclasses provide ------------------------------------------------------------------------------
    def read_split(self, path: Path, split: str) -> Split:
        raise NotImplementedError

    def synthetic_splits(self) -> dict[str, Split]:
        raise NotImplementedError

    def fit_labels(self, train: Split) -> list[str]:
        raise NotImplementedError

    def encode_targets(self, split: Split, name: str) -> Split:
        """Targets as label indices; rows with labels unseen in training raise (or are dropped)."""
        raise NotImplementedError

    def collator(self) -> Collator:
        raise NotImplementedError

    def stratify_keys(self, split: Split) -> list[Any]:
        return [0] * len(split.targets)

    def extra_info(self) -> dict[str, Any]:
        return {}

    def extra_preprocessing(self) -> dict[str, Any]:
        return {}

    def describe(self) -> str:
        return "synthetic data" if self.synthetic else f"{self.path}"

    # -- checkpoints ------------------------------------------------------------------------------------------
    def restore(self, info: dict[str, Any] | None) -> None:
        """Adopt what a checkpoint's data fitted (labels, tokenizer), before ``setup``: never refitted."""
        if not info:
            return
        if OmegaConf.is_config(info):
            info = OmegaConf.to_container(info, resolve=True)
        if info.get("labels"):
            self.labels = list(info["labels"])
        files = info.get("files") or {}
        pp = info.get("preprocessing") or {}
        if TOKENIZER_FILE in files:
            content = files[TOKENIZER_FILE]
            self.tok = TokenizerInfo(
                content.decode() if isinstance(content, bytes) else content,
                int(pp.get("pad_id", 0)),
                int(info.get("vocab_size") or 0),
                list(pp.get("model_inputs") or ["input_ids", "attention_mask"]),
                str(pp.get("tokenizer_source", "the checkpoint")),
                info.get("encoder_config"),
            )
            if pp.get("max_length"):
                self.max_length = int(pp["max_length"])
        self._restored = True

    @property
    def files(self) -> dict[str, str]:
        """Stored in every checkpoint and written into export bundles: the tokenizer."""
        return {TOKENIZER_FILE: self.tok.json} if self.tok is not None else {}

    @property
    def preprocessing(self) -> dict[str, Any]:
        assert self.tok is not None
        return {
            "tokenizer_file": TOKENIZER_FILE,
            "tokenizer_source": self.tok.source,
            "max_length": self.max_length,
            "pad_id": self.tok.pad_id,
            "model_inputs": list(self.tok.model_inputs),
            **self.extra_preprocessing(),
        }

    @property
    def info(self) -> dict[str, Any]:
        """What the model and exports need to know about this data (after ``setup``)."""
        assert self.tok is not None and self.labels is not None, "call setup() first"
        return {
            "num_classes": len(self.labels),
            "labels": list(self.labels),
            "vocab_size": self.tok.vocab_size,
            "encoder_config": self.tok.encoder_config,
            "preprocessing": self.preprocessing,
            "split_counts": dict(self.counts),
            **self.extra_info(),
        }

    # -- setup ----------------------------------------------------------------------------------------------
    def _read(self) -> dict[str, Split]:
        if self.synthetic:
            return self.synthetic_splits()
        files = split_paths(self.path, self.val_path, self.test_path)
        return {split: self.read_split(p, split) for split, p in files.items()}

    def _carve(self, splits: dict[str, Split]) -> dict[str, Split]:
        """Carve missing val/test splits out of train (seeded, stratified where the labels allow)."""
        missing = [s for s in ("val", "test") if s not in splits]
        if not missing:
            return splits
        train = splits["train"]
        fractions = [self.val_fraction if s == "val" else self.test_fraction for s in missing]
        parts = stratified_split(self.stratify_keys(train), fractions, self.seed, what=self.describe())
        splits["train"] = _subset(train, parts[0])
        for name, idx in zip(missing, parts[1:]):
            splits[name] = _subset(train, idx, source=f"carved from {train.source or 'train'}")
        log.info(
            "Split %s: %s carved from train (seed %d, %s).",
            self.describe(),
            " and ".join(missing),
            self.seed,
            ", ".join(f"{s} {f:.0%}" for s, f in zip(missing, fractions)),
        )
        return splits

    def _subsample_train(self, train: Split) -> Split:
        n = self.max_train_samples
        if n in (None, 0, "null"):
            return train
        size = len(train.targets)
        k = int(round(float(n) * size)) if isinstance(n, float) and n <= 1 else int(n)
        if k >= size:
            return train
        rng = np.random.default_rng(self.seed)
        keep = np.sort(rng.choice(size, size=k, replace=False))
        log.info("Training on a seeded random subset of %d of %d examples (data.max_train_samples).", k, size)
        return _subset(train, keep.tolist(), source=train.source)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        splits = self._carve(self._read())
        splits["train"] = self._subsample_train(splits["train"])
        if self.labels is None:
            self.labels = self.fit_labels(splits["train"])
        if len(self.labels) < 2 and not getattr(self, "multi_label", False):
            raise DataError(
                f"{self.describe()}: the training split has a single label ({self.labels}); a classifier needs at "
                "least two."
            )
        splits = {name: self.encode_targets(s, name) for name, s in splits.items()}
        for name, s in splits.items():
            if not s.targets:
                raise DataError(f"{self.describe()}: the {name} split is empty after cleaning; check the data.")
        if self.tok is None:
            train_texts = _flat_texts(splits["train"].texts, self.kind)
            self.tok = resolve_tokenizer(
                self.tokenizer_name, self.backbone, self.pretrained, train_texts, self.vocab_size, self.lowercase
            )
        with_types = "token_type_ids" in self.tok.model_inputs
        for name in SPLITS:
            s = splits[name]
            enc = encode_cached(
                self.cache_dir, self.tok.json, self.max_length, s.texts, self.kind, with_types, f"{name} split"
            )
            if enc.truncated:
                log.info(
                    "%s: %d of %d examples (%.1f%%) are longer than max_length=%d tokens and were truncated.",
                    name,
                    enc.truncated,
                    len(s.targets),
                    100 * enc.truncated / len(s.targets),
                    self.max_length,
                )
            self.datasets[name] = TokenizedDataset(enc, s.targets)
            self.counts[name] = len(s.targets)
        log.info(
            "%s: %s examples (train / val / test); tokenizer: %s.",
            self.describe(),
            " / ".join(f"{self.counts[s]:,}" for s in SPLITS),
            self.tok.source,
        )

    # -- loaders -----------------------------------------------------------------------------------------------
    def _loader(self, split: str, train: bool = False) -> DataLoader:
        if split not in self.datasets:
            self.setup()
        ds = self.datasets[split]
        if train:
            sampler: Sampler[int] | None = (
                LengthGroupedSampler(ds.lengths(), self.batch_size) if self.group_by_length else None
            )
            return DataLoader(
                ds,
                batch_size=self.batch_size,
                sampler=sampler,
                shuffle=sampler is None,
                collate_fn=self.collator(),
                **self.loader_kwargs,
            )
        return DataLoader(
            ds,
            batch_size=self.eval_batch_size,
            sampler=SortedSampler(ds.lengths()),
            collate_fn=self.collator(),
            **self.loader_kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def eval_dataloader(self, split: str) -> DataLoader:
        """Any split in evaluation order (scripts/evaluate.py)."""
        return self._loader(split)


def _subset(split: Split, idx: Sequence[int], source: str | None = None) -> Split:
    idx = list(idx)
    if isinstance(split.texts, tuple):
        texts: Any = ([split.texts[0][i] for i in idx], [split.texts[1][i] for i in idx])
    else:
        texts = [split.texts[i] for i in idx]
    return Split(texts, [split.targets[i] for i in idx], split.source if source is None else source)


def _flat_texts(texts: Any, kind: str) -> list[str]:
    if kind == "pairs":
        return list(texts[0]) + list(texts[1])
    if kind == "words":
        return [" ".join(w) for w in texts]
    return list(texts)


def _log_dropped(what: str, dropped: Counter, total: int) -> None:
    for reason, n in sorted(dropped.items()):
        log.warning("%s: skipped %d of %d rows (%s).", what, n, total, reason)


# --------------------------------------------------------------------------------------------------------------
# Text classification


def _column_ref(value: Any) -> str | list[str]:
    """A column reference from the config: a name/position, or a list of alternative names."""
    if isinstance(value, (list, tuple)) or OmegaConf.is_list(value):
        return [str(v) for v in value]
    return str(value)


def _sort_labels(values: Sequence[str]) -> list[str]:
    """Label names in a stable order: numerically when they are all integers ('2' before '10'), else as text."""
    values = sorted(set(values))
    if all(re.fullmatch(r"-?\d+", v) for v in values):
        return sorted(values, key=int)
    return values


class TextClassificationDataModule(_TextDataModule):
    """Text classification from tables; see the module docstring for the batch contract.

    Args:
        text_column: the text column (name, or position for a header-less file).
        text_pair_column: an optional second text (sentence-pair tasks: entailment, paraphrase).
        label_column: the label column.
        sep: field separator (None: from the extension, else detected).
        header: whether the files have a header row.
        columns: column names of header-less files (e.g. ``[label, text]``).
        multi_label: each row has zero or more labels in ``label_column``, separated by ``label_delimiter``.
        label_delimiter: see ``multi_label``.
        label_names: label names for integer label ids: a list, or a file with one name per line (line ``i`` names
            id ``i``).
        drop_unseen_labels: drop val/test rows whose label never occurs in training (else: an error listing them).
        (the rest: see :class:`_TextDataModule` and ``conf/data/nlp/text.yaml``.)
    """

    def __init__(
        self,
        text_column: str | int = "text",
        label_column: str | int = "label",
        text_pair_column: str | int | None = None,
        sep: str | None = None,
        header: bool = True,
        columns: Sequence[str] | None = None,
        multi_label: bool = False,
        label_delimiter: str = ",",
        label_names: Any = None,
        drop_unseen_labels: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.text_column, self.label_column = _column_ref(text_column), _column_ref(label_column)
        self.text_pair_column = None if text_pair_column in (None, "") else _column_ref(text_pair_column)
        self.kind = "pairs" if self.text_pair_column else "texts"
        self.sep = None if sep in (None, "") else str(sep).replace("\\t", "\t")
        self.header = bool(header)
        self.columns = list(columns) if columns else None
        self.multi_label = bool(multi_label)
        self.label_delimiter = str(label_delimiter)
        self.label_names = label_names
        self.drop_unseen_labels = bool(drop_unseen_labels)

    def read_split(self, path: Path, split: str) -> Split:
        frame = read_text_table(path, self.sep, self.header, self.columns, self.encoding)
        texts = column(frame, self.text_column, path, "text")
        pairs = column(frame, self.text_pair_column, path, "text_pair") if self.text_pair_column else None
        raw = column(frame, self.label_column, path, "label")
        dropped: Counter = Counter()
        keep = []
        for i, (t, y) in enumerate(zip(texts, raw)):
            if not t.strip() or (pairs is not None and not pairs[i].strip()):
                dropped["empty text"] += 1
            elif not y.strip() and not self.multi_label:
                dropped["empty label"] += 1
            else:
                keep.append(i)
        _log_dropped(f"{path.name} ({split})", dropped, len(texts))
        targets: list[Any] = [self._parse_label(raw[i]) for i in keep]
        kept_texts: Any = [texts[i] for i in keep]
        if pairs is not None:
            kept_texts = (kept_texts, [pairs[i] for i in keep])
        return Split(kept_texts, targets, path.name, dropped)

    def _parse_label(self, value: str) -> Any:
        value = value.strip()
        if self.multi_label:
            return tuple(v.strip() for v in value.split(self.label_delimiter) if v.strip())
        return value

    def _names(self) -> list[str] | None:
        if self.label_names in (None, ""):
            return None
        if isinstance(self.label_names, (list, tuple)) or OmegaConf.is_list(self.label_names):
            return [str(x) for x in self.label_names]
        p = _expand(self.label_names)
        if not p.is_file():
            raise DataError(f"label names file not found: {p} (data.label_names).")
        return [line.strip() for line in read_text_file(p, self.encoding).splitlines() if line.strip()]

    def fit_labels(self, train: Split) -> list[str]:
        names = self._names()
        raw = [y for ys in train.targets for y in ys] if self.multi_label else list(train.targets)
        if names is not None:
            bad = sorted({y for y in raw if not (y.isdigit() and int(y) < len(names))})
            if bad:
                raise DataError(
                    f"data.label_names has {len(names)} names, but the labels include {', '.join(bad[:5])}: with "
                    "label_names, labels must be ids 0..N-1."
                )
            if self.multi_label:
                return names  # every label exists, whether or not training has examples of it
            return [names[int(y)] for y in _sort_labels(raw)]
        labels = _sort_labels(raw)
        if not labels:
            raise DataError(f"{self.describe()}: no labels in the training split ({self.label_column} column).")
        return labels

    def encode_targets(self, split: Split, name: str) -> Split:
        assert self.labels is not None
        names = self._names()
        index = {y: i for i, y in enumerate(self.labels)}
        if names is not None:  # ids in the file -> their names -> our index
            index = {str(i): index[n] for i, n in enumerate(names) if n in index}
        targets, unseen, keep = [], Counter(), []
        for i, y in enumerate(split.targets):
            ys = y if self.multi_label else (y,)
            missing = [v for v in ys if v not in index]
            if missing:
                unseen.update(missing)
                continue
            keep.append(i)
            targets.append(tuple(index[v] for v in ys) if self.multi_label else index[y])
        if unseen:
            listed = ", ".join(f"'{k}' ({v} rows)" for k, v in unseen.most_common(8))
            if not self.drop_unseen_labels or name == "train":
                raise DataError(
                    f"labels in the {name} split that training never saw: {listed}. The model cannot predict "
                    "them: add training examples, fix the labels, or pass data.drop_unseen_labels=true to drop "
                    "those rows."
                )
            log.warning(
                "%s split: dropped %d rows with labels unseen in training: %s.",
                name,
                len(split.targets) - len(keep),
                listed,
            )  # noqa: E501
        out = _subset(split, keep)
        out.targets = targets
        return out

    def stratify_keys(self, split: Split) -> list[Any]:
        if self.multi_label:  # stratify on the first label (rows with none together)
            return [ys[0] if ys else "" for ys in split.targets]
        return list(split.targets)

    def collator(self) -> Collator:
        assert self.tok is not None and self.labels is not None
        return Collator(
            self.tok.pad_id,
            "token_type_ids" in self.tok.model_inputs,
            "multi_label" if self.multi_label else "class",
            len(self.labels),
        )

    def extra_info(self) -> dict[str, Any]:
        return {"multi_label": self.multi_label}

    def extra_preprocessing(self) -> dict[str, Any]:
        return {"text_column": self.text_column, "text_pair_column": self.text_pair_column}

    def synthetic_splits(self) -> dict[str, Split]:
        return {
            name: make_synthetic_texts(n, self.seed + k, self.multi_label, pairs=self.kind == "pairs")
            for k, (name, n) in enumerate(
                (("train", self.synthetic_size), ("val", self.synthetic_size // 4), ("test", self.synthetic_size // 4))
            )
        }


# --------------------------------------------------------------------------------------------------------------
# Token classification

_ENTITY_TAG = re.compile(r"^([BIESLU])-(.+)$")


def tag_scheme(tags: Sequence[str]) -> str:
    """``BIOES`` / ``BIO`` for entity tags (``B-PER``, ``I-LOC``, ``O``...), ``tags`` for plain tags (POS)."""
    prefixes = set()
    for t in set(tags):
        if t == "O":
            continue
        m = _ENTITY_TAG.match(t)
        if not m:
            return "tags"
        prefixes.add(m.group(1))
    return "BIOES" if prefixes & {"E", "S", "L", "U"} else "BIO"


def read_conll(path: Path, tag_column: int = -1, token_column: int = 0, encoding: str = "utf-8") -> Split:
    """CoNLL-style file: whitespace-separated columns, one token per line, a blank line between sentences;
    ``-DOCSTART-`` lines are skipped."""
    sentences: list[list[str]] = []
    tags: list[list[str]] = []
    words: list[str] = []
    ws_tags: list[str] = []
    dropped: Counter = Counter()
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
    return Split(sentences, tags, path.name, dropped)


def read_token_jsonl(path: Path, tokens_field: str, tags_field: str, encoding: str = "utf-8") -> Split:
    """JSON lines with a list of tokens and a list of tags per line (``{"tokens": [...], "tags": [...]}``)."""
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


class TokenClassificationDataModule(_TextDataModule):
    """Token classification (NER, POS) from CoNLL-style or JSON-lines files; see the module docstring.

    Args:
        tag_column: the column of the tag in CoNLL-style files (-1: the last).
        token_column: the column of the token.
        tokens_field: JSON lines: the field holding the token list.
        tags_field: JSON lines: the field holding the tag list (``ner_tags`` is also looked for).
        (the rest: see :class:`_TextDataModule` and ``conf/data/nlp/tokens.yaml``.)
    """

    kind = "words"

    def __init__(
        self,
        tag_column: int = -1,
        token_column: int = 0,
        tokens_field: str = "tokens",
        tags_field: str = "tags",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tag_column, self.token_column = int(tag_column), int(token_column)
        self.tokens_field, self.tags_field = tokens_field, tags_field
        self.scheme: str | None = None

    def read_split(self, path: Path, split: str) -> Split:
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            s = read_token_jsonl(path, self.tokens_field, self.tags_field, self.encoding)
        else:
            s = read_conll(path, self.tag_column, self.token_column, self.encoding)
        _log_dropped(f"{path.name} ({split})", s.dropped, len(s.targets) + sum(s.dropped.values()))
        return s

    def fit_labels(self, train: Split) -> list[str]:
        tags = {t for ts in train.targets for t in ts}

        def key(t: str) -> tuple:
            m = _ENTITY_TAG.match(t)
            return (t != "O", m.group(2) if m else t, m.group(1) if m else "")

        return sorted(tags, key=key)

    def encode_targets(self, split: Split, name: str) -> Split:
        assert self.labels is not None
        index = {t: i for i, t in enumerate(self.labels)}
        unseen = Counter(t for ts in split.targets for t in ts if t not in index)
        if unseen:
            listed = ", ".join(f"'{k}' ({v}x)" for k, v in unseen.most_common(8))
            raise DataError(
                f"tags in the {name} split that training never saw: {listed}. The model cannot predict them: add "
                "training examples with these tags or fix the tags."
            )
        out = Split(split.texts, [[index[t] for t in ts] for ts in split.targets], split.source)
        if name == "train":
            self.scheme = tag_scheme(self.labels)
        return out

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.scheme is None and self.labels is not None:
            self.scheme = tag_scheme(self.labels)

    def stratify_keys(self, split: Split) -> list[Any]:
        return [0] * len(split.targets)  # sentences: a plain seeded random split

    def collator(self) -> Collator:
        assert self.tok is not None
        return Collator(self.tok.pad_id, "token_type_ids" in self.tok.model_inputs, "tokens")

    def extra_info(self) -> dict[str, Any]:
        return {"scheme": self.scheme or tag_scheme(self.labels or [])}

    def synthetic_splits(self) -> dict[str, Split]:
        return {
            name: make_synthetic_tokens(n, self.seed + k)
            for k, (name, n) in enumerate(
                (("train", self.synthetic_size), ("val", self.synthetic_size // 4), ("test", self.synthetic_size // 4))
            )
        }


# --------------------------------------------------------------------------------------------------------------
# Synthetic twins: tiny, offline, learnable

POSITIVE = ["good", "great", "excellent", "wonderful", "lovely", "superb", "delightful", "brilliant"]
NEGATIVE = ["bad", "awful", "terrible", "boring", "dreadful", "poor", "dull", "horrible"]
TOPICS = {
    "sport": ["match", "goal", "team", "coach"],
    "music": ["song", "band", "guitar", "album"],
    "food": ["pizza", "soup", "bread", "cheese"],
    "travel": ["train", "hotel", "beach", "flight"],
}
FILLER = ["the", "a", "this", "movie", "film", "story", "was", "is", "really", "quite", "very", "and", "plot", "it"]
PERSONS = ["alice", "bob", "carol", "dave", "erin", "frank"]
PLACES = ["paris", "london", "berlin", "madrid", "rome"]
ORGS = ["acme", "globex", "initech", "umbrella"]
VERBS = ["visited", "met", "left", "joined", "saw", "called"]

#: Every word the synthetic twins use (tests build tiny tokenizers from it).
SYNTHETIC_WORDS = sorted(
    set(POSITIVE + NEGATIVE + FILLER + PERSONS + PLACES + ORGS + VERBS + [w for ws in TOPICS.values() for w in ws])
    | {"in", "at", "with", "today"}
)


def make_synthetic_texts(n: int, seed: int, multi_label: bool = False, pairs: bool = False) -> Split:
    """Sentences whose label is carried by a few words: sentiment (positive/negative) or, multi-label, topics."""
    rng = random.Random(seed)
    texts, targets, seconds = [], [], []
    for _ in range(n):
        words = rng.choices(FILLER, k=rng.randint(3, 9))
        if multi_label:
            topics = sorted(rng.sample(sorted(TOPICS), k=rng.randint(0, 2)))
            for t in topics:
                words.insert(rng.randrange(len(words) + 1), rng.choice(TOPICS[t]))
            targets.append(tuple(topics))
        else:
            label = rng.choice(["negative", "positive"])
            for _ in range(rng.randint(1, 2)):
                words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label == "positive" else NEGATIVE))
            targets.append(label)
        texts.append(" ".join(words))
        seconds.append(" ".join(rng.choices(FILLER, k=3)))
    return Split((texts, seconds) if pairs else texts, targets, "synthetic")


def make_synthetic_tokens(n: int, seed: int) -> Split:
    """Sentences with person, place and organisation mentions, tagged in IOB2 (``B-PER``, ``I-ORG``, ``O``)."""
    rng = random.Random(seed)
    sentences, tags = [], []
    for _ in range(n):
        words: list[str] = []
        ws_tags: list[str] = []
        _mention(rng, words, ws_tags, PERSONS, "PER", rng.randint(1, 2))
        words.append(rng.choice(VERBS))
        ws_tags.append("O")
        if rng.random() < 0.5:
            _mention(rng, words, ws_tags, ORGS, "ORG", rng.randint(1, 2))
        else:
            words.append("the")
            ws_tags.append("O")
        words.append(rng.choice(["in", "at"]))
        ws_tags.append("O")
        _mention(rng, words, ws_tags, PLACES, "LOC", 1)
        if rng.random() < 0.5:
            words.append("today")
            ws_tags.append("O")
        sentences.append(words)
        tags.append(ws_tags)
    return Split(sentences, tags, "synthetic")


def _mention(rng: random.Random, words: list[str], tags: list[str], names: list[str], kind: str, length: int) -> None:
    for j in range(length):
        words.append(rng.choice(names))
        tags.append(("B-" if j == 0 else "I-") + kind)
