"""Decoded images held in memory at their working size, so that epochs after the first skip decoding.

An image file is decoded once, reduced to the shorter side its transform needs (see
:func:`recipezoo.vision.transforms.working_size`; never enlarged, aspect ratio kept), converted to the pipeline's
mode and held as a uint8 array; later epochs apply the (random) transform to that array. An entry is keyed by the
file's path, the working size, the mode and whether JPEG draft decoding was allowed, and stamped with the file's
modification time and size: a changed file, size or mode is decoded again. Nothing is written to disk.

Images for the eval transform are reduced exactly as its own resize would (the same pixels); images for training
may be decoded by JPEG draft scaling first (faster, within a level or two on average, and then randomly cropped and
resized anyway).

The cache lives in the process that reads the images. With ``num_workers=0`` (the CPU default) that is the training
process, and the first epoch fills it. DataLoader worker processes each hold their own copy, so a DataModule with
workers fills the cache before they start (:meth:`ImageCache.fill`): forked workers then share its memory pages
instead of each decoding the images it is dealt (under the ``spawn`` start method, the default on macOS and Windows,
each worker receives a copy).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from recipezoo.core.errors import DataError

Stamp = tuple[int, int]  # (modification time in ns, size in bytes)
Key = tuple[str, int, str, bool]  # (path, shorter side, mode, draft allowed)
# JPEG draft decoding stops at twice the working size, as Pillow's own ``thumbnail`` does (``reducing_gap=2``): the
# rest is left to the pipeline's antialiased resize, so the result is within a level or two of a full decode on
# average (a draft straight to the working size differs by ~2 levels on average and by up to ~50 on sharp edges).
DRAFT_GAP = 2


def reduced_size(size: tuple[int, int], short_side: int) -> tuple[int, int]:
    """``(width, height)`` with the shorter side ``short_side`` and the aspect ratio kept; unchanged when the image
    is not larger. The longer side is rounded as torchvision's ``Resize(short_side)`` rounds it, so the eval
    transform's resize leaves an image reduced here untouched."""
    w, h = size
    short, long = min(w, h), max(w, h)
    if short <= short_side:
        return w, h
    new_long = int(short_side * long / short)
    return (short_side, new_long) if w <= h else (new_long, short_side)


def file_stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError as e:
        raise DataError(f"cannot read image {path}: {e}") from None
    return st.st_mtime_ns, st.st_size


def decode_reduced(
    path: str, short_side: int, mode: str, interpolation: str = "bilinear", draft: bool = False
) -> Image.Image:
    """An image file decoded and reduced to its working size: shorter side ``short_side`` (never enlarged), in
    ``mode``, by the pipeline's own resize (torchvision's, same filter, antialiased): the pixels ``Resize(short_side)``
    gives the full image.

    With ``draft``, a JPEG at least four times the working size is decoded with Pillow's draft mode, which has libjpeg
    scale it by 1/2, 1/4 or 1/8 while decoding (to no less than :data:`DRAFT_GAP` times the working size): most of
    the decoding work is skipped, several times faster on photos much larger than the working size (a 3024 x 3024
    phone photo for a 64 px input). The resize then goes the rest of the way, to the size computed from the file's
    full size; the pixels differ from a full decode's by the rounding of the two-step reduction (on average under a
    level of 255, a few levels at most on sharp edges).

    Raises:
        DataError: the file cannot be read or decoded (the message :func:`recipezoo.vision.data.open_image` gives).
    """
    try:
        with Image.open(path) as img:
            size = reduced_size(img.size, short_side)
            if draft and size != img.size:
                img.draft(mode, (size[0] * DRAFT_GAP, size[1] * DRAFT_GAP))
            out = img.convert(mode)
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f"cannot read image {path}: {e}") from None
    if out.size != size:
        out = TF.resize(out, [size[1], size[0]], interpolation=InterpolationMode(interpolation), antialias=True)
    return out


def estimate_bytes(paths: Sequence[str], short_side: int, channels: int, sample: int = 256) -> int:
    """The memory ``paths`` would take decoded at ``short_side``, from the headers of up to ``sample`` of them,
    evenly spaced (reading a header decodes nothing)."""
    if not paths:
        return 0
    step = max(1, len(paths) // sample)
    sizes = []
    for p in paths[::step][:sample]:
        try:
            with Image.open(p) as img:
                w, h = reduced_size(img.size, short_side)
        except Exception:  # an unreadable file is the loader's business; the estimate skips it
            continue
        sizes.append(w * h * channels)
    return math.ceil(len(paths) * sum(sizes) / len(sizes)) if sizes else 0


class ImageCache:
    """Decoded images at their working size, in memory, up to ``max_bytes``.

    Past ``max_bytes`` images are still decoded and returned, only not kept. ``hits`` and ``misses`` count lookups
    in this process.

    Args:
        max_bytes: the most memory the decoded images may take.
        interpolation: the filter of the pipeline's resize (``Preprocessing.interpolation``).
    """

    def __init__(self, max_bytes: int, interpolation: str = "bilinear") -> None:
        self.max_bytes, self.interpolation = int(max_bytes), interpolation
        self.entries: dict[Key, tuple[Stamp, np.ndarray]] = {}
        self.nbytes = self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, path: str | os.PathLike, short_side: int, mode: str, draft: bool = False) -> Image.Image:
        """The image at ``path`` in ``mode`` with shorter side ``short_side`` (never enlarged; see
        :func:`decode_reduced` for ``draft``), decoded only when it is not held or its file changed since."""
        key = (os.fspath(path), int(short_side), mode, bool(draft))
        stamp = file_stamp(key[0])
        held = self.entries.get(key)
        if held is not None and held[0] == stamp:
            self.hits += 1
            return Image.fromarray(held[1])
        self.misses += 1
        img = self._decode(key)
        self._put(key, stamp, np.asarray(img))
        return img

    def _decode(self, key: Key) -> Image.Image:
        path, short_side, mode, draft = key
        return decode_reduced(path, short_side, mode, self.interpolation, draft)

    def _put(self, key: Key, stamp: Stamp, array: np.ndarray) -> bool:
        """Hold ``array`` (replacing an older entry of the same key) if it fits the budget; whether it was kept."""
        old = self.entries.pop(key, None)
        if old is not None:
            self.nbytes -= old[1].nbytes
        if self.nbytes + array.nbytes > self.max_bytes:
            return False
        self.entries[key] = (stamp, array)
        self.nbytes += array.nbytes
        return True

    def fill(self, jobs: Iterable[tuple[str | os.PathLike, int, str, bool]], threads: int = 1) -> None:
        """Decode the ``(path, short_side, mode, draft)`` jobs not held yet, ``threads`` at a time (Pillow releases
        the GIL while decoding and resizing), until the budget is spent. Files that cannot be read are left out:
        reading them later raises as without the cache."""

        def load(key: Key) -> tuple[Key, Stamp, np.ndarray] | None:
            try:
                return key, file_stamp(key[0]), np.asarray(self._decode(key))
            except DataError:
                return None

        keys = [(os.fspath(p), int(s), m, bool(d)) for p, s, m, d in jobs]
        todo = [k for k in dict.fromkeys(keys) if k not in self.entries]
        pool = ThreadPoolExecutor(max(1, threads))
        try:
            for done in pool.map(load, todo):
                if done is not None and not self._put(*done):
                    break  # the budget is spent
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def describe_bytes(n: float) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 2**20 else f"{n / 2**10:,.0f} KB"


__all__ = ["ImageCache", "decode_reduced", "describe_bytes", "estimate_bytes", "reduced_size"]
