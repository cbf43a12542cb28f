"""ImageClassifier: the LightningModule for image classification, whatever the backbone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
import torchmetrics as tm
from torch import nn

from recipezoo.core.finetune import FineTuningPolicy, as_policy
from recipezoo.core.task import Task, classification_metrics

log = logging.getLogger(__name__)


class ImageClassifier(Task):
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
        super().__init__(net, optimizer, scheduler, as_policy(finetune), compile)
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.channels_last = channels_last
        self.labels = list(labels) if labels else [str(i) for i in range(num_classes)]
        self.preprocessing = dict(preprocessing or {})
        self.mix = self._mixer(mixup_alpha, cutmix_alpha, num_classes)
        self.train_metrics = classification_metrics(num_classes, "train/", f1=False)
        self.val_metrics = classification_metrics(num_classes, "val/", top_k=5)
        self.test_metrics = classification_metrics(num_classes, "test/", top_k=5)
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
        super().setup(stage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> logits (B, num_classes)
        if self.channels_last is True:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.network(x)

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

    def logits_and_labels(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        return self(x), y

    def eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics.update(logits, y)
        # sync_dist reduces the loss across DDP ranks; torchmetrics reduce their own states.
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", sync_dist=True, batch_size=x.shape[0])
        self.log_dict(metrics, prog_bar=stage == "val", batch_size=x.shape[0])
        return logits

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self.confusion.update(self.eval_step(batch, "test"), batch[1])

    def on_test_epoch_end(self) -> None:
        self.save_confusion_matrix(self.confusion, self.labels)

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
