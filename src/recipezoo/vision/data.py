"""Image classification DataModules: image folders, torchvision datasets, scikit-learn's digits, synthetic twins.

Every DataModule yields ``(image, label)`` batches with ``image`` a normalised ``(B, C, H, W)`` float tensor, knows
its label names, and describes its preprocessing in ``info`` (saved in checkpoints and exports). With
``synthetic=True`` any of them generates a tiny learnable dataset of the same shape instead of reading files.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from recipezoo.core.data import loader_settings
from recipezoo.core.errors import ConfigError, DataError
from recipezoo.data import folders as F
from recipezoo.data import splits as S
from recipezoo.data.labels import LabelMap, sort_labels
from recipezoo.vision.cache import ImageCache, describe_bytes, estimate_bytes
from recipezoo.vision.models import default_preprocessing
from recipezoo.vision.transforms import (
    Preprocessing,
    eval_transform,
    resolve_preprocessing,
    train_transform,
    working_size,
)

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = F.IMAGE_EXTENSIONS
SPLITS = S.SPLITS


def open_image(item: Any, mode: str) -> Image.Image:
    """An image source (path, uint8 array or PIL image) as a PIL image in ``mode``."""
    if isinstance(item, (str, os.PathLike)):
        try:
            with Image.open(item) as img:
                return img.convert(mode)
        except (OSError, UnidentifiedImageError) as e:
            raise DataError(f"cannot read image {item}: {e}") from None
    if isinstance(item, np.ndarray):
        return Image.fromarray(item).convert(mode)
    return item.convert(mode)


def image_verifies(path: Path) -> bool:
    """Whether an image file's header and structure check out: cheap (no full decode), for scanning folders."""
    try:
        with Image.open(path) as img:
            img.verify()
        return True
    except Exception:  # PIL raises many kinds of errors on broken files; any of them makes the file unreadable
        return False


def is_path(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike))


class ImageDataset(Dataset):
    """Images (paths, arrays or PIL images) with integer labels, transformed on access.

    With a ``cache``, image files are read through it, decoded once at shorter side ``short_side`` (the transform's
    :func:`~recipezoo.vision.transforms.working_size`; ``draft``: JPEG draft decoding allowed, for training, see
    :func:`~recipezoo.vision.cache.decode_reduced`); arrays and PIL images are in memory already.
    """

    def __init__(
        self,
        items: Sequence[Any],
        targets: Sequence[int],
        transform: Any,
        mode: str,
        cache: ImageCache | None = None,
        short_side: int | None = None,
        draft: bool = False,
    ) -> None:
        self.items, self.targets, self.transform, self.mode = items, targets, transform, mode
        self.cache, self.short_side, self.draft = cache, short_side, draft

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        item = self.items[i]
        if self.cache is not None and self.short_side is not None and is_path(item):
            return self.transform(self.cache.get(item, self.short_side, self.mode, self.draft)), self.targets[i]
        return self.transform(open_image(item, self.mode)), self.targets[i]


