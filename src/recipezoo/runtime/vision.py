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
        import onnxruntime as ort

        self.bundle = Path(bundle)
        self.metadata = json.loads((self.bundle / "metadata.json").read_text())
        self.labels: list[str] = self.metadata["labels"]
        self.preprocessing: dict[str, Any] = self.metadata["preprocessing"]
        self.session = ort.InferenceSession(str(self.bundle / self.metadata["model_file"]), providers=list(providers))
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


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python loader.py <bundle folder> <image> [<image> ...]")
    clf = OnnxImageClassifier(sys.argv[1])
    for path, (label, p) in zip(sys.argv[2:], clf.predict(sys.argv[2:])):
        print(f"{path}\t{label}\t{p:.4f}")
