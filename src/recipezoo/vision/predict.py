"""Image classification prediction: label image files with a checkpoint or an exported bundle, into a CSV.

``ckpt`` may be a ``.ckpt`` (eager PyTorch), or an export folder / ``model.onnx`` / ``model.pt`` (the bundle's
metadata gives labels and preprocessing). ONNX bundles run through :mod:`recipezoo.runtime.vision`, the same code a
torch-free deployment uses.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recipezoo.core.bundle import Loaded, load
from recipezoo.core.errors import DataError, new_output_file, write_rows
from recipezoo.data.folders import IMAGE_EXTENSIONS, list_files
from recipezoo.runtime.vision import preprocess, softmax

log = logging.getLogger("recipezoo")

TASKS = ("image_classification",)


def list_inputs(input: str | Path) -> list[Path]:
    """An image file, a folder of images (searched recursively) or a text file listing one path per line."""
    p = Path(os.path.expanduser(str(input)))
    if not p.exists():
        raise DataError(f"input not found: {p}. Pass input=<image file, folder of images, or .txt list of paths>.")
    if p.is_dir():
        files = list_files(p, IMAGE_EXTENSIONS, hidden=True)
    elif p.suffix.lower() == ".txt":
        files = [Path(line.strip()).expanduser() for line in p.read_text().splitlines() if line.strip()]
    else:
        files = [p]
    if not files:
        raise DataError(f"no images in {p} (looked for {', '.join(IMAGE_EXTENSIONS)}).")
    return files


class _Predictor:
    """Probabilities for preprocessed batches from a checkpoint, a TorchScript or an ONNX model."""

    def __init__(self, ckpt: str | Path | Loaded) -> None:
        loaded = load(ckpt, TASKS)
        self.kind = loaded.format
        self.preprocessing = dict(loaded.metadata["preprocessing"])
        if loaded.is_checkpoint:
            self.module = loaded.module
            self.labels = list(self.module.labels)
        else:
            self.labels = list(loaded.metadata["labels"])
            if self.kind == "onnx":
                from recipezoo.runtime.vision import OnnxImageClassifier

                self.onnx = OnnxImageClassifier(loaded.bundle)
            else:
                self.script = loaded.model

    def __call__(self, x: np.ndarray) -> np.ndarray:  # (B, C, H, W) float32 -> (B, num_classes)
        if self.kind == "onnx":
            return softmax(self.onnx.session.run(None, {self.onnx.input_name: x})[0])
        import torch

        with torch.no_grad():
            model = self.module if self.kind == "ckpt" else self.script
            return torch.softmax(model(torch.from_numpy(x)), -1).numpy()


def predict_images(
    ckpt: str | Path | Loaded,
    input: str | Path,
    output: str | Path = "predictions.csv",
    batch_size: int = 64,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Label every image under ``input`` and write ``path,prediction,confidence,prob_<label>...`` rows to ``output``.

    Unreadable files are skipped, counted and named in a warning. Returns the rows.
    """
    out = new_output_file(output, overwrite)
    predictor = _Predictor(ckpt)
    files = list_inputs(input)
    rows: list[dict[str, Any]] = []
    bad: list[str] = []
    for i in range(0, len(files), batch_size):
        arrays, paths = [], []
        for f in files[i : i + batch_size]:
            try:
                arrays.append(preprocess(f, predictor.preprocessing))
                paths.append(f)
            except Exception:
                bad.append(str(f))
        if not arrays:
            continue
        proba = predictor(np.stack(arrays).astype(np.float32))
        for f, p in zip(paths, proba):
            k = int(p.argmax())
            rows.append(
                {
                    "path": str(f),
                    "prediction": predictor.labels[k],
                    "confidence": float(p[k]),
                    **{f"prob_{name}": float(v) for name, v in zip(predictor.labels, p)},
                }
            )
    if bad:
        log.warning(
            "Skipped %d unreadable file(s): %s", len(bad), ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        )
    if not rows:
        raise DataError(f"none of the {len(files)} input file(s) could be read as an image.")
    write_rows(out, rows)
    log.info("Wrote %d predictions to %s", len(rows), out)
    return rows


def predict_paths(ckpt: str | Path | Loaded, paths: Sequence[str | Path]) -> np.ndarray:
    """Probabilities ``(N, num_classes)`` for image paths (a programmatic shortcut used by tests and notebooks)."""
    predictor = _Predictor(ckpt)
    return predictor(np.stack([preprocess(p, predictor.preprocessing) for p in paths]).astype(np.float32))
