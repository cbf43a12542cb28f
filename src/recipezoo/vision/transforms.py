"""Image preprocessing: the eval transform (also re-implemented in numpy by the ONNX runtime) and train augmentation.

The eval transform is deliberately simple and PIL-based — resize the shorter side, centre-crop, scale to [0, 1],
normalise — so :mod:`recipezoo.runtime.vision` reproduces it exactly with Pillow and numpy alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torchvision.transforms import InterpolationMode, v2


@dataclass
class Preprocessing:
    """What an image goes through before the network; saved in checkpoints and export metadata.

    Attributes:
        mode: PIL mode the image is converted to (``RGB`` or ``L``).
        resize_size: the shorter side is resized to this.
        crop_size: then centre-cropped to a square of this side.
        mean: per-channel mean subtracted after scaling to [0, 1].
        std: per-channel std divided by.
        interpolation: ``bilinear``, ``bicubic`` or ``nearest``.
    """

    mode: str = "RGB"
    resize_size: int = 256
    crop_size: int = 224
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    interpolation: str = "bilinear"

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_preprocessing(
    backbone_defaults: dict[str, Any],
    mode: str = "RGB",
    image_size: int | None = None,
    resize_size: int | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    interpolation: str = "bilinear",
) -> Preprocessing:
    """Merge explicit settings over the backbone's defaults (explicit values win)."""
    if mode not in ("RGB", "L"):
        raise ValueError(f"data.mode must be RGB or L, got {mode!r}")
    channels = 1 if mode == "L" else 3
    crop = int(image_size or backbone_defaults["crop_size"])
    if resize_size is None:
        # Keep the backbone's resize/crop ratio (e.g. 256/224) when only the crop size was changed.
        ratio = backbone_defaults["resize_size"] / backbone_defaults["crop_size"]
        resize_size = int(round(crop * ratio))
    mean = list(mean or backbone_defaults.get("mean") or [0.5] * channels)
    std = list(std or backbone_defaults.get("std") or [0.5] * channels)
    if len(mean) != channels:  # ImageNet statistics for a grayscale input: average them
        mean, std = [sum(mean) / len(mean)] * channels, [sum(std) / len(std)] * channels
    return Preprocessing(mode, int(resize_size), crop, [float(m) for m in mean], [float(s) for s in std], interpolation)


# RandomResizedCrop's defaults in train_transform, also read by working_size.
CROP_SCALE = (0.35, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)


def eval_transform(pp: Preprocessing) -> v2.Compose:
    """Resize shorter side, centre-crop, scale to [0, 1], normalise: PIL image -> (C, H, W) float tensor."""
    return v2.Compose(
        [
            v2.Resize(pp.resize_size, interpolation=InterpolationMode(pp.interpolation), antialias=True),
            v2.CenterCrop(pp.crop_size),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(pp.mean, pp.std),
        ]
    )


def train_transform(
    pp: Preprocessing,
    scale: tuple[float, float] = CROP_SCALE,
    ratio: tuple[float, float] = CROP_RATIO,
    hflip: float = 0.5,
    auto_augment: str | None = None,
    color_jitter: float = 0.0,
) -> v2.Compose:
    """Training augmentation: random-resized crop, horizontal flip, optional RandAugment/TrivialAugment.

    Args:
        pp: the preprocessing the eval transform uses (size, mean, std).
        scale: RandomResizedCrop area range; ``[1, 1]`` with ``ratio=[1, 1]`` disables cropping.
        ratio: RandomResizedCrop aspect-ratio range.
        hflip: probability of a horizontal flip (0 for digits and text, where mirroring changes the class).
        auto_augment: ``randaugment``, ``trivialaugment`` or None.
        color_jitter: brightness/contrast/saturation jitter strength, 0 to disable.
    """
    interp = InterpolationMode(pp.interpolation)
    ops: list[Any] = [
        v2.RandomResizedCrop(pp.crop_size, scale=tuple(scale), ratio=tuple(ratio), interpolation=interp, antialias=True)
    ]
    if hflip > 0:
        ops.append(v2.RandomHorizontalFlip(hflip))
    if color_jitter > 0:
        ops.append(v2.ColorJitter(color_jitter, color_jitter, color_jitter if pp.mode == "RGB" else 0))
    if auto_augment == "randaugment":
        ops.append(v2.RandAugment(interpolation=interp))
    elif auto_augment == "trivialaugment":
        ops.append(v2.TrivialAugmentWide(interpolation=interp))
    elif auto_augment:
        raise ValueError(f"data.augment.auto_augment must be randaugment, trivialaugment or null, got {auto_augment!r}")
    ops += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(pp.mean, pp.std)]
    return v2.Compose(ops)


def working_size(pp: Preprocessing, augment: dict[str, Any] | None = None) -> int:
    """The shorter side an image can be reduced to, once, before a transform: its result is unchanged (eval) or
    keeps its resolution (train).

    For :func:`eval_transform` (``augment`` None) it is ``resize_size``, the transform's own first step: an image
    reduced to it the same way goes through unchanged. For :func:`train_transform` (``augment`` its keyword
    arguments) it is the side at which RandomResizedCrop's smallest, most elongated crop is still ``crop_size``
    pixels across its short side, so every crop is only ever downscaled to the network's input, as it is from the
    full image: ``crop_size * sqrt(R / min_scale)`` with ``R = max(max_ratio, 1 / min_ratio)`` (for a square image,
    the worst case), e.g. 1.95 x the crop size with the default ``scale=[0.35, 1]``, ``ratio=[3/4, 4/3]``.
    """
    if augment is None:
        return pp.resize_size
    scale = augment.get("scale") or CROP_SCALE
    ratio = augment.get("ratio") or CROP_RATIO
    elongation = max(1.0, float(max(ratio)), 1.0 / float(min(ratio)))
    return math.ceil(pp.crop_size * math.sqrt(elongation / max(float(min(scale)), 1e-6)) - 1e-9)
