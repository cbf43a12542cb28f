"""Image folders through the shared data stages: split-folder aliases, class scan, bad-file budget, carving and the
label map of :class:`ImageFolderDataModule`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recipezoo.core.errors import DataError
from recipezoo.data import DataModuleContract
from recipezoo.data import folders as F
from recipezoo.data import splits as S
from recipezoo.vision import data as VD


def _png(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


def _classes(root: Path, names: list[str], per_class: int = 6) -> Path:
    for k, name in enumerate(names):
        for i in range(per_class):
            _png(root / name / f"{i:02d}.png", (40 * k, 10 * i, 0))
    return root


def _module(root: Path, **kwargs: object) -> VD.ImageFolderDataModule:
    return VD.ImageFolderDataModule(root=str(root), image_size=8, resize_size=8, num_workers=0, **kwargs)


def test_one_extension_list_and_split_names() -> None:
    assert VD.IMAGE_EXTENSIONS is F.IMAGE_EXTENSIONS
    assert VD.SPLITS == S.SPLITS == ("train", "val", "test")


def test_split_folder_aliases(tmp_path: Path) -> None:
    for folder in ("Training", "valid", "testing"):
        _classes(tmp_path / folder, ["cat", "dog"], per_class=2)
    (tmp_path / ".cache").mkdir()
    dm = _module(tmp_path)
    assert isinstance(dm, DataModuleContract)
    dm.setup()
    assert {s: len(d) for s, d in dm.datasets.items()} == {"train": 4, "val": 4, "test": 4}
    assert all("/valid/" in item for item in dm.datasets["val"].items)
    assert dm.labels == ["cat", "dog"]


def test_scan_skips_hidden_and_non_images_and_keeps_nested_files(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data", ["b", "a"], per_class=4)
    (root / "a" / "notes.txt").write_text("not an image")
    _png(root / "a" / ".hidden.png", (1, 2, 3))
    _png(root / "b" / "deeper" / "x.PNG", (1, 2, 3))
    _png(root / ".trash" / "y.png", (1, 2, 3))
    items, names, bad = F.scan_class_folders(root, VD.IMAGE_EXTENSIONS, check=VD.image_verifies)
    assert bad == [] and len(items) == 9
    assert names == ["a"] * 4 + ["b"] * 5  # class folders in name order, files in path order
    assert not any(".hidden" in i or ".trash" in i or i.endswith(".txt") for i in items)


def test_image_verifies(tmp_path: Path) -> None:
    good = _png(tmp_path / "good.png", (9, 9, 9))
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[:20])
    assert VD.image_verifies(good) and not VD.image_verifies(broken)


def test_bad_file_budget(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _classes(tmp_path / "data", ["a", "b"], per_class=10)
    (root / "a" / "bad.png").write_bytes(b"nope")
    with caplog.at_level(logging.WARNING):
        _module(root).setup()
    assert any("Skipped 1 unreadable image(s) in" in r.getMessage() for r in caplog.records)
    with pytest.raises(DataError, match=r"1 of 21 images in .* cannot be read \(4.8% > data.max_bad_fraction=0.01\)"):
        _module(root, max_bad_fraction=0.01).setup()


def test_carved_splits_are_stratified_and_seeded(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data", ["a", "b", "c"], per_class=10)
    dm = _module(root, val_fraction=0.2, test_fraction=0.2, seed=3)
    dm.setup()
    counts = {s: np.bincount(d.targets, minlength=3).tolist() for s, d in dm.datasets.items()}
    assert counts == {"train": [6, 6, 6], "val": [2, 2, 2], "test": [2, 2, 2]}
    again = _module(root, val_fraction=0.2, test_fraction=0.2, seed=3)
    again.setup()
    assert all(again.datasets[s].items == dm.datasets[s].items for s in S.SPLITS)
    other = _module(root, val_fraction=0.2, test_fraction=0.2, seed=4)
    other.setup()
    assert other.datasets["val"].items != dm.datasets["val"].items


def test_label_map_from_a_checkpoint(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data", ["b", "a"], per_class=5)
    dm = _module(root, labels=["z", "b", "a"])  # a checkpoint's order is kept, and may hold more classes
    dm.setup()
    assert dm.info["labels"] == ["z", "b", "a"] and dm.num_classes == 3
    assert {dm.labels[t] for t in dm.datasets["train"].targets} <= {"a", "b"}
    with pytest.raises(DataError, match=r"label mismatch: the data has classes \['a'\]"):
        _module(root, labels=["b", "z"]).setup()
