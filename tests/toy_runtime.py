"""The toy task's torch-free runtime (numpy and onnxruntime only), copied into its ONNX bundles as ``loader.py``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class OnnxToyClassifier:
    """Class probabilities ``(N, num_classes)`` for points ``(N, 4)`` from an exported toy bundle."""

    def __init__(self, bundle: str | Path) -> None:
        import onnxruntime as ort

        bundle = Path(bundle)
        self.metadata = json.loads((bundle / "metadata.json").read_text())
        self.session = ort.InferenceSession(
            str(bundle / self.metadata["model_file"]), providers=["CPUExecutionProvider"]
        )

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        logits = self.session.run(None, {"features": np.asarray(x, dtype=np.float32)})[0]
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
