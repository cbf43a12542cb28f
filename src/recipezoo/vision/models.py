"""Image classification networks: recipezoo's small CNNs, torchvision and timm backbones behind one door.

``create_model(name, num_classes, pretrained=...)`` resolves ``name`` in this order: recipezoo's own registry
(:data:`MODELS`), torchvision (``torchvision.models.get_model``), timm (``timm.create_model``). Prefix the name with
``torchvision:`` or ``timm:`` to pick a library explicitly. Every model comes back wrapped in :class:`Classifier`,
which exposes the classifier head and the backbone blocks the fine-tuning policy works on, and carries the
preprocessing its weights expect.

This module imports torch and the backbone libraries only: no Lightning, no Hydra.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from recipezoo.core import pretrained as door
from recipezoo.core.errors import ConfigError, PretrainedError, close_matches
from recipezoo.core.pretrained import Pretrained, parse_pretrained

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The setting that renames a weights file's keys, named in messages.
KEY_MAP_OPTION = "backbone.key_map"


class Classifier(nn.Module):
    """A backbone whose last module is its classifier head.

    Args:
        model: the full network, as its library builds it (so its state dict matches the library's weight files).
        head_name: attribute path of the classifier inside ``model`` (``fc``, ``classifier.1``, ``head.fc``).
        default_preprocessing: input size, mean and std the weights expect.
    """

    def __init__(
        self, model: nn.Module, head_name: str, default_preprocessing: dict[str, Any], blocks: str | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.head_name = head_name
        self.blocks = blocks
        self.default_preprocessing = default_preprocessing

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, num_classes)
        return self.model(x)

    @property
    def head(self) -> nn.Module:
        return self.model.get_submodule(self.head_name)

    def layer_groups(self) -> list[nn.Module]:
        """Backbone blocks from input to output: the top-level children that are not (and do not hold) the head."""
        if self.blocks is not None:  # a container whose children are the blocks (e.g. ConvNet stages)
            return list(self.model.get_submodule(self.blocks).children())
        top = self.head_name.split(".")[0]
        blocks = [m for n, m in self.model.named_children() if n != top and any(True for _ in m.parameters())]
        if top != self.head_name:  # head nested in a container (``classifier.1``): its siblings are backbone too
            blocks += [
                m
                for n, m in self.model.get_submodule(top).named_children()
                if f"{top}.{n}" != self.head_name and any(True for _ in m.parameters())
            ]
        return blocks


# --------------------------------------------------------------------------------------------------------------
# recipezoo's own small networks, trained from scratch (no pretrained weights are published for them).


class ConvNet(nn.Module):
    """A VGG-style CNN: ``len(widths)`` stages of (conv-BN-ReLU) x ``convs_per_stage`` then 2x2 max-pool.

    Args:
        num_classes: number of output classes.
        in_chans: input channels (1 for grayscale).
        widths: channels per stage; each stage halves the resolution.
        convs_per_stage: conv layers in a stage.
        dropout: dropout before the classifier.
    """

    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        widths: tuple[int, ...] = (32, 64, 128),
        convs_per_stage: int = 2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        stages, c = [], in_chans
        for w in widths:
            layers: list[nn.Module] = []
            for _ in range(convs_per_stage):
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                c = w
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            stages.append(nn.Sequential(*layers))
        self.features = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout))
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)))  # (B, C, H, W) -> (B, c) -> (B, num_classes)


def _convnet(widths: tuple[int, ...], convs: int, size: int) -> Callable[..., Classifier]:
    def build(num_classes: int, in_chans: int = 3, **kwargs: Any) -> Classifier:
        net = ConvNet(num_classes, in_chans, widths, convs, **kwargs)
        # Stages are the blocks the fine-tuning policy freezes and decays.
        return Classifier(
            net, "fc", {"crop_size": size, "resize_size": size, "mean": None, "std": None}, blocks="features"
        )

    build.size = size  # type: ignore[attr-defined]
    return build


class SpeedrunNet(nn.Module):
    """The fast CIFAR-10 network of airbench94 / "How to train your ResNet": a conv stem, then per block
    conv - 2x2 max-pool - BN - GELU - conv - BN - GELU, a global max pool and a linear head scaled down.

    At 32x32 the three blocks leave 4x4 maps; the global max pool makes any input size of at least 8 work.

    Args:
        num_classes: number of output classes.
        in_chans: input channels.
        stem_width: channels of the stem convolution.
        widths: channels of each block; each block halves the resolution.
        head_scale: the logits are multiplied by this (small logits at initialisation train faster here).
        bn_momentum: BatchNorm running-statistics momentum (high: a short run sees few steps).
    """

    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        stem_width: int = 32,
        widths: tuple[int, ...] = (64, 256, 256),
        head_scale: float = 0.125,
        bn_momentum: float = 0.6,
    ) -> None:
        super().__init__()

        def conv_bn(c_in: int, c_out: int, pool: bool = False) -> list[nn.Module]:
            conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
            return [conv, *([nn.MaxPool2d(2)] if pool else []), nn.BatchNorm2d(c_out, momentum=bn_momentum), nn.GELU()]

        blocks = [nn.Sequential(*conv_bn(in_chans, stem_width))]
        c = stem_width
        for w in widths:
            blocks.append(nn.Sequential(*conv_bn(c, w, pool=True), *conv_bn(w, w)))
            c = w
        self.features = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, num_classes, bias=False)
        self.head_scale = head_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).amax(dim=(2, 3))  # (B, C, H, W) -> (B, c): global max pool
        return self.fc(x) * self.head_scale  # (B, num_classes)


def _speedrun(stem_width: int, widths: tuple[int, ...], size: int) -> Callable[..., Classifier]:
    def build(num_classes: int, in_chans: int = 3, **kwargs: Any) -> Classifier:
        kwargs = {"stem_width": stem_width, "widths": widths, **kwargs}
        net = SpeedrunNet(num_classes, in_chans, **kwargs)
        return Classifier(
            net, "fc", {"crop_size": size, "resize_size": size, "mean": None, "std": None}, blocks="features"
        )

    build.size = size  # type: ignore[attr-defined]
    return build


# name -> builder(num_classes, in_chans, **kwargs). Tiny variants exist so tests build real models in milliseconds.
MODELS: dict[str, Callable[..., Classifier]] = {
    "convnet_tiny": _convnet((8, 16), 1, 16),
    "convnet_small": _convnet((32, 64, 128), 2, 32),
    "convnet_medium": _convnet((32, 64, 128, 256), 2, 64),
    "speedrun_net_tiny": _speedrun(8, (8, 16, 16), 16),
    "speedrun_net": _speedrun(32, (64, 256, 256), 32),
}


# --------------------------------------------------------------------------------------------------------------
# torchvision and timm


def _split_source(name: str) -> tuple[str | None, str]:
    for source in ("torchvision", "timm"):
        if name.startswith(source + ":"):
            return source, name[len(source) + 1 :]
    return None, name


def _resolve_source(name: str) -> tuple[str, str]:
    source, bare = _split_source(name)
    if source:
        return source, bare
    if bare in MODELS:
        return "recipezoo", bare
    import torchvision

    if bare in torchvision.models.list_models(module=torchvision.models):
        return "torchvision", bare
    import timm

    if timm.is_model(bare) or bare.startswith("hf-hub:"):
        return "timm", bare
    options = list(MODELS) + torchvision.models.list_models(module=torchvision.models) + timm.list_models()
    raise ConfigError(
        f"unknown backbone '{name}'.{close_matches(bare, options)} "
        "Names come from recipezoo, torchvision or timm (prefix 'timm:' or 'torchvision:' to choose)."
    )


def _torchvision_meta(weights: Any) -> dict[str, Any]:
    """Input size and statistics from a torchvision weights entry's eval transform."""
    tf = weights.transforms()
    return {
        "crop_size": int(tf.crop_size[0]),
        "resize_size": int(tf.resize_size[0]),
        "mean": tuple(tf.mean),
        "std": tuple(tf.std),
    }


def _last_linear(model: nn.Module) -> str:
    name = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not name:
        raise ConfigError(f"cannot find a classifier (nn.Linear) in {type(model).__name__}.")
    return name[-1]


def _load_file(model: nn.Module, pretrained: Pretrained, weights_only: bool, head: str, key_map: Any) -> None:
    """Load a local weights file into ``model`` (``key_map`` renames its keys first: see
    :func:`recipezoo.core.pretrained.parse_key_map`)."""
    state = door.load_state_dict(str(pretrained), weights_only)
    door.load_into(model, state, (head,), str(pretrained), key_map=key_map, map_option=KEY_MAP_OPTION)


def _torchvision(
    name: str, num_classes: int, in_chans: int, pretrained: Pretrained, weights_only: bool, key_map: Any = None
) -> Classifier:
    from torchvision.models import get_model, get_model_weights

    if in_chans != 3:
        raise ConfigError(f"torchvision backbone '{name}' takes 3-channel images; set data.mode=RGB.")
    weights = None
    if pretrained.from_hub:
        enum = get_model_weights(name)
        try:
            weights = enum.DEFAULT if pretrained.kind == "default" else enum[str(pretrained).split(".")[-1]]
        except KeyError:
            raise PretrainedError(
                f"'{pretrained}' is not a weights name for {name}; choose one of "
                f"{', '.join(w.name for w in enum)}, or pass a local file."
            ) from None
    model = get_model(name, weights=None, num_classes=num_classes)
    head = _last_linear(model)
    meta: dict[str, Any] = {"crop_size": 224, "resize_size": 256, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    if weights is not None:
        try:
            state = weights.get_state_dict(progress=True, check_hash=True)
        except Exception as e:  # no network, proxy, hash failure
            raise door.offline_hint(f"torchvision {name} ({weights})", e) from None
        door.load_into(model, state, head_prefixes=(head,), source=f"{weights}")
        meta = _torchvision_meta(weights)
    elif pretrained.kind == "path":
        _load_file(model, pretrained, weights_only, head, key_map)
    return Classifier(model, head, meta)


def _timm(
    name: str, num_classes: int, in_chans: int, pretrained: Pretrained, weights_only: bool, key_map: Any = None
) -> Classifier:
    import timm

    hub = pretrained.from_hub
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_chans": in_chans}
    if pretrained.kind == "hub":
        ref = str(pretrained)
        name = ref if ref.startswith("hf-hub:") else f"{name}.{ref}"
    try:
        model = timm.create_model(name, pretrained=hub, **kwargs)
    except (OSError, RuntimeError, ValueError) as e:
        if hub:
            raise door.offline_hint(f"timm {name}", e) from None
        raise
    head = model.default_cfg.get("classifier") or _last_linear(model)
    head = head[0] if isinstance(head, (list, tuple)) else head
    if pretrained.kind == "path":
        _load_file(model, pretrained, weights_only, head, key_map)
    cfg = timm.data.resolve_data_config(model=model)
    crop = int(cfg["input_size"][-1])
    meta = {
        "crop_size": crop,
        "resize_size": int(round(crop / cfg.get("crop_pct", 0.875))),
        "mean": tuple(cfg["mean"]),
        "std": tuple(cfg["std"]),
    }
    return Classifier(model, head, meta)


def default_preprocessing(name: str, pretrained: Any = False) -> dict[str, Any]:
    """Input size, mean and std a backbone expects, read from its weights' metadata without building it.

    Returns a dict with ``crop_size``, ``resize_size``, ``mean``, ``std`` (mean/std None when the model has no
    reference statistics, as for recipezoo's from-scratch CNNs).
    """
    source, bare = _resolve_source(name)
    if source == "recipezoo":
        size = MODELS[bare].size  # type: ignore[attr-defined]
        return {"crop_size": size, "resize_size": size, "mean": None, "std": None}
    if source == "torchvision":
        meta: dict[str, Any] = {"crop_size": 224, "resize_size": 256, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
        p = parse_pretrained(pretrained)
        if p.from_hub:
            from torchvision.models import get_model_weights

            enum = get_model_weights(bare)
            weights = enum.DEFAULT if p.kind == "default" else enum.__members__.get(str(p).split(".")[-1])
            if weights is not None:
                meta = _torchvision_meta(weights)
        return meta
    import timm

    cfg = timm.get_pretrained_cfg(bare.removeprefix("hf-hub:"))
    if cfg is None:
        return {"crop_size": 224, "resize_size": 256, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    crop = int(cfg.input_size[-1])
    return {
        "crop_size": crop,
        "resize_size": int(round(crop / (cfg.crop_pct or 0.875))),
        "mean": tuple(cfg.mean),
        "std": tuple(cfg.std),
    }


def create_model(
    name: str,
    num_classes: int,
    in_chans: int = 3,
    pretrained: Any = False,
    weights_only: bool = True,
    key_map: Any = None,
    **kwargs: Any,
) -> Classifier:
    """Build an image classifier by name, with optional pretrained weights.

    Args:
        name: a recipezoo model (:data:`MODELS`), a torchvision model or a timm model; ``timm:``/``torchvision:``
            prefixes pick the library.
        num_classes: size of the classifier head (re-initialised when pretrained weights have another size).
        in_chans: input channels.
        pretrained: false, true (the library's default weights), a weights name / hub id, or a local file/folder.
        weights_only: load local files with ``torch.load(weights_only=True)``; set False only for trusted files.
        key_map: renames applied to a local file's keys before they are matched: a list of ``[old, new]`` pairs (or
            a mapping), where ``old`` is a key prefix or ``re:PATTERN`` (see
            :func:`recipezoo.core.pretrained.parse_key_map`); None for none. A file whose names still differ loads
            when its tensors pair with the model's one-to-one by order and shape.
        **kwargs: passed to recipezoo's own builders (e.g. ``dropout``).
    """
    if num_classes < 2:
        raise ConfigError(f"num_classes must be at least 2, got {num_classes}.")
    p = parse_pretrained(pretrained)
    door.parse_key_map(key_map, KEY_MAP_OPTION)  # a malformed map is reported whatever the weights
    if key_map and p.from_hub:  # (not for "none": a checkpoint rebuilds its network without the original file)
        log.warning("%s applies to a local weights file only; ignored with backbone.pretrained=%s.", KEY_MAP_OPTION, p)
    source, bare = _resolve_source(name)
    if source == "recipezoo":
        net = MODELS[bare](num_classes, in_chans, **kwargs)
        if p.from_hub:
            raise PretrainedError(
                f"recipezoo's '{bare}' has no published weights; pass a local file "
                "(e.g. a checkpoint of an earlier run) or backbone.pretrained=false."
            )
        if p.kind == "path":
            # load_state_dict also names a missing file clearly.
            _load_file(net.model, p, weights_only, "fc", key_map)
        return net
    builder = _torchvision if source == "torchvision" else _timm
    return builder(bare, num_classes, in_chans, p, weights_only, key_map)