class ImageDataModule(L.LightningDataModule):
    """Shared behaviour of the image DataModules: preprocessing, splits, label map, loaders, synthetic twin.

    Subclasses implement :meth:`load_splits`, returning ``{split: (items, label_names)}`` for the splits the
    source provides; missing val/test splits are carved from train with a seeded stratified split.

    Args:
        backbone: backbone name, to read its expected input size, mean and std.
        pretrained: the backbone's ``pretrained`` setting (pretrained weights may change the statistics).
        mode: ``RGB`` or ``L`` (grayscale).
        image_size: crop size fed to the network; null takes the backbone's.
        resize_size: shorter side before the centre crop at eval; null keeps the backbone's ratio.
        mean: normalisation mean; null takes the backbone's (or 0.5).
        std: normalisation std; null takes the backbone's (or 0.5).
        augment: keyword arguments of :func:`recipezoo.vision.transforms.train_transform`.
        batch_size: per-device batch size.
        num_workers: DataLoader workers, or ``auto``.
        pin_memory: pin host memory, or ``auto`` (on when a GPU is present).
        val_fraction: fraction of all examples carved out for validation when the source has no val split.
        test_fraction: likewise for test.
        seed: the split seed.
        synthetic: replace the source by a tiny generated dataset with the same contract.
        synthetic_classes: number of classes of the synthetic twin.
        synthetic_per_class: synthetic images per class and split.
        labels: a fixed label list (from a checkpoint); the data's labels must be among them.
        cache_images: hold image files decoded at their working size in memory so that epochs after the first skip
            decoding (:mod:`recipezoo.vision.cache`): ``auto`` when they fit ``cache_max_mb``, ``true``, ``false``.
        cache_max_mb: the most memory the cache may hold (images past it are decoded every epoch).
    """

    def __init__(
        self,
        backbone: str = "convnet_small",
        pretrained: Any = False,
        mode: str = "RGB",
        image_size: int | None = None,
        resize_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        augment: dict[str, Any] | None = None,
        batch_size: int = 64,
        num_workers: int | str = "auto",
        pin_memory: bool | str = "auto",
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        seed: int = 42,
        synthetic: bool = False,
        synthetic_classes: int = 3,
        synthetic_per_class: int = 4,
        labels: Sequence[str] | None = None,
        cache_images: bool | str = "auto",
        cache_max_mb: float = 2048,
    ) -> None:
        super().__init__()
        self.preprocessing: Preprocessing = resolve_preprocessing(
            default_preprocessing(backbone, pretrained),
            mode,
            image_size,
            resize_size,
            list(mean) if mean else None,
            list(std) if std else None,
        )
        self.augment = dict(augment or {})
        self.batch_size = batch_size
        self.loader_kwargs = loader_settings(num_workers, pin_memory)
        self.val_fraction, self.test_fraction, self.seed = val_fraction, test_fraction, seed
        self.synthetic, self.synthetic_classes, self.synthetic_per_class = (
            synthetic,
            synthetic_classes,
            synthetic_per_class,
        )
        self.labels: list[str] | None = list(labels) if labels else None
        self.datasets: dict[str, ImageDataset] = {}
        choice = str(cache_images).lower()
        if choice not in ("auto", "true", "false"):
            raise ConfigError(f"data.cache_images must be auto, true or false, got '{cache_images}'.")
        if not isinstance(cache_max_mb, (int, float)) or cache_max_mb < 0:
            raise ConfigError(f"data.cache_max_mb must be a number of megabytes >= 0, got '{cache_max_mb}'.")
        self.cache_images, self.cache_max_mb = choice, float(cache_max_mb)
        self.cache: ImageCache | None = None

    # -- what subclasses provide ------------------------------------------------------------------------------
    def load_splits(self) -> dict[str, tuple[list[Any], list[str]]]:
        raise NotImplementedError

    # -- synthetic twin ---------------------------------------------------------------------------------------
    def synthetic_splits(self) -> dict[str, tuple[list[Any], list[str]]]:
        """Images whose class sets the position and colour of a bright square on noise: learnable, tiny."""
        rng = np.random.default_rng(self.seed)
        size = max(16, min(self.preprocessing.crop_size, 48))
        k = self.synthetic_classes
        splits = {}
        for split in SPLITS:
            items, names = [], []
            for c in range(k):
                for _ in range(self.synthetic_per_class):
                    img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
                    half = size // 2
                    y, x = (c % 2) * half, ((c // 2) % 2) * half
                    img[y : y + half, x : x + half, c % 3] = 255
                    items.append(img)
                    names.append(f"class_{c}")
            splits[split] = (items, names)
        return splits

    # -- Lightning hooks --------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        raw = self.synthetic_splits() if self.synthetic else self.load_splits()
        raw = self._complete_splits(raw)
        self._fit_labels({n for _, names in raw.values() for n in names})
        index = LabelMap(self.labels or []).index
        pp = self.preprocessing
        tf_train = train_transform(pp, **self.augment)
        tf_eval = eval_transform(pp)
        sides = {"train": working_size(pp, self.augment), "eval": working_size(pp)}
        for split, (items, names) in raw.items():
            train = split == "train"
            self.datasets[split] = ImageDataset(
                items,
                [index[n] for n in names],
                tf_train if train else tf_eval,
                pp.mode,
                short_side=sides["train" if train else "eval"],
                draft=train,  # training crops are random anyway; eval images get the eval resize's very pixels
            )
        counts = {s: len(d) for s, d in self.datasets.items()}
        log.info("%s: %d classes, %s images", self.describe(), len(self.labels or []), counts)
        self._start_cache()

    def _start_cache(self) -> None:
        """Decide whether image files are cached (``cache_images``, the budget), say so in one line, and, when
        DataLoader workers will read them, fill the cache now so that the workers start with it."""
        files = {s: [it for it in ds.items if is_path(it)] for s, ds in self.datasets.items()}
        if not any(files.values()):
            return  # arrays and PIL images are in memory already
        budget = int(self.cache_max_mb * 2**20)
        channels = self.preprocessing.channels
        need = sum(estimate_bytes(files[s], ds.short_side or 0, channels) for s, ds in self.datasets.items())
        what = f"~{describe_bytes(need)} decoded for {sum(map(len, files.values())):,} images"
        limit = f"data.cache_max_mb={self.cache_max_mb:g}"
        if self.cache_images == "false":
            log.info("image cache: off (data.cache_images=false; %s)", what)
            return
        if self.cache_images == "auto" and need > budget:
            log.info("image cache: off (%s > %s; data.cache_images=true caches what fits)", what, limit)
            return
        self.cache = ImageCache(budget, self.preprocessing.interpolation)
        for ds in self.datasets.values():
            ds.cache = self.cache
        held = f"at most {limit} of " if need > budget else ""
        workers = self.loader_kwargs["num_workers"]
        if not workers:
            log.info("image cache: on, holding %s%s; the first epoch fills it", held, what)
            return
        start = time.perf_counter()
        jobs = [(it, ds.short_side, ds.mode, ds.draft) for s, ds in self.datasets.items() for it in files[s]]
        self.cache.fill(jobs, workers)
        log.info(
            "image cache: on, holding %s%s; filled in %.1f s (%s, %d images) before the %d DataLoader workers start",
            held,
            what,
            time.perf_counter() - start,
            describe_bytes(self.cache.nbytes),
            len(self.cache),
            workers,
        )

    def _fit_labels(self, names: set[str]) -> None:
        """Take the data's sorted label names, or check them against the fixed list (from a checkpoint)."""
        found = sort_labels(names, "text")
        if self.labels is None:
            self.labels = found
        else:
            LabelMap(self.labels).check_known(found, order="text")
        if len(self.labels) < 2:
            raise DataError(
                f"{self.describe()} has only one class ({self.labels}); a classifier needs at least 2 "
                "classes, one sub-folder per class."
            )

    def _complete_splits(self, raw: dict[str, tuple[list[Any], list[str]]]) -> dict[str, tuple[list, list]]:
        if "train" not in raw or not raw["train"][0]:
            raise DataError(f"{self.describe()} has no training images.")
        missing = S.missing_splits(raw)
        if not missing:
            return raw
        items, names = raw["train"]
        fractions = [self.val_fraction if s == "val" else self.test_fraction for s in missing]
        code = LabelMap(sort_labels(names, "text")).index
        parts = S.carve_missing([code[n] for n in names], fractions, self.seed, what=self.describe())
        raw = dict(raw)
        for split, idx in zip(["train", *missing], parts):
            raw[split] = ([items[i] for i in idx], [names[i] for i in idx])
        log.info("%s: carved %s from train (seed %d)", self.describe(), "/".join(missing), self.seed)
        return raw

    def describe(self) -> str:
        return "synthetic images" if self.synthetic else type(self).__name__

    def restore(self, info: dict[str, Any]) -> None:
        """Adopt what a checkpoint's data fitted (its label list), before ``setup``, to evaluate or resume it."""
        if info.get("labels"):
            self.labels = list(info["labels"])

    @property
    def num_classes(self) -> int:
        return len(self.labels or [])

    @property
    def info(self) -> dict[str, Any]:
        """What the model and exports need to know about this data (after ``setup``)."""
        return {
            "num_classes": self.num_classes,
            "labels": list(self.labels or []),
            "in_chans": self.preprocessing.channels,
            "preprocessing": self.preprocessing.to_dict(),
        }

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        if split not in self.datasets:
            self.setup()
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle and len(self.datasets[split]) > self.batch_size,
            **self.loader_kwargs,
        )

    def eval_dataloader(self, split: str) -> DataLoader:
        """Any split with the eval transform (no augmentation, no shuffling): for evaluation and prediction."""
        self.setup()
        ds = self.datasets[split]
        pp = self.preprocessing
        eval_ds = ImageDataset(ds.items, ds.targets, eval_transform(pp), ds.mode, self.cache, working_size(pp))
        return DataLoader(eval_ds, batch_size=self.batch_size, shuffle=False, **self.loader_kwargs)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")


class ImageFolderDataModule(ImageDataModule):
    """``root/<label>/*.jpg``, or ``root/{train,val,test}/<label>/*.jpg`` (missing splits carved from train).

    Files that are not images are ignored; images that cannot be decoded are skipped with a warning that counts and
    names them, or rejected when they exceed ``max_bad_fraction`` of the folder.

    Args:
        root: the folder.
        max_bad_fraction: the largest fraction of unreadable images tolerated.
        **kwargs: see :class:`ImageDataModule`.
    """

    def __init__(self, root: str | None = None, max_bad_fraction: float = 0.05, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.max_bad_fraction = max_bad_fraction

    def describe(self) -> str:
        return super().describe() if self.synthetic else f"image folder {self.root}"

    def load_splits(self) -> dict[str, tuple[list[Any], list[str]]]:
        if not self.root:
            raise ConfigError(
                "no image folder given: pass data.root=/path/to/images (one sub-folder per class), "
                "or data.synthetic=true to try the recipe on generated images."
            )
        root = Path(os.path.expanduser(str(self.root)))
        if not root.is_dir():
            raise DataError(f"image folder not found: {root}. Pass data.root=<folder with one sub-folder per class>.")
        sources = F.split_folders(root) or {"train": root}
        splits = {s: F.scan_class_folders(d, IMAGE_EXTENSIONS, check=image_verifies) for s, d in sources.items()}
        good = sum(len(items) for items, _, _ in splits.values())
        F.check_bad_files(
            good,
            {"unreadable": [b for _, _, bad in splits.values() for b in bad]},
            self.max_bad_fraction,
            where=str(self.root),
            hint=f"expected {', '.join(IMAGE_EXTENSIONS[:5])} ... files in <root>/<label>/.",
            messages=F.IMAGE_BAD_FILE_MESSAGES,
            logger=log,
        )
        return {s: (items, names) for s, (items, names, _) in splits.items()}


class DigitsDataModule(ImageDataModule):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes): no download needed."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("synthetic_classes", 10)
        super().__init__(**kwargs)

    def describe(self) -> str:
        return super().describe() if self.synthetic else "scikit-learn digits"

    def load_splits(self) -> dict[str, tuple[list[Any], list[str]]]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        # 0..16 intensities -> 8-bit grayscale images, so files and arrays go through the same PIL pipeline.
        images = (digits.images * (255 / 16)).round().astype(np.uint8)
        return {"train": (list(images), [str(t) for t in digits.target])}


class TorchvisionDataModule(ImageDataModule):
    """A torchvision dataset by name: CIFAR10, CIFAR100, MNIST, FashionMNIST.

    The dataset's own train split is split into train/val; its test split is the test set.

    Args:
        name: the torchvision dataset class name.
        root: where the dataset lives (or is downloaded to).
        download: download when missing (needs network access).
        **kwargs: see :class:`ImageDataModule`.
    """

    KNOWN = ("CIFAR10", "CIFAR100", "MNIST", "FashionMNIST")

    def __init__(self, name: str = "CIFAR10", root: str = "data_cache", download: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("synthetic_classes", 100 if name == "CIFAR100" else 10)
        super().__init__(**kwargs)
        if name not in self.KNOWN:
            raise ConfigError(f"unknown torchvision dataset '{name}'; choose one of {', '.join(self.KNOWN)}.")
        self.name, self.root, self.download = name, root, download

    def describe(self) -> str:
        return super().describe() if self.synthetic else f"torchvision {self.name}"

    def _dataset(self, train: bool) -> Any:
        import torchvision.datasets as tvd

        try:
            return getattr(tvd, self.name)(os.path.expanduser(self.root), train=train, download=self.download)
        except RuntimeError as e:
            raise DataError(
                f"{self.name} not found under {self.root} ({e}). Pass data.download=true (needs network) "
                f"or data.root=<folder holding the dataset>."
            ) from None

    def prepare_data(self) -> None:
        if self.download and not self.synthetic:
            self._dataset(True), self._dataset(False)

    def load_splits(self) -> dict[str, tuple[list[Any], list[str]]]:
        out = {}
        for split, train in (("train", True), ("test", False)):
            ds = self._dataset(train)
            classes = list(ds.classes)
            data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else ds.data  # (N, H, W[, C]) uint8
            out[split] = (list(data), [classes[int(t)] for t in ds.targets])
        return out


class DeviceBatches:
    """Batches cut from one split held as a uint8 ``(N, H, W, C)`` tensor on the training device.

    No DataLoader, no worker processes: each batch is a gather from the resident tensor, made and normalised on
    the device with a few tensor operations. For training, every example is seen exactly once per epoch in a seeded
    order (``seed + epoch``), randomly translated (the image shifted by up to ``translate`` pixels, borders
    reflected or black) and flipped; for evaluation, batches come in order and unchanged. The batches are
    channels-last ``(B, C, H, W)`` float32 tensors, already where the model is, so Lightning's transfer is a no-op.

    Lightning calls ``sampler.set_epoch(epoch)`` before each epoch, as it does for a ``DistributedSampler``; a plain
    ``for`` loop advances the epoch by itself. Under DDP each rank takes its share of the shuffled training order.

    Args:
        images: ``(N, H, W, C)`` uint8.
        targets: ``(N,)`` int64 label indices, on the same device.
        batch_size: examples per batch.
        mean: per-channel mean of the [0, 1]-scaled images.
        std: per-channel std.
        train: shuffle, augment and drop the last partial batch (when there is more than one batch).
        seed: the base of the per-epoch seed.
        translate: the largest shift in pixels (0 disables it).
        hflip: probability of a horizontal flip.
        pad_mode: ``reflect`` or ``constant`` (black borders).
        rank: this process's rank among ``world_size`` (training only).
        world_size: the number of training processes.
    """

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool = False,
        seed: int = 0,
        translate: int = 0,
        hflip: float = 0.0,
        pad_mode: str = "reflect",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.images, self.targets = images, targets
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.translate, self.hflip, self.pad_mode = translate, hflip, pad_mode
        self.rank, self.world_size = (rank, world_size) if train else (0, 1)
        dev, c = images.device, images.shape[-1]
        # (u8 - 255 mean) / (255 std) in one multiply-add per pixel, shaped for the (B, C, H, W) view.
        self.scale = (1.0 / (255.0 * torch.tensor(std, dtype=torch.float32, device=dev))).view(1, c, 1, 1)
        self.shift = (-torch.tensor(mean, dtype=torch.float32, device=dev) / torch.tensor(std, device=dev)).view(
            1, c, 1, 1
        )
        self.per_rank = len(images) // self.world_size
        self.drop_last = train and self.per_rank > batch_size
        self.epoch = 0
        self.sampler, self.batch_sampler = self, None  # where Lightning looks for set_epoch (and shuffling)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.per_rank
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _generator(self) -> torch.Generator:
        gen = torch.Generator(device=self.images.device)
        gen.manual_seed(self.seed + self.epoch)
        return gen

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` uint8 -> normalised ``(B, C, H, W)`` float32, channels-last in memory."""
        return x.permute(0, 3, 1, 2).float() * self.scale + self.shift

    def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Random translation and horizontal flip of a ``(B, H, W, C)`` batch, as one gather."""
        b, h, w, _ = x.shape
        dev = x.device
        rows = torch.arange(h, device=dev).expand(b, h)
        cols = torch.arange(w, device=dev).expand(b, w)
        t = self.translate
        if t:
            rows = rows + torch.randint(-t, t + 1, (b, 1), device=dev, generator=gen)
            cols = cols + torch.randint(-t, t + 1, (b, 1), device=dev, generator=gen)
        if self.hflip > 0:
            flip = torch.rand(b, 1, device=dev, generator=gen) < self.hflip
            cols = torch.where(flip, w - 1 - cols, cols)
        if self.pad_mode == "reflect":  # -1 -> 1, h -> h - 2: mirror without repeating the edge, as F.pad
            rows = (h - 1) - ((h - 1) - rows.abs()).abs()
            cols = (w - 1) - ((w - 1) - cols.abs()).abs()
            return x[torch.arange(b, device=dev)[:, None, None], rows[:, :, None], cols[:, None, :]]
        inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
        out = x[
            torch.arange(b, device=dev)[:, None, None], rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None]
        ]
        return out * inside[..., None].to(out.dtype)

    def __iter__(self) -> Any:
        n, bs = len(self.images), self.batch_size
        if not self.train:
            for i in range(0, n, bs):
                yield self.normalise(self.images[i : i + bs]), self.targets[i : i + bs]
            return
        gen = self._generator()
        self.epoch += 1
        order = torch.randperm(n, device=self.images.device, generator=gen)
        order = order[self.rank : self.per_rank * self.world_size : self.world_size]
        for i in range(len(self)):
            idx = order[i * bs : (i + 1) * bs]
            yield self.normalise(self.augment(self.images[idx], gen)), self.targets[idx]


class DeviceTorchvisionDataModule(TorchvisionDataModule):
    """A torchvision dataset (CIFAR-10-sized) held whole in one tensor on the training device.

    Every split is decoded once into a uint8 ``(N, H, W, C)`` tensor and moved to the device the Trainer trains on
    when its loader is first asked for (on a CPU run it stays in host memory); batches are then cut, augmented
    (random translation, horizontal flip) and normalised on the device by :class:`DeviceBatches`, without a
    DataLoader. Labels, ``info`` and the eval preprocessing are those of :class:`TorchvisionDataModule`, so
    checkpoints, exports and prediction on image files work as for any image DataModule. When the images' size
    differs from ``image_size`` / ``resize_size``, the whole split is resized and centre-cropped once at setup (the
    eval transform, on tensors).

    The dataset's test split is the test set. Validation is carved from train with the seeded stratified split
    (``val_fraction``); ``val_fraction=0`` trains on the whole train split and validates on the test split (as speed
    benchmarks do: the best checkpoint is then selected on test).

    Args:
        augment: ``translate`` (pixels, 2), ``hflip`` (probability, 0.5), ``pad_mode`` (``reflect`` or
            ``constant``).
        synthetic_size: training images of the synthetic twin (its test split gets a fifth as many, the ratio of
            CIFAR-10); null: ``synthetic_per_class`` images per class in each split. Its images are coloured squares
            on noise, one colour per class: learnable, and unchanged in class by flips and small translations.
        **kwargs: see :class:`TorchvisionDataModule` (``num_workers`` and ``pin_memory`` are not used).
    """

    AUGMENT_KEYS = ("translate", "hflip", "pad_mode")

    def __init__(self, synthetic_size: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        unknown = sorted(set(self.augment) - set(self.AUGMENT_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown data.augment key(s) {unknown} for batches made on the device; "
                f"keys: {', '.join(self.AUGMENT_KEYS)}."
            )
        self.translate = int(self.augment.get("translate", 2))
        self.hflip = float(self.augment.get("hflip", 0.5))
        self.pad_mode = str(self.augment.get("pad_mode", "reflect"))
        if self.pad_mode not in ("reflect", "constant"):
            raise ConfigError(f"data.augment.pad_mode must be reflect or constant, got '{self.pad_mode}'.")
        if self.translate < 0 or self.translate >= self.preprocessing.crop_size:
            raise ConfigError(f"data.augment.translate must be in [0, image size), got {self.translate}.")
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be at least 1, got {self.batch_size}.")
        if synthetic_size is not None and synthetic_size < self.synthetic_classes:
            raise ConfigError(
                f"data.synthetic_size must be at least the number of classes ({self.synthetic_classes}), "
                f"got {synthetic_size}."
            )
        self.synthetic_size = synthetic_size
        self.tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- sources: {split: (uint8 (N, H, W[, C]) array, label names)} --------------------------------------------
    def load_arrays(self) -> dict[str, tuple[np.ndarray, list[str]]]:
        out = {}
        for split, train in (("train", True), ("test", False)):
            ds = self._dataset(train)
            data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
            classes = np.asarray(list(ds.classes), dtype=object)
            out[split] = (data, list(classes[np.asarray(ds.targets, dtype=np.int64)]))
        return out

    def synthetic_arrays(self) -> dict[str, tuple[np.ndarray, list[str]]]:
        """A square of the class's colour in the middle of dark noise, ``synthetic_size`` training images."""
        rng = np.random.default_rng(self.seed)
        size, c, k = self.preprocessing.crop_size, self.preprocessing.channels, self.synthetic_classes
        levels = max(2, int(np.ceil(k ** (1 / c) - 1e-9)))  # levels per channel: levels**c >= k colours
        digits = (np.arange(k)[:, None] // levels ** np.arange(c)[None, :]) % levels  # (k, c)
        palette = (100 + digits * (155 // (levels - 1))).astype(np.uint8)
        n_train = self.synthetic_size or self.synthetic_per_class * k
        n_test = max(k, n_train // 5) if self.synthetic_size else n_train
        q = size // 4
        out = {}
        for split, n in (("train", n_train), ("test", n_test)):
            targets = rng.permutation(np.arange(n) % k)
            images = rng.integers(0, 60, (n, size, size, c), dtype=np.uint8)
            images[:, q : size - q, q : size - q, :] = palette[targets][:, None, None, :]
            out[split] = (images, [f"class_{t}" for t in targets])
        return out

    # -- Lightning hooks --------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.tensors:
            return
        raw = self.synthetic_arrays() if self.synthetic else self.load_arrays()
        if len(raw["train"][0]) == 0:
            raise DataError(f"{self.describe()} has no training images.")
        self._fit_labels({n for _, names in raw.values() for n in names})
        index = LabelMap(self.labels or []).index
        for split, (data, names) in raw.items():
            images = self._to_preprocessed(torch.from_numpy(np.ascontiguousarray(data)))
            self.tensors[split] = (images, torch.tensor([index[n] for n in names], dtype=torch.int64))
        if "val" not in self.tensors:
            if self.val_fraction > 0:
                images, targets = self.tensors["train"]
                train_idx, val_idx = S.stratified_split(
                    targets.tolist(), [self.val_fraction], self.seed, self.describe()
                )
                for split, idx in (("train", train_idx), ("val", val_idx)):
                    self.tensors[split] = (images[idx].contiguous(), targets[idx])
                log.info("%s: carved val from train (seed %d)", self.describe(), self.seed)
            else:
                self.tensors["val"] = self.tensors["test"]
                log.info("%s: data.val_fraction=0, validating on the test split", self.describe())
        counts = {s: len(t[1]) for s, t in self.tensors.items()}
        log.info("%s: %d classes, %s images held as tensors", self.describe(), self.num_classes, counts)

    def _to_preprocessed(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(N, H, W[, C])`` -> ``(N, crop, crop, channels)`` in the preprocessing's mode and size."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        pp = self.preprocessing
        if images.ndim == 3:
            images = images[..., None]
        if images.shape[-1] == 1 and pp.channels == 3:
            images = images.expand(-1, -1, -1, 3)
        elif images.shape[-1] == 3 and pp.channels == 1:  # PIL's "L": (19595 R + 38470 G + 7471 B + 2**15) >> 16
            w = torch.tensor([19595, 38470, 7471], dtype=torch.int32)
            images = ((images.to(torch.int32) * w).sum(-1, keepdim=True) + 2**15).bitwise_right_shift(16)
            images = images.to(torch.uint8)
        h, w_ = images.shape[1:3]
        if min(h, w_) != pp.resize_size or (h, w_) != (pp.crop_size, pp.crop_size):
            chw = images.permute(0, 3, 1, 2)
            if min(h, w_) != pp.resize_size:
                interp = InterpolationMode(pp.interpolation)
                chw = TF.resize(chw, pp.resize_size, interpolation=interp, antialias=True)
            chw = TF.center_crop(chw, pp.crop_size)
            images = chw.permute(0, 2, 3, 1)
        return images.contiguous()

    def _device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else self.tensors["train"][0].device

    def _batches(self, split: str, train: bool = False) -> DeviceBatches:
        self.setup()
        device = self._device()
        held = self.tensors[split]
        if held[0].device != device:  # moved once; later loaders (and val = test) reuse the resident copy
            moved = (held[0].to(device), held[1].to(device))
            self.tensors = {s: moved if t is held else t for s, t in self.tensors.items()}
        images, targets = self.tensors[split]
        trainer = getattr(self, "trainer", None)
        return DeviceBatches(
            images,
            targets,
            self.batch_size,
            self.preprocessing.mean,
            self.preprocessing.std,
            train=train,
            seed=self.seed,
            translate=self.translate,
            hflip=self.hflip,
            pad_mode=self.pad_mode,
            rank=trainer.global_rank if trainer is not None and train else 0,
            world_size=trainer.world_size if trainer is not None and train else 1,
        )

    def eval_dataloader(self, split: str) -> DeviceBatches:  # type: ignore[override]
        """Any split unaugmented and in order, where the data is (the Trainer moves each batch): for evaluation."""
        return self._batches(split)

    def train_dataloader(self) -> DeviceBatches:  # type: ignore[override]
        return self._batches("train", train=True)

    def val_dataloader(self) -> DeviceBatches:  # type: ignore[override]
        return self._batches("val")

    def test_dataloader(self) -> DeviceBatches:  # type: ignore[override]
        return self._batches("test")

    def predict_dataloader(self) -> DeviceBatches:  # type: ignore[override]
        return self._batches("test")
