"""ImageClassifier: the LightningModule for image classification, whatever the backbone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import lightning.pytorch as L
import torch
import torch.nn.functional as F
import torchmetrics as tm
from torch import nn

from recipezoo.core.compile import compile_network, network
from recipezoo.core.finetune import FineTuningCallback, FineTuningPolicy
from recipezoo.core.lean import LeanHookName
from recipezoo.core.metrics import write_confusion_matrix
from recipezoo.core.optim import configure_module

log = logging.getLogger(__name__)


class ImageClassifier(LeanHookName, L.LightningModule):
    """Trains any :class:`recipezoo.vision.models.Classifier` with cross-entropy.

    Args:
        net: the network (``head`` and ``layer_groups()`` drive the fine-tuning policy).
        num_classes: number of classes.
        optimizer: a partial optimizer (``torch.optim.AdamW`` with its lr/weight_decay) taking param groups.
        scheduler: a partial ``(optimizer, total_steps) -> LRScheduler`` from :mod:`recipezoo.core.optim`, or None.
        finetune: the fine-tuning policy (freeze/unfreeze, backbone LR multiplier, layer decay, frozen BatchNorm).
        label_smoothing: cross-entropy label smoothing.
        mixup_alpha: MixUp strength; 0 disables.
        cutmix_alpha: CutMix strength; 0 disables (with both on, one is picked per batch).
        channels_last: use the channels-last memory format (faster convolutions on GPU with mixed precision);
            ``auto`` turns it on when training on a CUDA device.
        compile: wrap the network in ``torch.compile``.
        labels: class names, in label-index order (saved with the model).
        preprocessing: the eval preprocessing (size, mean, std), carried into exports.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        finetune: dict[str, Any] | FineTuningPolicy | None = None,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        channels_last: bool | str = "auto",
        compile: bool = False,
        labels: list[str] | None = None,
        preprocessing: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.num_classes = num_classes
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.policy = finetune if isinstance(finetune, FineTuningPolicy) else FineTuningPolicy(**(finetune or {}))
        self.label_smoothing = label_smoothing
        self.channels_last = channels_last
        self.labels = list(labels) if labels else [str(i) for i in range(num_classes)]
        self.compile = compile
        self.preprocessing = dict(preprocessing or {})
        self.mix = self._mixer(mixup_alpha, cutmix_alpha, num_classes)

        def metrics(prefix: str) -> tm.MetricCollection:
            m: dict[str, tm.Metric] = {
                "acc": tm.Accuracy(task="multiclass", num_classes=num_classes),
                "f1": tm.F1Score(task="multiclass", num_classes=num_classes, average="macro"),
            }
            if num_classes > 5:
                m["acc_top5"] = tm.Accuracy(task="multiclass", num_classes=num_classes, top_k=5)
            # compute_groups=False: with groups on, torchmetrics shares one state between metrics whose states look
            # alike, and top-5 accuracy's stat scores then leak into macro F1 (F1 = 1.0 beside 99% accuracy).
            return tm.MetricCollection(m, prefix=prefix, compute_groups=False)

        self.train_metrics = tm.MetricCollection(
            {"acc": tm.Accuracy(task="multiclass", num_classes=num_classes)}, prefix="train/"
        )
        self.val_metrics = metrics("val/")
        self.test_metrics = metrics("test/")
        self.confusion = tm.ConfusionMatrix(task="multiclass", num_classes=num_classes)

    @staticmethod
    def _mixer(mixup: float, cutmix: float, num_classes: int) -> Callable | None:
        from torchvision.transforms import v2

        ops = ([v2.MixUp(alpha=mixup, num_classes=num_classes)] if mixup > 0 else []) + (
            [v2.CutMix(alpha=cutmix, num_classes=num_classes)] if cutmix > 0 else []
        )
        return v2.RandomChoice(ops) if len(ops) > 1 else (ops[0] if ops else None)

    def setup(self, stage: str) -> None:
        if self.channels_last == "auto":
            self.channels_last = self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        compile_network(self, self.compile, stage)

    def configure_callbacks(self) -> list[L.Callback]:
        return [FineTuningCallback(self.policy)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> logits (B, num_classes)
        if self.channels_last is True:
            x = x.contiguous(memory_format=torch.channels_last)
        return network(self)(x)

    def _train_forward(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        if self.mix is not None:
            x, soft = self.mix(x, y)  # soft targets (B, num_classes)
            logits = self(x)
            return logits, F.cross_entropy(logits, soft, label_smoothing=self.label_smoothing)
        logits = self(x)
        return logits, F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The training objective of a batch, without metrics or logging (what a plain PyTorch loop computes)."""
        return self._train_forward(batch)[1]

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits, loss = self._train_forward(batch)
        self.train_metrics.update(logits.detach(), batch[1])
        return loss

    def on_train_epoch_end(self) -> None:
        # Logged once per epoch (core.metrics.TrainLoss logs the loss): a self.log per step costs milliseconds.
        self.log_dict(self.train_metrics.compute())
        self.train_metrics.reset()

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics.update(logits, y)
        # sync_dist reduces the loss across DDP ranks; torchmetrics reduce their own states.
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", sync_dist=True, batch_size=x.shape[0])
        self.log_dict(metrics, prog_bar=stage == "val", batch_size=x.shape[0])
        return logits

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        logits = self._eval_step(batch, "test")
        self.confusion.update(logits, batch[1])

    def on_test_epoch_end(self) -> None:
        matrix = self.confusion.compute().cpu().tolist()  # reduced over ranks; rows = true, columns = predicted
        self.confusion.reset()
        self.test_confusion_matrix = matrix
        write_confusion_matrix(self.trainer, self.labels, matrix)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self(x).softmax(-1)

    def export_spec(self, batch_size: int = 8) -> Any:
        """What :mod:`recipezoo.export` writes: the network on a normalised image batch, batch axis dynamic."""
        from recipezoo.core.export import ExportSpec

        pp = self.preprocessing or {}
        channels = 1 if pp.get("mode") == "L" else 3
        size = int(pp.get("crop_size", 224))

        def make(n: int) -> dict[str, torch.Tensor]:
            return {"input": torch.randn(n, channels, size, size)}  # normalised images are roughly N(0, 1)

        return ExportSpec(
            model=self.net.eval(),
            inputs=make(batch_size),
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            metadata={
                "task": "image_classification",
                "labels": self.labels,
                "preprocessing": pp,
                "postprocessing": "softmax over logits",
            },
            make_inputs=make,
        )

    def configure_optimizers(self) -> Any:
        return configure_module(self)
