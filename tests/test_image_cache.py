"""The decoded-image cache of the image DataModules (:mod:`recipezoo.vision.cache`): hits give the pixels decoding
gives, a changed file or working size is decoded again, and the DataModule's batches are the same with it on or off."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from recipezoo.core.errors import ConfigError, DataError
from recipezoo.vision import cache as C
from recipezoo.vision import data as VD
from recipezoo.vision.transforms import eval_transform, resolve_preprocessing, working_size


def _photo(path: Path, size: tuple[int, int], seed: int = 0, fmt: str | None = None) -> Path:
    """A smooth random picture (a gradient plus a few blobs: something JPEG and resizing treat like a photo)."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    img = np.stack([np.sin(x * (3 + c) + rng.uniform(0, 6)) * np.cos(y * (2 + c)) for c in range(3)], -1)
    img = ((img + 1) * 127.5).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format=fmt, quality=95) if fmt == "JPEG" else Image.fromarray(img).save(path)
    return path


def _decoded_by_pipeline(path: Path, side: int, mode: str = "RGB") -> np.ndarray:
    """What the uncached eval pipeline's resize gives."""
    from torchvision.transforms import v2

    return np.asarray(v2.Resize(side, antialias=True)(VD.open_image(path, mode)))


def test_reduced_size_keeps_aspect_and_never_enlarges() -> None:
    assert C.reduced_size((530, 400), 73) == (96, 73)  # torchvision's rounding of the long side: int(73 * 530 / 400)
    assert C.reduced_size((400, 530), 73) == (73, 96)
    assert C.reduced_size((60, 90), 73) == (60, 90)  # smaller than the working size: kept as it is
    assert C.reduced_size((73, 100), 73) == (73, 100)


def test_working_size_covers_the_smallest_random_crop() -> None:
    pp = resolve_preprocessing({"crop_size": 224, "resize_size": 256}, image_size=64)
    assert working_size(pp) == pp.resize_size == 73
    # smallest crop: 35% of the area at ratio 4/3 -> its short side is 64 px when the image's is ceil(64 * 1.952)
    assert working_size(pp, {"scale": [0.35, 1.0]}) == 125
    assert working_size(pp, {"scale": [1.0, 1.0], "ratio": [1.0, 1.0]}) == 64


def test_hit_gives_the_decoded_pixels(tmp_path: Path) -> None:
    png = _photo(tmp_path / "a.png", (90, 60))
    cache = C.ImageCache(2**20)
    first = np.asarray(cache.get(png, 40, "RGB"))
    again = np.asarray(cache.get(png, 40, "RGB"))
    assert (cache.misses, cache.hits, len(cache)) == (1, 1, 1)
    assert first.shape == (40, 60, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(first, _decoded_by_pipeline(png, 40))  # no draft for PNG: the very same pixels
    grey = np.asarray(cache.get(png, 40, "L"))  # another mode is another entry
    assert grey.shape == (40, 60) and cache.misses == 2
    np.testing.assert_array_equal(grey, _decoded_by_pipeline(png, 40, "L"))


def test_jpeg_draft_decoding_is_within_rounding(tmp_path: Path) -> None:
    jpg = _photo(tmp_path / "a.jpg", (400, 300), fmt="JPEG")  # 5x the working size: libjpeg can decode it at 1/2
    for mode, shape in (("RGB", (60, 80, 3)), ("L", (60, 80))):
        full = _decoded_by_pipeline(jpg, 60, mode)
        np.testing.assert_array_equal(np.asarray(C.decode_reduced(str(jpg), 60, mode)), full)
        drafted = np.asarray(C.decode_reduced(str(jpg), 60, mode, draft=True))
        assert drafted.shape == full.shape == shape
        diff = np.abs(drafted.astype(int) - full)
        assert 0 < diff.max() <= 3 and diff.mean() < 0.5, (mode, diff.mean(), diff.max())
    cache = C.ImageCache(2**20)
    cache.get(jpg, 60, "RGB"), cache.get(jpg, 60, "RGB", draft=True)
    assert cache.misses == 2 and len(cache) == 2  # drafted and exact images are separate entries


def test_changed_file_or_size_is_decoded_again(tmp_path: Path) -> None:
    path = _photo(tmp_path / "a.png", (64, 64), seed=1)
    cache = C.ImageCache(2**20)
    old = np.asarray(cache.get(path, 32, "RGB"))
    _photo(path, (80, 64), seed=2)  # new content, new size
    os.utime(path, ns=(1, 1))  # and a new modification time, whatever the file system's clock resolution
    new = np.asarray(cache.get(path, 32, "RGB"))
    assert cache.misses == 2 and new.shape == (32, 40, 3) and not np.array_equal(old[:, :32], new[:, :32])
    cache.get(path, 32, "RGB")
    assert cache.hits == 1
    smaller = cache.get(path, 16, "RGB")  # another working size misses
    assert cache.misses == 3 and smaller.size == (20, 16)
    assert cache.nbytes == 32 * 40 * 3 + 16 * 20 * 3  # the replaced entry was let go


def test_budget_bounds_the_cache_and_unreadable_files_raise(tmp_path: Path) -> None:
    paths = [_photo(tmp_path / f"{i}.png", (20, 20), seed=i) for i in range(4)]
    cache = C.ImageCache(2 * 20 * 20 * 3)
    for p in paths:
        assert cache.get(p, 20, "RGB").size == (20, 20)
    assert len(cache) == 2 and cache.nbytes == 2 * 1200
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"nope")
    with pytest.raises(DataError, match="cannot read image .*broken.png"):
        cache.get(broken, 20, "RGB")
    with pytest.raises(DataError, match="cannot read image .*missing.png"):
        cache.get(tmp_path / "missing.png", 20, "RGB")
    filled = C.ImageCache(2**20)
    filled.fill([(p, 10, "L", False) for p in [*paths, broken]], threads=2)  # the unreadable file is left out
    assert len(filled) == 4 and filled.misses == 0
    filled.get(paths[0], 10, "L")
    assert filled.hits == 1


