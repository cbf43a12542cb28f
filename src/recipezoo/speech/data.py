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
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from recipezoo.core.data import loader_settings, stratified_split
from recipezoo.core.errors import ConfigError, DataError, close_matches
from recipezoo.runtime.audio import AUDIO_EXTENSIONS, BLANK, AudioReadError, center_crop, read_audio

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}
# Column names recognised when data.path_column / label_column / text_column are not set (compared lower-cased).
PATH_COLUMNS = ("path", "audio", "audio_filepath", "audio_path", "filepath", "file_path", "file", "filename", "wav")
LABEL_COLUMNS = ("label", "class", "category", "target", "keyword", "command")
TEXT_COLUMNS = ("transcript", "text", "sentence", "transcription", "normalized_text", "words", "utterance")
SPHINX_LINE = re.compile(r"^\s*(?:<s>)?\s*(?P<text>.*?)\s*(?:</s>)?\s*\((?P<id>[^()\s]+)\)\s*$")
READ_EXTENSIONS = (*AUDIO_EXTENSIONS, ".sph")  # libsndfile also reads (uncompressed) NIST SPHERE
RESERVED = frozenset({"audio", "rate", "channels", "seconds", "path"})  # item keys the code sets itself


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``2`` before ``10``: label lists read the way people number things."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(text))]


# -- audio ------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _resampler(orig: int, new: int) -> torch.nn.Module:
    import torchaudio.transforms as T

    return T.Resample(orig, new)  # the kernel is computed once per rate pair


def load_waveform(path: str | os.PathLike, sample_rate: int) -> torch.Tensor:
    """Decode, mix to mono and resample (``torchaudio.functional.resample``'s filter) a file: ``(T,)`` float32.

    Raises:
        DataError: the file cannot be decoded or holds no samples.
    """
    try:
        wave, rate, _ = read_audio(path)
    except AudioReadError as e:
        raise DataError(str(e)) from None
    return resample_tensor(torch.from_numpy(wave), rate, sample_rate)


