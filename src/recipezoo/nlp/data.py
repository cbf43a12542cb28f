"""NLP data: text tables and tagged-token files, tokenized once (cached), batched with dynamic padding.

- :class:`TextClassificationDataModule`: a CSV/TSV/JSON-lines/Parquet table (or a folder of ``train``/``dev``/``test``
  tables) with a text column (and an optional second text for sentence pairs) and a label column; multi-class or
  multi-label (labels in one cell, separated by ``label_delimiter``).
- :class:`TokenClassificationDataModule`: CoNLL-style files (one token per line, the tag in the last column, a blank
  line between sentences) or JSON lines with ``tokens`` and ``tags``; BIO/IOB1/BIOES entity tags or plain tags (POS).

Both DataModules are thin orchestrators over small stages: split files, tables, columns, carving and label maps from
:mod:`recipezoo.data`; text rows (:mod:`~recipezoo.nlp.sources`), tagged-token files (:mod:`~recipezoo.nlp.conll`),
tokenizers (:mod:`~recipezoo.nlp.tokenization`), the tokenization cache (:mod:`~recipezoo.nlp.cache`), datasets and
batching (:mod:`~recipezoo.nlp.datasets`) and the synthetic twins (:mod:`~recipezoo.nlp.synthetic`) from this domain.

Both tokenize with the backbone's own tokenizer, or for recipezoo's from-scratch networks with a WordPiece tokenizer
trained on the training split. Tokenization goes through :mod:`recipezoo.runtime.text`, the code exported bundles
run, so predictions on raw text reproduce training exactly. Tokenized splits are cached in ``cache_dir`` (default: the
user's cache folder, ``$XDG_CACHE_HOME/recipezoo/nlp`` else ``~/.cache/recipezoo/nlp``) under a key made of the
tokenizer, ``max_length`` and the texts themselves: a second run on the same data does not re-tokenize.

Batches are dicts: ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the model takes them), ``(B, T)``
int64, padded to the batch's longest sequence; ``labels``: ``(B,)`` int64 (multi-class), ``(B, L)`` float32
(multi-label) or ``(B, T)`` int64 with -100 on sub-tokens that carry no word label (token classification, which
also gets ``word_index`` and ``word_tags``, ``(B, W)``, for word-level evaluation). With ``synthetic=True`` the data
are generated, tiny and offline, with the same contract.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as L
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Sampler

from recipezoo.core.data import loader_settings
from recipezoo.core.errors import ConfigError, DataError
from recipezoo.data import labels as LB
from recipezoo.data import splits as S
from recipezoo.data.splits import SPLITS, split_paths
from recipezoo.nlp.cache import DEFAULT_CACHE_DIR, cache_key, cache_path, load_cached, resolve_cache_dir, save_cached
from recipezoo.nlp.conll import read_conll, read_token_jsonl, tag_scheme
from recipezoo.nlp.datasets import Collator, LengthGroupedSampler, SortedSampler, TokenizedDataset
from recipezoo.nlp.sources import (
    Split,
    column,
    column_ref,
    flat_texts,
    read_labelled_texts,
    read_text_file,
    read_text_table,
    subsample,
    subset,
)
from recipezoo.nlp.synthetic import SYNTHETIC_WORDS, make_synthetic_texts, make_synthetic_tokens, synthetic_splits
from recipezoo.nlp.tokenization import TOKENIZER_FILE, Encoded, TokenizerInfo, encode, resolve_tokenizer
from recipezoo.runtime import text as rt

log = logging.getLogger(__name__)

# The stages' names stay importable from here (prediction, scripts and older code use this module's names).
__all__ = [
    "SPLITS",
    "SYNTHETIC_WORDS",
    "TOKENIZER_FILE",
    "Collator",
    "Encoded",
    "LengthGroupedSampler",
    "SortedSampler",
    "Split",
    "TextClassificationDataModule",
    "TokenClassificationDataModule",
    "TokenizedDataset",
    "TokenizerInfo",
    "column",
    "encode",
    "make_synthetic_texts",
    "make_synthetic_tokens",
    "read_conll",
    "read_text_file",
    "read_text_table",
    "read_token_jsonl",
    "resolve_tokenizer",
    "rt",
    "split_paths",
    "tag_scheme",
]


def _log_dropped(what: str, split: Split) -> None:
    total = len(split.targets) + sum(split.dropped.values())
    for reason, n in sorted(split.dropped.items()):
        log.warning("%s: skipped %d of %d rows (%s).", what, n, total, reason)


class _TextDataModule(L.LightningDataModule):
    """What text and token classification share: tokenizer, caching, splits, loaders, ``info`` and ``files``.

    ``setup`` runs the stages in order: read the splits (files or the synthetic twin), carve the missing val/test
    splits out of train, subsample train, fit (or adopt) the labels, encode the targets, fit (or adopt) the
    tokenizer, tokenize each split through the cache.
    """

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
        cache_dir: str | None = DEFAULT_CACHE_DIR,
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
        tok = TokenizerInfo.from_info(info)
        if tok is not None:
            self.tok = tok
            max_length = (info.get("preprocessing") or {}).get("max_length")
            if max_length:
                self.max_length = int(max_length)
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

    # -- setup: the stages ------------------------------------------------------------------------------------
    def _read(self) -> dict[str, Split]:
        if self.synthetic:
            return self.synthetic_splits()
        files = split_paths(self.path, self.val_path, self.test_path)
        splits = {}
        for split, p in files.items():
            splits[split] = self.read_split(p, split)
            _log_dropped(f"{p.name} ({split})", splits[split])
        return splits

    def _carve(self, splits: dict[str, Split]) -> dict[str, Split]:
        """Carve missing val/test splits out of train (seeded, stratified where the labels allow)."""
        missing = S.missing_splits(splits)
        if not missing:
            return splits
        train = splits["train"]
        fractions = [self.val_fraction if s == "val" else self.test_fraction for s in missing]
        parts = S.carve_missing(self.stratify_keys(train), fractions, self.seed, what=self.describe())
        splits["train"] = subset(train, parts[0])
        for name, idx in zip(missing, parts[1:]):
            splits[name] = subset(train, idx, source=f"carved from {train.source or 'train'}")
        log.info(
            "Split %s: %s carved from train (seed %d, %s).",
            self.describe(),
            " and ".join(missing),
            self.seed,
            ", ".join(f"{s} {f:.0%}" for s, f in zip(missing, fractions)),
        )
        return splits

    def _subsample_train(self, train: Split) -> Split:
        out = subsample(train, self.max_train_samples, self.seed)
        if out is not train:
            log.info(
                "Training on a seeded random subset of %d of %d examples (data.max_train_samples).",
                len(out.targets),
                len(train.targets),
            )
        return out

    def _encode(self, texts: Any, what: str) -> Encoded:
        """Tokenize one split, through the on-disk cache unless ``cache_dir`` is null (see
        :func:`~recipezoo.nlp.cache.resolve_cache_dir`)."""
        assert self.tok is not None
        args = (self.tok.json, self.max_length, texts, self.kind, "token_type_ids" in self.tok.model_inputs)
        folder = resolve_cache_dir(self.cache_dir)
        if folder is None:
            return encode(*args)
        path = cache_path(folder, cache_key(*args))
        enc = load_cached(path, what)
        if enc is None:
            enc = encode(*args)
            save_cached(path, enc, what)
        return enc

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
            self.tok = resolve_tokenizer(
                self.tokenizer_name,
                self.backbone,
                self.pretrained,
                flat_texts(splits["train"].texts, self.kind),
                self.vocab_size,
                self.lowercase,
            )
        for name in SPLITS:
            s = splits[name]
            enc = self._encode(s.texts, f"{name} split")
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
        self.text_column, self.label_column = column_ref(text_column), column_ref(label_column)
        self.text_pair_column = None if text_pair_column in (None, "") else column_ref(text_pair_column)
        self.kind = "pairs" if self.text_pair_column else "texts"
        self.sep = None if sep in (None, "") else str(sep).replace("\\t", "\t")
        self.header = bool(header)
        self.columns = list(columns) if columns else None
        self.multi_label = bool(multi_label)
        self.label_delimiter = str(label_delimiter)
        self.label_names = label_names
        self.drop_unseen_labels = bool(drop_unseen_labels)

    def read_split(self, path: Path, split: str) -> Split:
        return read_labelled_texts(
            path,
            self.text_column,
            self.label_column,
            LB.LabelMap([], self.multi_label, self.label_delimiter).parse,
            pair_column=self.text_pair_column,
            empty_labels=self.multi_label,  # a multi-label row may have no label at all
            sep=self.sep,
            header=self.header,
            columns=self.columns,
            encoding=self.encoding,
        )

    def _names(self) -> list[str] | None:
        return LB.read_label_names(self.label_names, self.encoding)

    def fit_labels(self, train: Split) -> list[str]:
        return LB.LabelMap.fit(
            train.targets,
            order="numeric",  # '2' before '10' when every label is an integer
            multi_label=self.multi_label,
            delimiter=self.label_delimiter,
            names=self._names(),
            what=self.describe(),
            source=f"{self.label_column} column",
        ).labels

    def encode_targets(self, split: Split, name: str) -> Split:
        assert self.labels is not None
        label_map = LB.LabelMap(self.labels, self.multi_label, self.label_delimiter, self._names())
        encoded, kept = label_map.encode(
            split.targets, split=name, unseen="drop" if self.drop_unseen_labels else "error"
        )
        out = subset(split, kept)
        out.targets = encoded
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
        def make(n: int, seed: int) -> Split:
            return make_synthetic_texts(n, seed, self.multi_label, pairs=self.kind == "pairs")

        return synthetic_splits(make, self.synthetic_size, self.seed)


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
            return read_token_jsonl(path, self.tokens_field, self.tags_field, self.encoding)
        return read_conll(path, self.tag_column, self.token_column, self.encoding)

    def fit_labels(self, train: Split) -> list[str]:
        # "O" first, then entity tags grouped by type (B-LOC, I-LOC, B-PER...), then plain tags.
        return LB.sort_labels((t for ts in train.targets for t in ts), "tags")

    def encode_targets(self, split: Split, name: str) -> Split:
        assert self.labels is not None
        index = LB.LabelMap(self.labels).index
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
        return synthetic_splits(make_synthetic_tokens, self.synthetic_size, self.seed)
