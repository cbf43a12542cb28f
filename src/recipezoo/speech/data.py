"""Speech data: audio folders, manifests and known datasets for classification and CTC speech-to-text.

Both DataModules yield dict batches: ``audio`` ``(B, T)`` float32 at the model's sample rate, zero-padded;
``lengths`` ``(B,)`` int64 samples; ``index`` ``(B,)`` (position in the split); and ``label`` ``(B,)``
(classification) or ``targets`` ``(B, S)`` int64 token ids with ``target_lengths`` ``(B,)`` and ``text``
(the reference transcripts, a list of strings) for speech recognition. The front-end (spectrogram, normalisation,
augmentation) runs on the accelerator in the LightningModule; here files are only decoded, mixed to mono,
resampled and (classification) cropped.

Where audio comes from:

- ``root``: ``root/<label>/*.wav|flac|ogg...`` (or ``root/{train,val,test}/<label>/...``), or any folder of files
  whose names carry the label in ``pattern`` (``{label}_{speaker}_{index}.wav``);
- ``manifest``: a CSV / TSV / JSON-lines file with a path column and a label or transcript column (extra columns
  such as ``speaker`` or ``split`` become fields), or a CMU Sphinx ``.transcription`` file (``<s> TEXT </s> (id)``,
  with the ``.fileids`` file beside it);
- ``dataset=speechcommands``: torchaudio's Speech Commands loader (``download=true`` fetches it);
- ``synthetic=true``: generated tones (classification) or tone sequences with transcripts (speech recognition).

Splits: a ``split`` field (folders or a column), then ``test_where`` / ``val_where`` rules on any field
(``{index: [0, 1, 2, 3, 4]}``, ``{speaker: [theo]}``), then what is still missing is carved from train with a
seeded split: whole groups of ``group_by`` (no speaker in two splits), else stratified by label.

Bad input: missing, unreadable or empty files are skipped and counted in one warning (their share above
``max_bad_fraction`` stops the run with a list); stereo files and other sample rates are converted, said once.

The DataModules only compose stages: :mod:`~recipezoo.speech.sources` (manifests, folders, Speech Commands) or
:mod:`~recipezoo.speech.synthetic` -> :mod:`~recipezoo.speech.stages` (targets, file check, split, labels or
vocabulary; tables, splits, label maps and the bad-file budget come from :mod:`recipezoo.data`) ->
:mod:`~recipezoo.speech.datasets` (decoding, batches).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as L
import torch
from torch.utils.data import DataLoader, RandomSampler

from recipezoo.core.data import loader_settings
from recipezoo.core.errors import ConfigError, DataError, close_matches
from recipezoo.data import folders as F
from recipezoo.data import tables as T
from recipezoo.data.splits import SPLIT_ALIASES, SPLITS, check_split, natural_key
from recipezoo.speech import sources, stages, synthetic
from recipezoo.speech.datasets import (
    AudioDataset,
    BucketBatchSampler,
    collate,
    decode_item,
    decode_splits,
    load_waveform,
    resample_tensor,
)
from recipezoo.speech.sources import (
    LABEL_COLUMNS,
    PATH_COLUMNS,
    RESERVED,
    SPHINX_LINE,
    TEXT_COLUMNS,
    pick_column,
    read_manifest,
    read_sphinx,
    resolve_path,
)
from recipezoo.speech.stages import normalize_text

log = logging.getLogger(__name__)

# Names kept importable from here: the shared ones live in recipezoo.data, the stages in sources/stages/datasets.
READ_EXTENSIONS = F.AUDIO_READ_EXTENSIONS
compile_pattern = F.compile_pattern


# -- the DataModules ---------------------------------------------------------------------------------------------
class SpeechDataModule(L.LightningDataModule):
    """What both speech DataModules share: finding items, checking files, splitting, decoding, loaders.

    Subclasses say what a target is (:meth:`_targets`), where items come from beyond manifests and folders, and what
    the synthetic twin generates.

    Args:
        root: a folder of audio files (see the module docstring).
        manifest: a CSV / TSV / JSON-lines / Sphinx ``.transcription`` file listing audio files.
        audio_root: where relative manifest paths start (default: the manifest's folder; Sphinx: ``../wav``).
        pattern: file-name pattern with ``{field}`` placeholders, e.g. ``{label}_{speaker}_{index}.wav``.
        path_column: the manifest's audio path column (default: recognised by name).
        sample_rate: the model's sample rate; every file is resampled to it.
        min_seconds: shorter files are skipped (and counted).
        max_seconds: longer files are skipped (speech recognition) or cropped (classification).
        group_by: the field whose values never span two splits (``speaker``); null: a random split.
        val_where: ``{field: [values]}``: items sent to validation.
        test_where: ``{field: [values]}``: items sent to test (``{index: [0, 1, 2, 3, 4]}``).
        val_fraction: share of the data carved for validation when no split says otherwise.
        test_fraction: likewise for test.
        max_bad_fraction: the largest share of missing, unreadable or empty files tolerated (they are skipped).
        preload: decode every file into memory once (``auto``: when it fits in ``preload_max_mb``).
        preload_max_mb: the memory ``preload=auto`` may use.
        batch_size: examples per batch.
        num_workers: DataLoader workers, or ``auto``.
        pin_memory: pin host memory, or ``auto`` (on when a GPU is present).
        seed: the split seed (and the synthetic twin's).
        synthetic: use generated audio instead of files.
        synthetic_size: generated examples per class (classification) or in all (speech recognition).
        synthetic_sample_rate: the rate the synthetic audio is generated at (null: ``sample_rate``).
        speed_perturb: speed factors training examples are played at, one drawn per example (e.g. ``[0.9, 1.0,
            1.1]``); null: off.
    """

    task = ""
    stratify_by: str | None = None  # the field a random carve keeps the proportions of

    def __init__(
        self,
        root: str | None = None,
        manifest: str | None = None,
        audio_root: str | None = None,
        pattern: str | None = None,
        path_column: str | None = None,
        sample_rate: int = 16000,
        min_seconds: float = 0.03,
        max_seconds: float | None = 30.0,
        group_by: str | None = None,
        val_where: dict[str, Any] | None = None,
        test_where: dict[str, Any] | None = None,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        max_bad_fraction: float = 0.05,
        preload: bool | str = "auto",
        preload_max_mb: float = 2048,
        batch_size: int = 32,
        num_workers: int | str = "auto",
        pin_memory: bool | str = "auto",
        seed: int = 42,
        synthetic: bool = False,
        synthetic_size: int = 24,
        synthetic_sample_rate: int | None = None,
        speed_perturb: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.root, self.manifest, self.audio_root = root, manifest, audio_root
        self.pattern = compile_pattern(pattern) if pattern else None
        self.pattern_text = pattern
        self.path_column = path_column
        self.sample_rate = int(sample_rate)
        self.min_seconds, self.max_seconds = float(min_seconds or 0), float(max_seconds) if max_seconds else None
        self.group_by = group_by
        self.val_where = stages.where_rule(val_where, "val_where")
        self.test_where = stages.where_rule(test_where, "test_where")
        self.val_fraction, self.test_fraction = float(val_fraction), float(test_fraction)
        self.max_bad_fraction = float(max_bad_fraction)
        self.preload, self.preload_max_mb = preload, float(preload_max_mb)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.loader_kwargs = loader_settings(num_workers, pin_memory)
        self.synthetic, self.synthetic_size = bool(synthetic), int(synthetic_size)
        self.synthetic_sample_rate = int(synthetic_sample_rate or sample_rate)
        self.speed_perturb = [float(f) for f in speed_perturb] if speed_perturb else None
        if self.speed_perturb and not all(0.5 <= f <= 2.0 for f in self.speed_perturb):
            raise ConfigError(
                f"data.speed_perturb={list(speed_perturb)}: factors must lie in [0.5, 2] (e.g. [0.9, 1.0, 1.1])."
            )
        if self.sample_rate < 1000:
            raise ConfigError(f"data.sample_rate={sample_rate} Hz is too low for speech; 8000 or 16000 is usual.")
        if not (
            0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1 and self.val_fraction + self.test_fraction < 1
        ):
            raise ConfigError(
                f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must be fractions that add "
                "up to less than 1 (e.g. 0.15 and 0.15)."
            )
        if preload not in (True, False, "auto"):
            raise ConfigError(f"data.preload must be true, false or auto, got {preload!r}.")
        self.datasets: dict[str, AudioDataset] = {}
        self.split_items: dict[str, list[dict[str, Any]]] = {}

    # -- what subclasses provide ---------------------------------------------------------------------------------
    def describe(self) -> str:
        if self.synthetic:
            return f"synthetic {self.task.replace('_', ' ')} data"
        return f"manifest {self.manifest}" if self.manifest else f"audio folder {self.root}"

    def synthetic_items(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def source_items(self) -> list[dict[str, Any]]:
        """Items of the real data: dicts with ``path`` and fields (``label``/``text``, ``speaker``, ``split``...)."""
        if self.manifest:
            items, columns, where = sources.manifest_items(self.manifest, self.audio_root, self.path_column)
            return self._column_targets(items, columns, where)
        if self.root:
            root = T.expand(self.root)
            return sources.folder_items(
                root,
                label_folders=self.uses_label_folders(),
                pattern=self.pattern,
                pattern_text=self.pattern_text,
                layout_hint=self._layout_hint(root),
            )
        raise ConfigError(self._no_source_message())

    def _no_source_message(self) -> str:
        raise NotImplementedError

    def _column_targets(self, items: list[dict[str, Any]], columns: list[str], where: str) -> list[dict[str, Any]]:
        """Map the manifest's label / transcript column onto the ``label`` / ``text`` field."""
        return items

    def uses_label_folders(self) -> bool:
        return False

    def _layout_hint(self, root: Any) -> str:
        return f"{root}: expected audio files matching data.pattern={self.pattern_text}."

    def skip_long(self) -> bool:
        return True

    def _fit(self, splits: dict[str, list[dict[str, Any]]]) -> None:
        """Fit what the data decides (labels, vocabulary) on the splits, unless restored from a checkpoint."""
        raise NotImplementedError

    def _targets(self, items: list[dict[str, Any]], split: str) -> tuple[list[Any], list[str] | None]:
        raise NotImplementedError

    # -- stages --------------------------------------------------------------------------------------------------
    def _missing_hint(self) -> str:
        if self.manifest and not self.audio_root:
            folder = T.expand(self.manifest).parent
            return (
                f" Relative manifest paths start at the manifest's folder ({folder}); set data.audio_root=<folder> if "
                "they start elsewhere."
            )
        return ""

    def _check_files(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return stages.check_files(
            items,
            sample_rate=self.sample_rate,
            min_seconds=self.min_seconds,
            max_seconds=self.max_seconds,
            skip_long=self.skip_long(),
            max_bad_fraction=self.max_bad_fraction,
            where=self.describe(),
            missing_hint=self._missing_hint(),
        )

    def _split(self, items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        return stages.split_items(
            items,
            val_where=self.val_where,
            test_where=self.test_where,
            group_by=self.group_by,
            val_fraction=self.val_fraction,
            test_fraction=self.test_fraction,
            seed=self.seed,
            stratify_by=self.stratify_by,
            what=self.describe(),
        )

    # -- Lightning hooks -----------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        items = self.synthetic_items() if self.synthetic else self.source_items()
        items = self._check_files(items)
        splits = self._split(items)
        self._check_held_out(splits)
        self._fit(splits)
        self.split_items = splits
        cache = self._preload(splits)
        self._check_held_out(splits)  # again: files that do not decode are dropped while preloading
        for s in SPLITS:
            targets, texts = self._targets(splits[s], s)
            self.datasets[s] = self._dataset(splits[s], targets, texts, s, cache.get(s) if cache else None)

    def _check_held_out(self, splits: dict[str, list[dict[str, Any]]]) -> None:
        """Refuse an empty validation or test split: the run would select no checkpoint, or end having evaluated
        nothing. Missing splits are carved from train, so only a zero fraction (or files that did not decode)
        leaves one empty."""
        empty = [s for s in ("val", "test") if not splits[s]]
        if not empty:
            return
        names = " and ".join("validation" if s == "val" else "test" for s in empty)
        names += " splits are" if len(empty) > 1 else " split is"
        fractions = {"val": self.val_fraction, "test": self.test_fraction}
        zero = [s for s in empty if fractions[s] <= 0]
        if zero:
            given = ", ".join(f"data.{s}_fraction=0" for s in zero)
            fix = " ".join(f"data.{s}_fraction=0.15" for s in zero)
            raise DataError(
                f"{self.describe()}: the {names} empty ({given}), so nothing would be evaluated; carve "
                f"{'them' if len(zero) > 1 else 'it'} from train: {fix}"
            )
        raise DataError(
            f"{self.describe()}: the {names} empty (its files did not decode), so nothing would be "
            "evaluated; replace the damaged files named in the warning above."
        )

    def _dataset(self, items: list, targets: list, texts: list | None, split: str, cache: list | None) -> AudioDataset:
        speed = self.speed_perturb if split == "train" else None
        return AudioDataset(items, targets, texts, self.sample_rate, cache=cache, speed_perturb=speed)

    def _preload(self, splits: dict[str, list[dict[str, Any]]]) -> dict[str, list[torch.Tensor]] | None:
        seconds = sum(i["seconds"] for s in SPLITS for i in splits[s])
        mb = seconds * self.sample_rate * 4 / 2**20
        if self.preload is False or (self.preload == "auto" and mb > self.preload_max_mb):
            if self.preload == "auto":
                log.info("Audio is decoded on the fly: %.0f MB would exceed data.preload_max_mb.", mb)
            return None
        start = time.perf_counter()
        cache, bad = decode_splits(splits, self.sample_rate)
        if bad:  # headers that read but data that does not decode
            good = sum(len(splits[s]) for s in SPLITS)
            stages.report_bad(
                good + len(bad), good, [], bad, [], max_bad_fraction=self.max_bad_fraction, where=self.describe()
            )
        log.info(
            "Decoded %d files (%.1f h, %.0f MB) into memory in %.1f s.",
            sum(map(len, cache.values())),
            seconds / 3600,
            mb,
            time.perf_counter() - start,
        )
        return cache

    def restore(self, info: dict[str, Any] | None) -> None:
        """Adopt what a checkpoint's data fitted (before ``setup``): the sample rate and what subclasses fit."""
        if not info:
            return
        pp = info.get("preprocessing") or {}
        if pp.get("sample_rate"):
            self.sample_rate = int(pp["sample_rate"])

    def _split_counts(self) -> dict[str, dict[str, float]]:
        return {
            s: {
                "files": len(self.split_items[s]),
                "hours": round(sum(i["seconds"] for i in self.split_items[s]) / 3600, 4),
            }
            for s in SPLITS
        }

    # -- loaders -------------------------------------------------------------------------------------------------

    def eval_dataloader(self, split: str) -> DataLoader:
        """Any split in a fixed order without augmentation: for validation, evaluation and prediction."""
        self.setup()
        ds = self.datasets[check_split(split)]
        return DataLoader(ds, batch_size=self.batch_size, shuffle=False, collate_fn=collate, **self.loader_kwargs)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("val")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")


class AudioClassificationDataModule(SpeechDataModule):
    """Labelled audio clips for keyword spotting / sound classification.

    Files are cropped to ``clip_seconds`` (a random window in training, the centre at evaluation); shorter files
    stay as they are (the batch is zero-padded and the front-end masks the padding).

    Args:
        label_column: the manifest's label column (default: recognised by name).
        dataset: a known dataset by name instead of ``root``/``manifest``: ``speechcommands`` (v0.02, 35 words;
            its official validation/testing lists are the splits; ``root`` is where it lives).
        download: download the known dataset when missing (needs network).
        clip_seconds: the clip length the model sees (null: whole files up to ``max_seconds``).
        labels: a fixed label list (from a checkpoint); the data's labels must be among them.
        synthetic_classes: classes of the synthetic twin.
        **kwargs: see :class:`SpeechDataModule`.
    """

    task = "audio_classification"
    stratify_by = "label"
    DATASETS = ("speechcommands",)

    def __init__(
        self,
        label_column: str | None = None,
        dataset: str | None = None,
        download: bool = False,
        clip_seconds: float | None = 1.0,
        labels: Sequence[str] | None = None,
        synthetic_classes: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if dataset is not None and str(dataset).lower() not in self.DATASETS:
            hint = close_matches(str(dataset).lower(), self.DATASETS)
            raise ConfigError(f"unknown data.dataset '{dataset}'; known: {', '.join(self.DATASETS)}.{hint}")
        self.label_column, self.dataset, self.download = label_column, dataset and str(dataset).lower(), bool(download)
        self.clip_seconds = float(clip_seconds) if clip_seconds else None
        self.labels: list[str] | None = list(labels) if labels else None
        self.synthetic_classes = int(synthetic_classes)
        if self.synthetic_classes < 2:
            raise ConfigError("data.synthetic_classes must be at least 2.")

    @property
    def clip_samples(self) -> int | None:
        if self.clip_seconds:
            return int(round(self.clip_seconds * self.sample_rate))
        return int(round(self.max_seconds * self.sample_rate)) if self.max_seconds else None

    def describe(self) -> str:
        if self.dataset and not self.synthetic:
            return f"{self.dataset} in {self.root or 'data_cache'}"
        return super().describe()

    def _no_source_message(self) -> str:
        return (
            "no audio given: pass data.root=<folder with one sub-folder per class> (or with data.pattern naming the "
            "label in file names), data.manifest=<CSV of path,label>, data.dataset=speechcommands, or "
            "data.synthetic=true to try the recipe on generated tones."
        )

    def skip_long(self) -> bool:
        return False  # long clips are cropped, not skipped

    def uses_label_folders(self) -> bool:
        return self.pattern is None or "label" not in self.pattern.groupindex

    def _layout_hint(self, root: Any) -> str:
        if self.uses_label_folders():
            return (
                f"{root}: expected one sub-folder per class (root/<label>/*.wav), or root/{{train,val,test}}/<label>/,"
                " or a data.pattern naming the label in file names"
                """ (e.g. 'data.pattern="{label}_{speaker}_{index}.wav"')."""
            )
        return super()._layout_hint(root)

    def source_items(self) -> list[dict[str, Any]]:
        if self.dataset:
            return sources.speechcommands_items(self.root, self.download)
        return super().source_items()

    def _column_targets(self, items: list[dict[str, Any]], columns: list[str], where: str) -> list[dict[str, Any]]:
        column = pick_column(columns, self.label_column, LABEL_COLUMNS, "label", where)
        return stages.label_items(items, column, where)

    def synthetic_items(self) -> list[dict[str, Any]]:
        rate = self.synthetic_sample_rate
        return synthetic.tone_classes(self.synthetic_classes, self.synthetic_size, rate, self.seed)

    def _fit(self, splits: dict[str, list[dict[str, Any]]]) -> None:
        self.labels = stages.fit_labels(splits, self.labels, self.describe())

    def _targets(self, items: list[dict[str, Any]], split: str) -> tuple[list[Any], list[str] | None]:
        assert self.labels is not None
        return stages.encode_labels(items, self.labels), None

    def _dataset(self, items: list, targets: list, texts: list | None, split: str, cache: list | None) -> AudioDataset:
        train = split == "train"
        speed = self.speed_perturb if train else None
        return AudioDataset(
            items, targets, None, self.sample_rate, "random" if train else "center", self.clip_samples, cache, speed
        )

    def restore(self, info: dict[str, Any] | None) -> None:
        """Adopt a checkpoint's labels, sample rate and clip length (before ``setup``), to evaluate or resume it."""
        super().restore(info)
        if not info:
            return
        if info.get("labels"):
            self.labels = list(info["labels"])
        pp = info.get("preprocessing") or {}
        if pp.get("clip_samples"):
            self.clip_seconds = pp["clip_samples"] / self.sample_rate

    @property
    def num_classes(self) -> int:
        return len(self.labels or [])

    @property
    def info(self) -> dict[str, Any]:
        """What the model, the checkpoint and exports need to know about this data (after ``setup``)."""
        self.setup()
        return {
            "num_classes": self.num_classes,
            "labels": list(self.labels or []),
            "sample_rate": self.sample_rate,
            "preprocessing": {
                "sample_rate": self.sample_rate,
                "clip_samples": self.clip_samples,
                "crop": "center",
                "channels": "mean",
                "min_samples": int(math.ceil(self.min_seconds * self.sample_rate)),
            },
            "split_counts": self._split_counts(),
        }

    def train_dataloader(self) -> DataLoader:
        self.setup()
        ds = self.datasets["train"]
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=True,
            drop_last=len(ds) > self.batch_size,
            collate_fn=collate,
            **self.loader_kwargs,
        )


class SpeechRecognitionDataModule(SpeechDataModule):
    """Audio with transcripts for CTC speech-to-text, over a character vocabulary built from the training split.

    Transcripts are normalised (NFC; lower-cased and punctuation removed when asked; whitespace collapsed). The
    vocabulary is every character of the normalised training transcripts, after the CTC blank (index 0). Characters
    of val/test transcripts (or of new data for a restored checkpoint) outside it are counted in a warning and left
    out of the loss targets; WER/CER are measured against the full transcripts.

    Args:
        text_column: the manifest's transcript column (default: recognised by name).
        lowercase: lower-case transcripts.
        remove_punctuation: replace punctuation (not apostrophes) by spaces.
        vocabulary: a fixed character set (a string); training transcripts with other characters are refused.
        tokens: the token list of a checkpoint (blank first), as :meth:`restore` sets it.
        bucket: batch training utterances of similar duration together (less padding).
        **kwargs: see :class:`SpeechDataModule`.
    """

    task = "speech_recognition"

    def __init__(
        self,
        text_column: str | None = None,
        lowercase: bool = True,
        remove_punctuation: bool = False,
        vocabulary: str | None = None,
        tokens: Sequence[str] | None = None,
        bucket: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("synthetic_size", 48)
        super().__init__(**kwargs)
        self.text_column, self.lowercase, self.remove_punctuation = (
            text_column,
            bool(lowercase),
            bool(remove_punctuation),
        )
        self.vocabulary = vocabulary
        self.tokens: list[str] | None = list(tokens) if tokens else None
        self.bucket = bool(bucket)
        self.unknown: Counter = Counter()

    def _no_source_message(self) -> str:
        return (
            "no transcribed audio given: pass data.manifest=<CSV/TSV of path,transcript, JSON lines, or a Sphinx "
            ".transcription file>, or data.synthetic=true to try the recipe on generated audio."
        )

    def source_items(self) -> list[dict[str, Any]]:
        if not self.manifest:
            raise ConfigError(self._no_source_message())
        return super().source_items()

    def _column_targets(self, items: list[dict[str, Any]], columns: list[str], where: str) -> list[dict[str, Any]]:
        column = pick_column(columns, self.text_column, TEXT_COLUMNS, "text", where)
        return stages.transcript_items(items, column, where, self.lowercase, self.remove_punctuation)

    def synthetic_items(self) -> list[dict[str, Any]]:
        return synthetic.tone_words(self.synthetic_size, self.synthetic_sample_rate, self.seed)

    def _fit(self, splits: dict[str, list[dict[str, Any]]]) -> None:
        if self.tokens is None:
            self.tokens = stages.fit_tokens(splits["train"], self.vocabulary, self.lowercase)
        self.unknown.update(stages.unknown_characters(splits, self.tokens))

    def _targets(self, items: list[dict[str, Any]], split: str) -> tuple[list[Any], list[str] | None]:
        assert self.tokens is not None
        return stages.encode_transcripts(items, self.tokens), [i["text"] for i in items]

    def restore(self, info: dict[str, Any] | None) -> None:
        """Adopt a checkpoint's tokens, sample rate and text normalisation (before ``setup``)."""
        super().restore(info)
        if not info:
            return
        if info.get("tokens"):
            self.tokens = list(info["tokens"])
        pp = info.get("preprocessing") or {}
        for key in ("lowercase", "remove_punctuation"):
            if key in pp:
                setattr(self, key, bool(pp[key]))

    @property
    def info(self) -> dict[str, Any]:
        """What the model, the checkpoint and exports need to know about this data (after ``setup``)."""
        self.setup()
        assert self.tokens is not None
        return {
            "tokens": list(self.tokens),
            "num_tokens": len(self.tokens),
            "blank": 0,
            "sample_rate": self.sample_rate,
            "preprocessing": {
                "sample_rate": self.sample_rate,
                "channels": "mean",
                "lowercase": self.lowercase,
                "remove_punctuation": self.remove_punctuation,
                "min_samples": int(math.ceil(self.min_seconds * self.sample_rate)),
                "max_seconds": self.max_seconds,
            },
            "split_counts": self._split_counts(),
        }

    def train_dataloader(self) -> DataLoader:
        self.setup()
        ds = self.datasets["train"]
        drop_last = len(ds) > self.batch_size
        if not self.bucket:
            return DataLoader(
                ds,
                batch_size=self.batch_size,
                shuffle=True,
                drop_last=drop_last,
                collate_fn=collate,
                **self.loader_kwargs,
            )
        lengths = [int(i["seconds"] * 1000) for i in ds.items]
        sampler = BucketBatchSampler(RandomSampler(ds), self.batch_size, drop_last, lengths)
        return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, **self.loader_kwargs)


# The names this module has always offered; they now live in the stage modules and recipezoo.data.
__all__ = [
    "LABEL_COLUMNS",
    "PATH_COLUMNS",
    "READ_EXTENSIONS",
    "RESERVED",
    "SPHINX_LINE",
    "SPLITS",
    "SPLIT_ALIASES",
    "TEXT_COLUMNS",
    "AudioClassificationDataModule",
    "AudioDataset",
    "BucketBatchSampler",
    "SpeechDataModule",
    "SpeechRecognitionDataModule",
    "collate",
    "compile_pattern",
    "decode_item",
    "load_waveform",
    "natural_key",
    "normalize_text",
    "pick_column",
    "read_manifest",
    "read_sphinx",
    "resample_tensor",
    "resolve_path",
]