def resample_tensor(wave: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    if int(orig) == int(new):
        return wave
    with torch.no_grad():
        return _resampler(int(orig), int(new))(wave)


# -- text -------------------------------------------------------------------------------------------------------
def normalize_text(text: str, lowercase: bool = True, remove_punctuation: bool = False) -> str:
    """Unicode NFC, optionally lower-cased and without punctuation (apostrophes kept), whitespace collapsed."""
    text = unicodedata.normalize("NFC", str(text))
    if lowercase:
        text = text.lower()
    if remove_punctuation:
        text = "".join(
            " " if unicodedata.category(c).startswith("P") and c != "'" else c for c in text.replace("\u2019", "'")
        )
    return " ".join(text.split())


# -- manifests and patterns -------------------------------------------------------------------------------------
def compile_pattern(pattern: str) -> re.Pattern:
    """A file-name pattern with ``{field}`` placeholders (``{label}_{speaker}_{index}.wav``) as a regex.

    A field matches any run of characters without ``/`` (the shortest that lets the rest match); ``{_}`` matches
    without keeping the value. Matched against the path relative to the root when the pattern holds a ``/``, else
    against the file name.
    """
    parts, out, seen = re.split(r"(\{[^{}]*\})", str(pattern)), [], set()
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1].strip()
            if name in ("", "_"):
                out.append(r"[^/]+?")
                continue
            if not name.isidentifier():
                raise ConfigError(f"data.pattern field '{{{name}}}' must be a plain name such as {{label}}.")
            if name in seen:
                raise ConfigError(f"data.pattern names field '{{{name}}}' twice.")
            seen.add(name)
            out.append(f"(?P<{name}>[^/]+?)")
        else:
            out.append(re.escape(part))
    return re.compile("^" + "".join(out) + "$")


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV / TSV / JSON-lines manifest as dicts of strings (a header-less two-column CSV is read as
    ``path, <label or transcript>``)."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".json", ".ndjson"):
            rows = []
            with open(path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            rows.append({str(k): "" if v is None else str(v) for k, v in json.loads(line).items()})
                        except (json.JSONDecodeError, AttributeError):
                            raise DataError(f"{path}, line {n}: not a JSON object ({line.strip()[:80]!r}).") from None
            return rows
        sep = "\t" if suffix in (".tsv", ".tab") else ","
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True)
        if len(frame.columns) == 2 and str(frame.columns[0]).lower().endswith(READ_EXTENSIONS):
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, header=None, names=["path", "value"])
    except pd.errors.EmptyDataError:
        raise DataError(f"manifest {path} is empty.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise DataError(f"cannot read manifest {path}: {first}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.to_dict("records")


def pick_column(
    rows: list[dict[str, str]], wanted: str | None, candidates: Sequence[str], what: str, where: str
) -> str:
    """The column to use: ``wanted`` if given (it must exist), else the first recognised candidate."""
    columns = list(rows[0]) if rows else []
    if wanted:
        if wanted not in columns:
            raise ConfigError(
                f"column '{wanted}' not found in {where}; its columns are: {', '.join(columns)}."
                + close_matches(wanted, columns)
            )
        return wanted
    lowered = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    if "value" in columns and what != "path":  # a header-less two-column file
        return "value"
    raise DataError(
        f"{where} has no {what} column (looked for {', '.join(candidates)}); its columns are: {', '.join(columns)}. "
        f"Name it with data.{what}_column=<column>."
    )


def resolve_path(value: str, base: Path) -> Path:
    p = Path(os.path.expanduser(value.strip()))
    return p if p.is_absolute() else base / p


def read_sphinx(path: Path, audio_root: Path | None) -> list[dict[str, str]]:
    """A CMU Sphinx transcription file (``<s> TEXT </s> (utterance id)`` per line) as manifest rows.

    Audio paths come from the ``.fileids`` file beside it (``<name>.fileids``, one path per line relative to the
    audio root, without extension), else from a search of the audio root for files named after the ids. The audio
    root is ``audio_root``, else the corpus's ``wav/`` folder (``<manifest folder>/../wav``), else the manifest's
    folder. The speaker is the audio file's folder name (Sphinx corpora keep one folder per speaker).
    """
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    parsed = []
    for n, line in enumerate(lines, 1):
        m = SPHINX_LINE.match(line)
        if not m:
            raise DataError(f"{path}, line {n}: expected '<s> TEXT </s> (utterance_id)', got {line.strip()[:80]!r}.")
        parsed.append((m["id"], m["text"]))
    if audio_root is None:
        wav = path.parent.parent / "wav"
        audio_root = wav if wav.is_dir() else path.parent
    fileids = path.with_suffix(".fileids")
    stems: dict[str, Path] = {}
    if fileids.is_file():
        ids = [line.strip() for line in fileids.read_text().splitlines() if line.strip()]
        if len(ids) != len(parsed):
            raise DataError(
                f"{fileids.name} lists {len(ids)} files but {path.name} has {len(parsed)} transcripts; they must "
                "match line by line."
            )
        for (uid, _), fid in zip(parsed, ids):
            stems[uid] = audio_root / fid
    else:
        for f in audio_root.rglob("*"):
            if f.suffix.lower() in READ_EXTENSIONS:
                stems.setdefault(f.stem, f.with_suffix(""))
    rows = []
    for uid, text in parsed:
        stem = stems.get(uid, audio_root / uid)
        found = next((stem.with_suffix(e) for e in READ_EXTENSIONS if stem.with_suffix(e).is_file()), None)
        target = found or stem.with_suffix(".wav")
        rows.append({"path": str(target), "text": text, "id": uid, "speaker": target.parent.name})
    return rows


# -- datasets and batches ----------------------------------------------------------------------------------------
class AudioDataset(Dataset):
    """Items (dicts with ``path`` or in-memory ``audio``) decoded at ``sample_rate``, with their targets.

    Args:
        items: the split's items.
        targets: per item, a class index or a token-id list.
        texts: per item, the reference transcript (speech recognition) or None.
        sample_rate: the model's sample rate.
        crop: ``random`` (training) or ``center`` crop to ``clip_samples``, or None.
        clip_samples: the classifier's clip length in samples, or None.
        cache: decoded waveforms shared across datasets of the same items (preloading), or None.
        speed_perturb: speed factors to draw from per example (training), e.g. ``(0.9, 1.0, 1.1)``, or None.
    """

    def __init__(
        self,
        items: list[dict[str, Any]],
        targets: Sequence[Any],
        texts: Sequence[str] | None,
        sample_rate: int,
        crop: str | None = None,
        clip_samples: int | None = None,
        cache: list[torch.Tensor] | None = None,
        speed_perturb: Sequence[float] | None = None,
    ) -> None:
        self.items, self.targets, self.texts = items, list(targets), texts
        self.sample_rate, self.crop, self.clip_samples, self.cache = sample_rate, crop, clip_samples, cache
        self.speed_perturb = [float(f) for f in speed_perturb] if speed_perturb else None

    def __len__(self) -> int:
        return len(self.items)

    def waveform(self, i: int) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[i]
        return decode_item(self.items[i], self.sample_rate)

    def __getitem__(self, i: int) -> dict[str, Any]:
        wave = self.waveform(i)
        if self.speed_perturb:
            # Speed perturbation (Ko et al., 2015): play the clip faster or slower, pitch and formants shifting
            # with it, by resampling from sample_rate * factor; the transcript or label stays.
            factor = self.speed_perturb[int(torch.randint(len(self.speed_perturb), (1,)))]
            if factor != 1.0:
                wave = resample_tensor(wave, int(round(self.sample_rate * factor)), self.sample_rate)
        n = self.clip_samples
        if n and wave.shape[0] > n:
            if self.crop == "random":
                start = int(torch.randint(0, wave.shape[0] - n + 1, (1,)))
                wave = wave[start : start + n]
            else:
                wave = center_crop(wave, n)
        out = {"audio": wave, "target": self.targets[i], "index": i}
        if self.texts is not None:
            out["text"] = self.texts[i]
        return out


def decode_item(item: dict[str, Any], sample_rate: int) -> torch.Tensor:
    """An item's waveform at ``sample_rate``: in-memory ``audio`` (synthetic) or its decoded ``path``."""
    if item.get("audio") is not None:
        return resample_tensor(torch.from_numpy(item["audio"]), item["rate"], sample_rate)
    return load_waveform(item["path"], sample_rate)


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Zero-pad a list of examples into one batch (see the module docstring for the keys)."""
    lengths = torch.tensor([b["audio"].shape[0] for b in batch], dtype=torch.long)
    audio = torch.zeros(len(batch), int(lengths.max()))
    for i, b in enumerate(batch):
        audio[i, : b["audio"].shape[0]] = b["audio"]
    out: dict[str, Any] = {"audio": audio, "lengths": lengths, "index": torch.tensor([b["index"] for b in batch])}
    if "text" not in batch[0]:
        out["label"] = torch.tensor([b["target"] for b in batch], dtype=torch.long)
        return out
    target_lengths = torch.tensor([len(b["target"]) for b in batch], dtype=torch.long)
    targets = torch.zeros(len(batch), max(1, int(target_lengths.max())), dtype=torch.long)
    for i, b in enumerate(batch):
        targets[i, : len(b["target"])] = torch.as_tensor(b["target"], dtype=torch.long)
    out.update(targets=targets, target_lengths=target_lengths, text=[b["text"] for b in batch])
    return out


class BucketBatchSampler(BatchSampler):
    """Batches of similar durations (less padding), in random order.

    The sampler's order (random in training; Lightning substitutes a distributed sampler under DDP) is cut into pools
    of ``pool`` batches; each pool is sorted by length and cut into batches; all batches are then shuffled with
    torch's global RNG (saved in checkpoints, so a resumed run draws the same batches).

    Args:
        sampler: yields dataset indices.
        batch_size: examples per batch.
        drop_last: drop batches smaller than ``batch_size``.
        lengths: the length of every dataset example (any unit).
        pool: batches per sorted pool (larger: less padding, less randomness).
    """

    def __init__(
        self, sampler: Iterable[int], batch_size: int, drop_last: bool, lengths: Sequence[int], pool: int = 50
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.lengths, self.pool = list(lengths), int(pool)

    def _batches(self) -> list[list[int]]:
        indices = list(self.sampler)
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(indices), size):
            chunk = sorted(indices[start : start + size], key=lambda i: self.lengths[i])
            batches += [chunk[j : j + self.batch_size] for j in range(0, len(chunk), self.batch_size)]
        return [b for b in batches if len(b) == self.batch_size or not self.drop_last]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches()
        for k in torch.randperm(len(batches)).tolist():
            yield batches[k]

    def __len__(self) -> int:
        n, size = len(self.sampler), self.batch_size * self.pool  # type: ignore[arg-type]
        full, rest = divmod(n, size)
        per = (lambda m: m // self.batch_size) if self.drop_last else (lambda m: math.ceil(m / self.batch_size))
        return full * per(size) + per(rest)


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
        self.val_where, self.test_where = self._where(val_where, "val_where"), self._where(test_where, "test_where")
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

    @staticmethod
    def _where(rule: Any, name: str) -> dict[str, set[str]]:
        """``{field: values}`` with every value a string (file-name fields are strings: 0 and "0" are the same)."""
        if not rule:
            return {}
        if not hasattr(rule, "items"):
            raise ConfigError(f"data.{name} must map a field to values, e.g. data.{name}={{speaker:[theo]}}.")
        out = {}
        for field, values in rule.items():
            if isinstance(values, str) or not isinstance(values, Iterable):
                values = [values]
            out[str(field)] = {str(v) for v in values}
        return out

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
            return self._manifest_items()
        if self.root:
            return self._folder_items()
        raise ConfigError(self._no_source_message())

    def _no_source_message(self) -> str:
        raise NotImplementedError

    def _fit(self, splits: dict[str, list[dict[str, Any]]]) -> None:
        """Fit what the data decides (labels, vocabulary) on the splits, unless restored from a checkpoint."""
        raise NotImplementedError

    def _targets(self, items: list[dict[str, Any]], split: str) -> tuple[list[Any], list[str] | None]:
        raise NotImplementedError

    # -- finding items -------------------------------------------------------------------------------------------
    def _manifest_items(self) -> list[dict[str, Any]]:
        path = Path(os.path.expanduser(str(self.manifest)))
        if not path.is_file():
            raise DataError(f"manifest not found: {path}. Pass data.manifest=<CSV/TSV/JSON-lines file of audio paths>.")
        audio_root = Path(os.path.expanduser(str(self.audio_root))) if self.audio_root else None
        if path.suffix.lower() == ".transcription":
            rows = read_sphinx(path.absolute(), audio_root)  # its paths come out absolute
            path_column, base = "path", Path()
        else:
            rows = read_manifest(path)
            if not rows:
                raise DataError(f"manifest {path} has a header but no rows.")
            path_column = pick_column(rows, self.path_column, PATH_COLUMNS, "path", f"manifest {path}")
            base = audio_root or path.parent
        items = []
        for row in rows:
            p = resolve_path(row[path_column], base)
            # Columns named like the internal keys (audio, rate, ...) would be mistaken for decoded audio: dropped.
            fields = {k: str(v) for k, v in row.items() if k != path_column and k not in RESERVED}
            items.append({**fields, "path": str(p), "dir": p.parent.name})
        return self._rename_target(items, rows, str(path))

    def _rename_target(self, items: list[dict[str, Any]], rows: list[dict[str, str]], where: str) -> list[dict]:
        """Subclasses map their label / transcript column onto the ``label`` / ``text`` field."""
        return items

    def _audio_files(self, folder: Path) -> list[Path]:
        return sorted(
            f
            for f in folder.rglob("*")
            if f.is_file() and f.suffix.lower() in READ_EXTENSIONS and not f.name.startswith(".")
        )

    def _folder_items(self) -> list[dict[str, Any]]:
        root = Path(os.path.expanduser(str(self.root)))
        if not root.is_dir():
            raise DataError(f"audio folder not found: {root}. Pass data.root=<folder of audio files>.")
        subdirs = {d.name.lower(): d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")}
        split_dirs = {SPLIT_ALIASES[n]: d for n, d in subdirs.items() if n in SPLIT_ALIASES}
        sources = split_dirs if "train" in split_dirs else {None: root}
        items, unmatched = [], []
        for split, folder in sources.items():
            for f in self._audio_files(folder):
                rel = f.relative_to(folder).as_posix()
                item: dict[str, Any] = {"path": str(f), "dir": f.parent.name}
                if split:
                    item["split"] = split
                if self.uses_label_folders():
                    if "/" not in rel:
                        unmatched.append(rel)
                        continue
                    item["label"] = rel.split("/", 1)[0]
                if self.pattern is not None:
                    m = self.pattern.match(rel if "/" in (self.pattern_text or "") else f.name)
                    if not m:
                        unmatched.append(rel)
                        continue
                    item.update(m.groupdict())
                items.append(item)
        if not items:
            found = sum(len(self._audio_files(d)) for d in sources.values())
            if found == 0:
                raise DataError(
                    f"no audio files in {root} (looked for {', '.join(READ_EXTENSIONS[:6])} ... in sub-folders too)."
                )
            example = ", ".join(unmatched[:3])
            raise DataError(f"{self._layout_hint(root)} None of the {found} audio files fits it (e.g. {example}).")
        if unmatched:
            log.warning(
                "%s: %d audio file(s) do not fit the expected layout and are ignored: %s",
                root,
                len(unmatched),
                ", ".join(unmatched[:5]) + (" ..." if len(unmatched) > 5 else ""),
            )
        return items

    def uses_label_folders(self) -> bool:
        return False

    def _layout_hint(self, root: Path) -> str:
        return f"{root}: expected audio files matching data.pattern={self.pattern_text}."

    # -- checking files ------------------------------------------------------------------------------------------
    def _check_files(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Read every file's header: skip missing, unreadable, empty, too short (and, for speech recognition, too
        long) files with counts; note what will be converted."""
        import soundfile as sf

        missing, unreadable, empty, short, long = [], [], [], [], []
        rates: Counter = Counter()
        stereo = 0
        good = []
        for item in items:
            if item.get("audio") is not None:
                frames, rate, channels = len(item["audio"]), int(item["rate"]), 1
            else:
                path = item["path"]
                if not os.path.isfile(path):
                    missing.append(path)
                    continue
                try:
                    info = sf.info(path)
                    frames, rate, channels = int(info.frames), int(info.samplerate), int(info.channels)
                except Exception:
                    unreadable.append(path)
                    continue
            if frames <= 0 or rate <= 0:
                empty.append(item.get("path", "<generated>"))
                continue
            seconds = frames / rate
            if seconds < self.min_seconds:
                short.append(item.get("path", "<generated>"))
                continue
            if self.max_seconds and seconds > self.max_seconds and self.skip_long():
                long.append(item.get("path", "<generated>"))
                continue
            item["seconds"], item["rate"], item["channels"] = seconds, rate, channels
            rates[rate] += 1
            stereo += channels > 1
            good.append(item)
        self._report_bad(len(items), len(good), missing, unreadable, empty)
        for what, found, why in (
            ("shorter than data.min_seconds", short, self.min_seconds),
            ("longer than data.max_seconds", long, self.max_seconds),
        ):
            if found:
                log.warning(
                    "Skipped %d file(s) %s=%s: %s",
                    len(found),
                    what,
                    why,
                    ", ".join(map(str, found[:3])) + (" ..." if len(found) > 3 else ""),
                )
        converted = {r: n for r, n in rates.items() if r != self.sample_rate}
        if converted or stereo:
            notes = []
            if converted:
                froms = ", ".join(f"{n} at {r} Hz" for r, n in sorted(converted.items()))
                notes.append(f"{sum(converted.values())} resampled to {self.sample_rate} Hz ({froms})")
            if stereo:
                notes.append(f"{stereo} multi-channel file(s) mixed to mono")
            log.info("%s: converted on load: %s.", self.describe(), "; ".join(notes))
        return good

    def skip_long(self) -> bool:
        return True

    def _report_bad(self, total: int, good: int, missing: list, unreadable: list, empty: list) -> None:
        bad = len(missing) + len(unreadable) + len(empty)
        if not bad:
            return
        parts = []
        for what, found in (("missing", missing), ("unreadable", unreadable), ("empty", empty)):
            if found:
                parts.append(
                    f"{len(found)} {what} (" + ", ".join(map(str, found[:3])) + (" ..." if len(found) > 3 else "") + ")"
                )
        summary = "; ".join(parts)
        hint = ""
        if missing and self.manifest and not self.audio_root:
            folder = Path(str(self.manifest)).expanduser().parent
            hint = (
                f" Relative manifest paths start at the manifest's folder ({folder}); set data.audio_root=<folder> if "
                "they start elsewhere."
            )
        if not good:
            raise DataError(f"{self.describe()}: none of the {total} audio files can be used: {summary}.{hint}")
        if bad / total > self.max_bad_fraction:
            raise DataError(
                f"{self.describe()}: {bad} of {total} audio files cannot be used ({bad / total:.1%} > "
                f"data.max_bad_fraction={self.max_bad_fraction}): {summary}.{hint}"
            )
        log.warning("%s: skipped %d of %d audio files: %s.%s", self.describe(), bad, total, summary, hint)

    # -- splitting -----------------------------------------------------------------------------------------------
    def _matches(self, item: dict[str, Any], rule: dict[str, set[str]]) -> bool:
        return bool(rule) and all(str(item.get(field)) in values for field, values in rule.items())

    def _check_rule_fields(self, items: list[dict[str, Any]]) -> None:
        fields = sorted({k for item in items for k in item if k not in ("audio", "path", "rate", "channels")})
        for name, rule in (("val_where", self.val_where), ("test_where", self.test_where)):
            for field, values in rule.items():
                if not any(field in item for item in items):
                    raise ConfigError(
                        f"data.{name} uses field '{field}', which the data does not have; its fields are: "
                        f"{', '.join(fields)}.{close_matches(field, fields)} File-name fields come from data.pattern."
                    )
                if not any(str(item.get(field)) in values for item in items):
                    seen = sorted({str(item.get(field)) for item in items}, key=natural_key)
                    raise DataError(
                        f"data.{name}: no file has {field} in {sorted(values, key=natural_key)}; its values are: "
                        f"{', '.join(seen[:20])}{' ...' if len(seen) > 20 else ''}."
                    )
        if self.group_by and not all(self.group_by in item for item in items):
            raise ConfigError(
                f"data.group_by='{self.group_by}' is not a field of every file; the fields are: {', '.join(fields)}."
                f"{close_matches(self.group_by, fields)} File-name fields come from data.pattern (e.g. "
                "{label}_{speaker}_{index}.wav), manifest fields from its columns; 'dir' is each file's folder."
            )

    def _split(self, items: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        self._check_rule_fields(items)
        splits: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        for item in items:
            if self._matches(item, self.test_where):
                splits["test"].append(item)
            elif self._matches(item, self.val_where):
                splits["val"].append(item)
            else:
                named = str(item.get("split", "train") or "train").strip().lower()
                if named not in SPLIT_ALIASES:
                    raise DataError(
                        f"{self.describe()}: unknown split '{item.get('split')}' (for {item.get('path')}); use "
                        "train, val or test."
                    )
                splits[SPLIT_ALIASES[named]].append(item)
        missing = [s for s in ("val", "test") if not splits[s]]
        how = []
        if missing:
            pool = splits["train"]
            fractions = [self.val_fraction if s == "val" else self.test_fraction for s in missing]
            total = len(items)
            # Fractions are of all the data, as when nothing is given explicitly.
            fractions = [min(0.95, f * total / max(1, len(pool))) for f in fractions]
            if self.group_by:
                parts = self._group_split([str(i[self.group_by]) for i in pool], fractions)
                how.append(f"{'/'.join(missing)} carved by {self.group_by} (seed {self.seed})")
            else:
                parts = stratified_split(self._strata(pool), fractions, self.seed, self.describe())
                how.append(f"{'/'.join(missing)} carved at random{self._strata_note()} (seed {self.seed})")
            splits["train"] = [pool[i] for i in parts[0]]
            for s, idx in zip(missing, parts[1:]):
                splits[s] = [pool[i] for i in idx]
        if not splits["train"]:
            raise DataError(f"{self.describe()}: no training files are left after the val/test split.")
        if self.group_by:
            seen: dict[str, str] = {}
            shared = set()
            for s in SPLITS:
                for item in splits[s]:
                    g = str(item.get(self.group_by))
                    if seen.setdefault(g, s) != s:
                        shared.add(g)
            if shared:
                log.warning(
                    "%d %s value(s) appear in more than one split (from explicit splits or rules): %s",
                    len(shared),
                    self.group_by,
                    ", ".join(sorted(shared, key=natural_key)[:5]),
                )
        log.info(
            "%s: %s files%s",
            self.describe(),
            ", ".join(f"{s} {len(splits[s])}" for s in SPLITS),
            f"; {', '.join(how)}" if how else "",
        )
        return splits

    def _strata(self, items: list[dict[str, Any]]) -> list[int]:
        return [0] * len(items)

    def _strata_note(self) -> str:
        return ""

    def _group_split(self, groups: list[str], fractions: Sequence[float]) -> list[list[int]]:
        """Whole groups to each part until it holds its fraction of the items (seeded order); the rest train."""
        unique = sorted(set(groups), key=natural_key)
        if len(unique) < len(fractions) + 1:
            raise DataError(
                f"{self.describe()}: {len(unique)} distinct {self.group_by} value(s) are too few to split train/"
                f"val/test by {self.group_by}; add data, name the held-out ones with data.test_where / "
                "data.val_where, or drop data.group_by."
            )
        order = [unique[i] for i in np.random.default_rng(self.seed).permutation(len(unique))]
        sizes = Counter(groups)
        assign: dict[str, int] = {}
        filled = [0] * len(fractions)
        targets = [f * len(groups) for f in fractions]
        for n, g in enumerate(order):
            part = next(
                (
                    k
                    for k in range(len(fractions))
                    if filled[k] < targets[k] and (filled[k] == 0 or filled[k] + sizes[g] / 2 <= targets[k])
                ),
                None,
            )
            remaining = len(order) - n
            if part is not None and remaining > 1:  # never give away the last group: training needs data
                assign[g] = part + 1
                filled[part] += sizes[g]
            else:
                assign[g] = 0
        parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
        for i, g in enumerate(groups):
            parts[assign[g]].append(i)
        for k, f in enumerate(fractions, 1):
            if f > 0 and not parts[k]:
                raise DataError(
                    f"{self.describe()}: the {self.group_by} groups are too few or too large to carve "
                    f"{f:.0%} for a split; name held-out groups with data.val_where / data.test_where."
                )
        return parts

    # -- Lightning hooks -----------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        items = self.synthetic_items() if self.synthetic else self.source_items()
        items = self._check_files(items)
        splits = self._split(items)
        self._fit(splits)
        self.split_items = splits
        cache = self._preload(splits)
        for s in SPLITS:
            targets, texts = self._targets(splits[s], s)
            self.datasets[s] = self._dataset(splits[s], targets, texts, s, cache.get(s) if cache else None)

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
        cache: dict[str, list[torch.Tensor]] = {}
        bad: list[str] = []
        for s in SPLITS:
            keep_items, keep = [], []
            for item in splits[s]:
                try:
                    keep.append(decode_item(item, self.sample_rate))
                    keep_items.append(item)
                except DataError:
                    bad.append(item["path"])
            splits[s][:] = keep_items
            cache[s] = keep
        if bad:  # headers that read but data that does not decode
            good = sum(len(splits[s]) for s in SPLITS)
            self._report_bad(good + len(bad), good, [], bad, [])
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
    @staticmethod
    def _check_split(split: str) -> str:
        if split not in SPLITS:
            raise ConfigError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}.")
        return split

    def eval_dataloader(self, split: str) -> DataLoader:
        """Any split in a fixed order without augmentation: for validation, evaluation and prediction."""
        self.setup()
        ds = self.datasets[self._check_split(split)]
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

    def _layout_hint(self, root: Path) -> str:
        if self.uses_label_folders():
            return (
                f"{root}: expected one sub-folder per class (root/<label>/*.wav), or root/{{train,val,test}}/<label>/,"
                " or a data.pattern naming the label in file names (e.g. data.pattern='{label}_{speaker}_{index}.wav')."
            )
        return super()._layout_hint(root)

    def source_items(self) -> list[dict[str, Any]]:
        if self.dataset:
            return self._speechcommands_items()
        return super().source_items()

    def _rename_target(self, items: list[dict[str, Any]], rows: list[dict[str, str]], where: str) -> list[dict]:
        column = pick_column(rows, self.label_column, LABEL_COLUMNS, "label", where)
        for item in items:
            item["label"] = str(item.pop(column) if column != "label" else item["label"]).strip()
        empty = sum(1 for item in items if not item["label"])
        if empty:
            raise DataError(f"{where}: {empty} row(s) have an empty '{column}'; every file needs a label.")
        return items

    def _speechcommands_items(self) -> list[dict[str, Any]]:
        from torchaudio.datasets import SPEECHCOMMANDS

        root = Path(os.path.expanduser(str(self.root or "data_cache")))
        if self.download:
            root.mkdir(parents=True, exist_ok=True)
        items = []
        for subset, split in (("training", "train"), ("validation", "val"), ("testing", "test")):
            try:
                ds = SPEECHCOMMANDS(str(root), url="speech_commands_v0.02", download=self.download, subset=subset)
            except (RuntimeError, FileNotFoundError, OSError) as e:
                raise DataError(
                    f"Speech Commands not found under {root} ({str(e).splitlines()[0][:160]}). Pass data.download=true "
                    "(needs network) or data.root=<folder holding SpeechCommands/speech_commands_v0.02>."
                ) from None
            for n in range(len(ds)):
                rel, _, label, speaker, utterance = ds.get_metadata(n)
                path = root / "SpeechCommands" / rel
                items.append(
                    {
                        "path": str(path),
                        "label": label,
                        "speaker": speaker,
                        "index": str(utterance),
                        "split": split,
                        "dir": label,
                    }
                )
        return items

    def synthetic_items(self) -> list[dict[str, Any]]:
        """Tones with a class-dependent pitch (4 semitones apart), two speaker-dependent harmonics, noise and a
        random onset; durations 0.3-1.3 s so some exceed a 1 s clip. Fields: label, speaker (4), index."""
        rng = np.random.default_rng(self.seed)
        rate = self.synthetic_sample_rate
        items = []
        for c in range(self.synthetic_classes):
            f0 = 220.0 * 2 ** (4 * c / 12)
            for i in range(self.synthetic_size):
                speaker = i % 4
                n = int(rng.uniform(0.3, 1.3) * rate)
                t = np.arange(n) / rate
                f = f0 * (1 + 0.02 * (speaker - 1.5)) * (1 + 0.01 * rng.standard_normal())
                wave = np.sin(2 * np.pi * f * t) + (0.2 + 0.15 * speaker) * np.sin(4 * np.pi * f * t)
                onset = int(rng.uniform(0.0, 0.3) * n)
                wave[:onset] = 0
                wave = 0.3 * wave / np.abs(wave).max() + 0.02 * rng.standard_normal(n)
                items.append(
                    {
                        "audio": wave.astype(np.float32),
                        "rate": rate,
                        "label": f"class_{c}",
                        "speaker": f"spk{speaker}",
                        "index": str(i),
                    }
                )
        return items

    def _strata(self, items: list[dict[str, Any]]) -> list[int]:
        names = sorted({i["label"] for i in items})
        return [names.index(i["label"]) for i in items]

    def _strata_note(self) -> str:
        return ", stratified by label"

    def _fit(self, splits: dict[str, list[dict[str, Any]]]) -> None:
        found = sorted({i["label"] for s in SPLITS for i in splits[s]}, key=natural_key)
        if self.labels is None:
            self.labels = found
        else:
            unknown = sorted(set(found) - set(self.labels), key=natural_key)
            if unknown:
                raise DataError(
                    f"label mismatch: the data has classes {unknown[:20]} that the checkpoint does not know (it was "
                    f"trained on {len(self.labels)} classes: {self.labels[:20]}). Use data with the checkpoint's "
                    "classes, or train a new model."
                )
        if len(self.labels) < 2:
            raise DataError(
                f"{self.describe()} has only one class ({self.labels}); a classifier needs at least 2 (one sub-folder "
                "or label value per class)."
            )
        counts = Counter(i["label"] for i in splits["train"])
        absent = [label for label in self.labels if not counts[label]]
        if absent:
            log.warning("Classes with no training file (the model cannot learn them): %s", ", ".join(absent[:10]))

    def _targets(self, items: list[dict[str, Any]], split: str) -> tuple[list[Any], list[str] | None]:
        assert self.labels is not None
        index = {name: k for k, name in enumerate(self.labels)}
        return [index[i["label"]] for i in items], None

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

    def _rename_target(self, items: list[dict[str, Any]], rows: list[dict[str, str]], where: str) -> list[dict]:
        column = pick_column(rows, self.text_column, TEXT_COLUMNS, "text", where)
        kept, empty = [], []
        for item in items:
            text = normalize_text(
                item.pop(column) if column != "text" else item["text"], self.lowercase, self.remove_punctuation
            )
            if not text:
                empty.append(item["path"])
                continue
            item["text"] = text
            kept.append(item)
        if empty:
            log.warning(
                "%s: skipped %d row(s) with an empty transcript: %s",
                where,
                len(empty),
                ", ".join(empty[:3]) + (" ..." if len(empty) > 3 else ""),
            )
        if not kept:
            raise DataError(f"{where}: every transcript is empty.")
        return kept

    def synthetic_items(self) -> list[dict[str, Any]]:
        """Utterances of 1-3 'words' of 1-3 'letters' from ``abcdef``: each letter a 90 ms tone of its own pitch
        (a speaker-dependent shift), 30 ms gaps, 120 ms pauses between words, noise. Fields: text, speaker (4)."""
        rng = np.random.default_rng(self.seed)
        rate = self.synthetic_sample_rate
        letters = "abcdef"
        items = []
        for i in range(self.synthetic_size):
            speaker = i % 4
            words = ["".join(rng.choice(list(letters), rng.integers(1, 4))) for _ in range(rng.integers(1, 4))]
            pieces = [np.zeros(int(0.1 * rate))]
            for w, word in enumerate(words):
                if w:
                    pieces.append(np.zeros(int(0.12 * rate)))
                for ch in word:
                    n = int(0.09 * rate)
                    f = (300.0 + 180.0 * letters.index(ch)) * (1 + 0.03 * (speaker - 1.5))
                    pieces += [
                        0.3 * np.sin(2 * np.pi * f * np.arange(n) / rate) * np.hanning(n),
                        np.zeros(int(0.03 * rate)),
                    ]
            pieces.append(np.zeros(int(0.1 * rate)))
            wave = np.concatenate(pieces)
            wave = wave + 0.01 * rng.standard_normal(len(wave))
            items.append(
                {
                    "audio": wave.astype(np.float32),
                    "rate": rate,
                    "text": " ".join(words),
                    "speaker": f"spk{speaker}",
                    "index": str(i),
                }
            )
        return items

    def _fit(self, splits: dict[str, list[dict[str, Any]]]) -> None:
        if self.tokens is None:
            chars = Counter(c for i in splits["train"] for c in i["text"])
            if self.vocabulary:
                allowed = set(normalize_text(self.vocabulary, self.lowercase, False) + " ")
                outside = {c: n for c, n in chars.items() if c not in allowed}
                if outside:
                    shown = ", ".join(f"{c!r} ({n})" for c, n in sorted(outside.items(), key=lambda kv: -kv[1])[:10])
                    raise DataError(
                        f"training transcripts hold characters outside data.vocabulary: {shown}. Add them to "
                        "data.vocabulary, or set data.remove_punctuation=true / clean the transcripts."
                    )
                chars = Counter({c: 1 for c in allowed})
            self.tokens = [BLANK, *sorted(chars, key=lambda c: (c != " ", c))]
            log.info(
                "Vocabulary: %d characters from the training transcripts: %r",
                len(self.tokens) - 1,
                "".join(self.tokens[1:]),
            )
        known = set(self.tokens[1:])
        for s in SPLITS:
            unknown = Counter(c for i in splits[s] for c in i["text"] if c not in known)
            if unknown:
                shown = ", ".join(f"{c!r} ({n})" for c, n in unknown.most_common(10))
                log.warning(
                    "%s transcripts hold %d character(s) absent from the vocabulary: %s. They are left out of the "
                    "loss targets; WER/CER still count them as errors.",
                    s,
                    sum(unknown.values()),
                    shown,
                )
            self.unknown.update(unknown)

    def _targets(self, items: list[dict[str, Any]], split: str) -> tuple[list[Any], list[str] | None]:
        assert self.tokens is not None
        index = {c: k for k, c in enumerate(self.tokens)}
        targets = [[index[c] for c in i["text"] if c in index] for i in items]
        return targets, [i["text"] for i in items]

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