def _folder(root: Path) -> Path:
    for k, name in enumerate(["ants", "bees"]):
        for i in range(6):
            _photo(root / name / f"{i}.jpg", (160 + 8 * i, 130), seed=10 * k + i, fmt="JPEG")
    return root


def _module(root: Path, **kwargs: object) -> VD.ImageFolderDataModule:
    kwargs = {"image_size": 16, "resize_size": 20, "batch_size": 4, "num_workers": 0, **kwargs}
    return VD.ImageFolderDataModule(root=str(root), backbone="convnet_small", **kwargs)


def test_datamodule_batches_same_with_and_without_cache(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _folder(tmp_path / "data")
    with caplog.at_level(logging.INFO, logger="recipezoo.vision.data"):
        on, off = _module(root, cache_images=True), _module(root, cache_images=False)
        on.setup(), off.setup()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("image cache:")]
    assert len(lines) == 2 and lines[0].startswith("image cache: on") and lines[1].startswith("image cache: off")
    assert on.cache is not None and off.cache is None
    for split in ("train", "val", "test"):
        assert on.datasets[split].items == off.datasets[split].items
    for _ in range(2):  # the second epoch reads the cache
        labels = {}
        for name, dm in (("on", on), ("off", off)):
            batches = list(dm.train_dataloader())
            assert [tuple(x.shape) for x, _ in batches] == [(4, 3, 16, 16)] * 2
            assert all(x.dtype == torch.float32 for x, _ in batches)
            labels[name] = sorted(t for _, y in batches for t in y.tolist())
        assert labels["on"] == labels["off"]
    # the 8 training images decoded once (JPEG draft at 1/2), reduced to the train working size (32 px), read back
    assert on.cache.misses == len(on.cache) == 8 and on.cache.hits == 8
    # Eval: reduced as the eval transform's resize reduces them, so the very same pixels.
    for (x, y), (x0, y0) in zip(on.eval_dataloader("val"), off.eval_dataloader("val")):
        torch.testing.assert_close(x, x0, rtol=0, atol=0)
        assert y.tolist() == y0.tolist()
    assert len(on.cache) == 10  # the val images, at the eval working size (20 px)
    x, _ = next(iter(on.eval_dataloader("train")))  # the train split at the eval working size: its own entries
    assert x.shape[-2:] == (16, 16)


def test_auto_follows_the_budget_and_arrays_are_not_cached(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _folder(tmp_path / "data")
    fits, too_big = _module(root), _module(root, cache_max_mb=0.001)
    with caplog.at_level(logging.INFO, logger="recipezoo.vision.data"):
        fits.setup(), too_big.setup()
    assert fits.cache is not None and too_big.cache is None
    assert any(
        "image cache: off" in r.getMessage() and "data.cache_max_mb=0.001" in r.getMessage() for r in caplog.records
    )
    x, _ = next(iter(too_big.train_dataloader()))
    assert x.shape[1:] == (3, 16, 16)
    synthetic = _module(root, synthetic=True, cache_images=True)
    synthetic.setup()
    assert synthetic.cache is None  # generated arrays are in memory already


def test_workers_start_with_a_filled_cache(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data")
    dm = _module(root, cache_images=True)
    dm.loader_kwargs = {"num_workers": 2}  # as loader_settings gives on a GPU machine; setup fills, spawns nothing
    dm.setup()
    n = sum(len(d) for d in dm.datasets.values())
    assert dm.cache is not None and len(dm.cache) == n and dm.cache.misses == 0


def test_bad_cache_options() -> None:
    with pytest.raises(ConfigError, match="data.cache_images must be auto, true or false"):
        VD.ImageFolderDataModule(root="x", cache_images="sometimes")
    with pytest.raises(ConfigError, match="data.cache_max_mb"):
        VD.ImageFolderDataModule(root="x", cache_max_mb=-1)


def test_eval_transform_of_a_cached_image_is_unchanged(tmp_path: Path) -> None:
    """The eval transform's resize finds a cached image at its size already and passes it through."""
    pp = resolve_preprocessing({"crop_size": 32, "resize_size": 36}, image_size=32, resize_size=36)
    png = _photo(tmp_path / "wide.png", (131, 77))
    cached = C.ImageCache(2**20).get(png, working_size(pp), pp.mode)
    torch.testing.assert_close(
        eval_transform(pp)(cached), eval_transform(pp)(VD.open_image(png, "RGB")), rtol=0, atol=0
    )
