"""Predict with an exported image-classification bundle using onnxruntime, numpy and Pillow alone (no torch).

This file is copied into every ONNX image bundle as ``loader.py``, so a bundle works on a machine without
recipezoo::

    from loader import OnnxImageClassifier            # or: from recipezoo.runtime.vision import ...
    clf = OnnxImageClassifier("path/to/bundle")
    clf.predict(["cat.jpg", "dog.png"])               # [("cat", 0.97), ("dog", 0.88)]
    clf.predict_proba(["cat.jpg"])                    # (1, num_classes) numpy array

or from the shell: ``python loader.py path/to/bundle image.jpg [more images ...]``.

The preprocessing reproduces recipezoo's eval transform exactly: convert to the bundle's PIL mode, resize the
shorter side with Pillow, centre-crop, scale to [0, 1], normalise.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


TASKS = ("image_classification",)  # the tasks this loader serves (metadata.json's "task")


class BundleError(ValueError):
    """A path this loader cannot serve: missing, not an export folder, another task's bundle, a damaged bundle."""


def read_metadata(
    bundle: str | Path, tasks: Sequence[str] = TASKS, required: Sequence[str] = (), files: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``metadata.json`` of an ONNX bundle folder, checked before anything is opened.

    Args:
        bundle: the folder ``scripts/export.py`` wrote.
        tasks: the tasks this loader serves (a bundle whose metadata names no task is accepted).
        required: metadata keys the caller reads.
        files: files the caller reads besides the model file.

    Raises:
        BundleError: one line saying what ``bundle`` is instead (missing, a file, a folder without metadata.json,
            another task's or format's bundle, a bundle missing a file) and what to pass.
    """
    p = Path(bundle).expanduser()
    export = "pass the folder scripts/export.py wrote (it holds metadata.json and model.onnx)"
    if not p.exists():
        raise BundleError(f"{p} not found; {export}.")
    if p.is_file():
        if (p.parent / "metadata.json").is_file():
            raise BundleError(f"{p} is a file; pass the bundle folder that holds it: {p.parent}")
        if p.suffix == ".ckpt":
            raise BundleError(
                f"{p} is a checkpoint, not an export bundle; export it first (scripts/export.py ckpt={p} "
                "format=onnx) or predict from it with scripts/predict.py."
            )
        raise BundleError(f"{p} is a file, not a bundle folder; {export}.")
    meta_file = p / "metadata.json"
    if not meta_file.is_file():
        inner = sorted(p.glob("*/metadata.json")) + sorted(p.glob("export/*/metadata.json"))
        hint = f"; the bundle inside it is {inner[0].parent}" if inner else f"; {export}"
        raise BundleError(f"{p} holds no metadata.json, so it is not an export bundle{hint}.")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BundleError(
            f"{meta_file} is damaged ({type(e).__name__}); copy the bundle again or re-export it."
        ) from None
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_file} holds no bundle metadata; {export}.")
    task, fmt = meta.get("task"), meta.get("format", "onnx")
    if task is not None and task not in tasks:
        own = p / "loader.py"
        where = f": python {own} ..." if own.is_file() else " (scripts/predict.py reads every task's bundle)"
        raise BundleError(
            f"{p} holds a model for '{task}', not {' or '.join(tasks)}; use that bundle's own loader{where}"
        )
    if fmt != "onnx":
        raise BundleError(
            f"{p} is a {fmt} bundle; this loader runs ONNX bundles (export with format=onnx, or predict from this "
            "one with scripts/predict.py)."
        )
    missing = [k for k in ("model_file", *required) if k not in meta]
    if missing:
        raise BundleError(
            f"{meta_file} lacks {', '.join(missing)}: a bundle of another recipezoo version? Re-export it."
        )
    absent = [f for f in (meta["model_file"], *files) if not (p / f).is_file()]
    if absent:
        raise BundleError(f"{p} lacks {', '.join(absent)}: copy the whole folder that scripts/export.py wrote.")
    return meta


def open_session(path: str | Path, providers: Sequence[str]) -> Any:
    """An onnxruntime session on ``path`` (warnings off); a file onnxruntime cannot read raises :class:`BundleError`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=list(providers))
    except Exception as e:  # onnxruntime's own error types (InvalidProtobuf, Fail...) live in a private module
        text = (str(e).strip().splitlines() or [""])[0]
        reason = text if 0 < len(text) <= 160 else type(e).__name__
        raise BundleError(
            f"cannot open {path} with onnxruntime ({reason}); copy the bundle again or re-export it."
        ) from None


