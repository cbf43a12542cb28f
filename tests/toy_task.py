"""A toy task that exists only through the registry: two Gaussian blobs in four dimensions, a linear classifier.

Nothing in ``src/`` names it. ``tests/test_registry.py`` registers it, composes it into a config, trains it with
``recipezoo.train.run``, predicts with ``recipezoo.predict.predict`` and exports it with ``recipezoo.export.export``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from recipezoo.core.bundle import Loaded, load
from recipezoo.core.errors import new_output_file, write_rows
from recipezoo.core.export import ExportSpec

TASK = "toy_classification"
LABELS = ["left", "right"]
FEATURES = 4


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points ``(n, 4)`` float32 around -1 (label 0) and +1 (label 1), and their labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0.0, 0.5, (n, FEATURES)) + np.where(y[:, None] == 1, 1.0, -1.0)
    return x.astype(np.float32), y.astype(np.int64)


class ToyDataModule(L.LightningDataModule):
    """Train, val and test splits of :func:`blobs`, with the ``info`` every recipezoo DataModule exposes."""

    def __init__(self, size: int = 256, batch_size: int = 32, synthetic: bool = True, num_workers: int = 0) -> None:
        super().__init__()
        self.size, self.batch_size = size, batch_size
        self.splits: dict[str, TensorDataset] = {}

    @property
    def info(self) -> dict[str, Any]:
        return {"num_classes": len(LABELS), "labels": LABELS, "preprocessing": {"features": FEATURES}}

    def restore(self, info: dict[str, Any]) -> None:
        """Nothing fitted on the data: the labels are fixed."""

    def setup(self, stage: str | None = None) -> None:
        for i, name in enumerate(("train", "val", "test")):
            x, y = blobs(self.size if name == "train" else self.size // 4, seed=i)
            self.splits[name] = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["train"], batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["val"], batch_size=self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.splits["test"], batch_size=self.batch_size)

    def eval_dataloader(self, split: str) -> DataLoader:
        return DataLoader(self.splits[split], batch_size=self.batch_size)


class ToyClassifier(L.LightningModule):
    """A linear layer over the four features; logs ``val/acc``, ``val/loss`` and ``test/acc``."""

    def __init__(self, labels: list[str], preprocessing: dict[str, Any], lr: float = 0.1) -> None:
        super().__init__()
        self.labels, self.preprocessing, self.lr = list(labels), dict(preprocessing), lr
        self.net = nn.Linear(int(self.preprocessing["features"]), len(self.labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def _evaluate(self, batch: Any, stage: str) -> None:
        x, y = batch
        logits = self(x)
        self.log(f"{stage}/loss", nn.functional.cross_entropy(logits, y), batch_size=len(y))
        self.log(f"{stage}/acc", (logits.argmax(-1) == y).float().mean(), batch_size=len(y))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def export_spec(self, batch_size: int) -> ExportSpec:
        """No ``task`` in the metadata: export takes it from the registry."""

        def make(n: int) -> dict[str, torch.Tensor]:
            return {"features": torch.from_numpy(blobs(n, seed=7)[0])}

        return ExportSpec(
            model=self.net.eval(),
            inputs=make(batch_size),
            output_names=["logits"],
            dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
            metadata={"labels": self.labels, "preprocessing": self.preprocessing},
            make_inputs=make,
        )


class NamedToyClassifier(ToyClassifier):
    """The same network, naming its task itself (no registered module string points at it)."""

    task_name = TASK


def read_points(path: str | Path) -> np.ndarray:
    """The rows of a CSV with a header and four numeric columns, as ``(N, 4)`` float32."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    return np.asarray(rows, dtype=np.float32).reshape(-1, FEATURES)


def write_points(path: Path, x: np.ndarray) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"f{i}" for i in range(FEATURES)])
        writer.writerows(x.tolist())


def predict_points(
    source: str | Path | Loaded,
    input: str | Path,
    output: str | Path = "predictions.csv",
    batch_size: int = 64,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """The toy task's predictor: ``row, prediction, confidence`` for every point of ``input``."""
    out = new_output_file(output, overwrite)
    loaded = load(source, (TASK,))
    x = read_points(input)
    if loaded.format == "onnx":  # the torch-free runtime the bundle carries as loader.py
        proba = loaded.runtime().OnnxToyClassifier(loaded.bundle).predict_proba(x)
    else:
        with torch.no_grad():
            proba = torch.softmax(loaded.model(torch.from_numpy(x)), -1).numpy()
    labels = loaded.metadata["labels"]
    rows = [
        {"row": i, "prediction": labels[int(p.argmax())], "confidence": float(p.max())} for i, p in enumerate(proba)
    ]
    write_rows(out, rows)
    return rows
