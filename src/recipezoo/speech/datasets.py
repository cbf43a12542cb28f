"""Decoding audio into training examples: waveforms at the model's rate, the Dataset, batches and samplers.

Files are only decoded, mixed to mono, resampled and (classification) cropped here; the front-end (spectrogram,
normalisation, augmentation) runs on the accelerator in the LightningModule.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import BatchSampler, Dataset

from recipezoo.core.errors import DataError
from recipezoo.data.splits import SPLITS
from recipezoo.runtime.audio import AudioReadError, center_crop, read_audio


@functools.lru_cache(maxsize=16)
def _resampler(orig: int, new: int) -> torch.nn.Module:
    import torchaudio.transforms as T

    return T.Resample(orig, new)  # the kernel is computed once per rate pair


def resample_tensor(wave: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """``wave`` from ``orig`` Hz to ``new`` Hz (``torchaudio.functional.resample``'s filter)."""
    if int(orig) == int(new):
        return wave
    with torch.no_grad():
        return _resampler(int(orig), int(new))(wave)


def load_waveform(path: str | os.PathLike, sample_rate: int) -> torch.Tensor:
    """Decode, mix to mono and resample a file: ``(T,)`` float32.

    Raises:
        DataError: the file cannot be decoded or holds no samples.
    """
    try:
        wave, rate, _ = read_audio(path)
    except AudioReadError as e:
        raise DataError(str(e)) from None
    return resample_tensor(torch.from_numpy(wave), rate, sample_rate)


def decode_item(item: dict[str, Any], sample_rate: int) -> torch.Tensor:
    """An item's waveform at ``sample_rate``: in-memory ``audio`` (synthetic) or its decoded ``path``."""
    if item.get("audio") is not None:
        return resample_tensor(torch.from_numpy(item["audio"]), item["rate"], sample_rate)
    return load_waveform(item["path"], sample_rate)


def decode_splits(
    splits: dict[str, list[dict[str, Any]]], sample_rate: int
) -> tuple[dict[str, list[torch.Tensor]], list[str]]:
    """Decode every item of every split into memory; items that do not decode are dropped from ``splits`` (in
    place).

    Returns:
        ``(cache, bad)``: the waveforms per split (aligned with the items kept), and the paths that did not decode.
    """
    cache: dict[str, list[torch.Tensor]] = {}
    bad: list[str] = []
    for s in SPLITS:
        keep_items, keep = [], []
        for item in splits[s]:
            try:
                keep.append(decode_item(item, sample_rate))
                keep_items.append(item)
            except DataError:
                bad.append(item["path"])
        splits[s][:] = keep_items
        cache[s] = keep
    return cache, bad


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


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Zero-pad a list of examples into one batch: ``audio`` ``(B, T)``, ``lengths`` ``(B,)``, ``index`` ``(B,)``,
    and ``label`` ``(B,)`` or ``targets`` ``(B, S)`` with ``target_lengths`` ``(B,)`` and ``text``."""
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


__all__ = [
    "AudioDataset",
    "BucketBatchSampler",
    "collate",
    "decode_item",
    "decode_splits",
    "load_waveform",
    "resample_tensor",
]