def preprocess(image: Any, pp: dict[str, Any]) -> np.ndarray:
    """A path or PIL image -> normalised ``(C, H, W)`` float32 array, as the model saw in training.

    Args:
        image: a file path or a PIL image.
        pp: the bundle's ``preprocessing`` metadata (mode, resize_size, crop_size, mean, std, interpolation).
    """
    if not isinstance(image, Image.Image):
        with Image.open(image) as f:
            image = f.convert(pp["mode"])
    else:
        image = image.convert(pp["mode"])
    w, h = image.size
    size = pp["resize_size"]
    # Same arithmetic as torchvision's Resize(int): the shorter side becomes `size`, the longer is truncated.
    if (w, h) != (size, size):
        if w <= h:
            new_w, new_h = size, int(size * h / w)
        else:
            new_w, new_h = int(size * w / h), size
        if (new_w, new_h) != (w, h):
            image = image.resize((new_w, new_h), _RESAMPLE[pp.get("interpolation", "bilinear")])
        w, h = new_w, new_h
    crop = pp["crop_size"]
    if (w, h) != (crop, crop):
        if crop > w or crop > h:  # torchvision pads with zeros before cropping
            canvas = Image.new(image.mode, (max(w, crop), max(h, crop)))
            canvas.paste(image, ((max(w, crop) - w) // 2, (max(h, crop) - h) // 2))
            image, (w, h) = canvas, canvas.size
        top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
        image = image.crop((left, top, left + crop, top + crop))
    x = np.asarray(image, dtype=np.float32) / 255.0
    x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)  # (C, H, W)
    mean = np.asarray(pp["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(pp["std"], dtype=np.float32)[:, None, None]
    return (x - mean) / std


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class OnnxImageClassifier:
    """An exported image classifier: ``predict`` on paths or PIL images.

    Args:
        bundle: the export folder holding ``metadata.json`` and ``model.onnx``.
        providers: onnxruntime execution providers (default CPU).
    """

    def __init__(self, bundle: str | Path, providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        self.bundle = Path(bundle).expanduser()
        self.metadata = read_metadata(self.bundle, required=("labels", "preprocessing"))
        self.labels: list[str] = self.metadata["labels"]
        self.preprocessing: dict[str, Any] = self.metadata["preprocessing"]
        self.session = open_session(self.bundle / self.metadata["model_file"], providers)
        self.input_name = self.session.get_inputs()[0].name

    def predict_proba(self, images: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, ``(N, num_classes)``."""
        out = []
        for i in range(0, len(images), batch_size):
            x = np.stack([preprocess(im, self.preprocessing) for im in images[i : i + batch_size]])
            out.append(softmax(self.session.run(None, {self.input_name: x})[0]))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def predict(self, images: Sequence[Any], batch_size: int = 64) -> list[tuple[str, float]]:
        """``(label, probability)`` of the top class for every image."""
        proba = self.predict_proba(images, batch_size)
        return [(self.labels[int(i)], float(p[i])) for p, i in zip(proba, proba.argmax(-1))]


def main(argv: Sequence[str]) -> int:
    """``python loader.py <bundle folder> <image> [<image> ...]``: one ``path, label, probability`` line per image;
    a bad bundle or image ends in one ``error:`` line and status 2."""
    usage = "usage: python loader.py <bundle folder> <image> [<image> ...]"
    if argv[:1] in (["-h"], ["--help"]):
        print(usage)
        return 0
    if len(argv) < 2:
        print(usage, file=sys.stderr)
        return 2
    try:
        clf = OnnxImageClassifier(argv[0])
        results = clf.predict(list(argv[1:]))
    except (BundleError, OSError) as e:  # OSError: a missing or unreadable image (Pillow's error is one)
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path, (label, p) in zip(argv[1:], results):
        print(f"{path}\t{label}\t{p:.4f}")
    return 0


if __name__ == "__main__":
    if code := main(sys.argv[1:]):
        sys.exit(code)
