"""The NLP LightningModules: :class:`TextClassifier` (multi-class, multi-label) and :class:`TokenClassifier`.

Both take the network (from :mod:`recipezoo.nlp.models`) and batches from :mod:`recipezoo.nlp.data`, follow the
shared fine-tuning policy (freeze / unfreeze, layer-wise LR decay, frozen lower layers) and describe their export
(``export_spec``): the network on ``input_ids``, ``attention_mask`` (and ``token_type_ids``) with dynamic batch and
sequence axes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchmetrics as tm
from torch import nn

from recipezoo.core.errors import ConfigError
from recipezoo.core.finetune import FineTuningPolicy, as_policy
from recipezoo.core.task import Task, classification_metrics
from recipezoo.nlp.metrics import MultilabelThresholdSweep, SpanF1
from recipezoo.runtime.text import IGNORE

log = logging.getLogger(__name__)

THRESHOLDS = ("tune", "tune_per_label")
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def metric_name(label: str) -> str:
    """A label as it can appear in a metric name (``test/f1_<label>``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(label)).strip("_") or "_"


class Positional(nn.Module):
    """The network with positional inputs in a fixed order, as export needs: ``(input_ids, attention_mask[, tt])``."""

    def __init__(self, net: nn.Module, inputs: Sequence[str]) -> None:
        super().__init__()
        self.net = net
        self.inputs = list(inputs)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.net(input_ids, attention_mask, token_type_ids)


def _model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: batch[k] for k in MODEL_INPUTS if k in batch}


def _labels(labels: Sequence[str] | None, num_classes: int) -> list[str]:
    return [str(x) for x in labels] if labels else [str(i) for i in range(num_classes)]


def text_export_spec(module: Task, task: str, metadata: dict[str, Any], batch_size: int = 8) -> Any:
    """What :mod:`recipezoo.export` writes for either NLP task: the network on token ids, batch and sequence axes
    dynamic, with the labels, the tokenizer settings and the task's own ``metadata``."""
    from recipezoo.core.export import ExportSpec

    inputs = list(module.preprocessing.get("model_inputs") or ["input_ids", "attention_mask"])
    pad_id = int(module.preprocessing.get("pad_id", 0))
    vocab = int(module.net.vocab_size)

    def make(n: int) -> dict[str, torch.Tensor]:
        # Another batch size also gets another length, so the parity check proves both axes dynamic; the first
        # row is padded, so the attention-mask path is what gets exported (and traced).
        t = 6 + 2 * n
        ids = torch.randint(0, vocab, (n, t))
        mask = torch.ones(n, t, dtype=torch.long)
        ids[0, t // 2 :], mask[0, t // 2 :] = pad_id, 0
        out = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in inputs:
            out["token_type_ids"] = torch.zeros(n, t, dtype=torch.long)
        return out

    axes = {name: {0: "batch", 1: "sequence"} for name in inputs}
    axes["logits"] = {0: "batch", 1: "sequence"} if task == "token_classification" else {0: "batch"}
    return ExportSpec(
        model=Positional(module.net, inputs).eval(),
        inputs=make(batch_size),
        output_names=["logits"],
        dynamic_axes=axes,
        metadata={"task": task, "labels": module.labels, "preprocessing": module.preprocessing, **metadata},
        make_inputs=make,
    )


class TextClassifier(Task):
    """Text classification, multi-class (cross-entropy) or multi-label (per-label sigmoid).

    Logged: ``train/loss_step``, ``train/loss_epoch``;
    ``val|test/loss``; multi-class ``val|test/acc``, ``val|test/f1`` (macro) and on test
    ``test/f1_<label>`` per class (up to 20 classes) plus ``test_confusion_matrix.csv``; multi-label
    ``val|test/f1_macro``, ``val|test/f1_micro`` at the decision threshold, ``*/f1_macro_at_0.5``, and
    ``val/threshold``.

    Args:
        net: ``(input_ids, attention_mask[, token_type_ids]) -> logits (B, num_classes)``.
        num_classes: classes, or labels for multi-label.
        optimizer: a partial optimizer taking param groups.
        scheduler: a partial ``(optimizer, total_steps) -> LRScheduler``, or None.
        finetune: the fine-tuning policy.
        multi_label: independent labels (sigmoid + BCE) instead of one class per text.
        labels: label names in index order.
        label_smoothing: multi-class cross-entropy label smoothing.
        threshold: multi-label decision threshold: ``tune`` (one threshold for all labels, chosen on validation to
            maximise macro F1 after every validation epoch and saved with that epoch's checkpoint),
            ``tune_per_label`` (one per label), or a number.
        preprocessing: the tokenizer settings (``data_info.preprocessing``), carried into exports.
        compile: ``torch.compile`` the network for training.
    """

    task = "text_classification"

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        finetune: dict[str, Any] | FineTuningPolicy | None = None,
        multi_label: bool = False,
        labels: Sequence[str] | None = None,
        label_smoothing: float = 0.0,
        threshold: str | float = "tune",
        preprocessing: dict[str, Any] | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__(net, optimizer, scheduler, as_policy(finetune), compile)
        self.labels = _labels(labels, num_classes)
        self.preprocessing = dict(preprocessing or {})
        self.num_classes = int(num_classes)
        self.multi_label = bool(multi_label)
        self.label_smoothing = float(label_smoothing)
        if isinstance(threshold, str) and threshold not in THRESHOLDS:
            try:
                threshold = float(threshold)
            except ValueError:
                raise ConfigError(
                    f"model.threshold must be {' or '.join(THRESHOLDS)} or a number, got '{threshold}'."
                ) from None
        self.threshold = threshold
        # The multi-label decision thresholds (one per label): in the state dict, so every checkpoint carries the
        # ones chosen at its own epoch.
        start = 0.5 if isinstance(threshold, str) else float(threshold)
        self.register_buffer("thresholds", torch.full((self.num_classes,), start))
        if self.multi_label:
            self.val_sweep = MultilabelThresholdSweep(self.num_classes)
            self.test_sweep = MultilabelThresholdSweep(self.num_classes)
        else:
            self.val_metrics = classification_metrics(self.num_classes, "val/")
            self.test_metrics = classification_metrics(self.num_classes, "test/")
            self.test_f1_per_class = tm.F1Score(task="multiclass", num_classes=self.num_classes, average=None)
            self.confusion = tm.ConfusionMatrix(task="multiclass", num_classes=self.num_classes)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits.float(), y.float())
        return F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.network(input_ids, attention_mask, token_type_ids)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training objective of a batch, without logging (what a plain PyTorch loop computes)."""
        return self._loss(self(**_model_inputs(batch)), batch["labels"])

    def logits_and_labels(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.multi_label:
            raise NotImplementedError("the linear probe covers single-label classification only")
        return self(**_model_inputs(batch)), batch["labels"]

    def eval_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(**_model_inputs(batch))
        y = batch["labels"]
        self.log(f"{stage}/loss", self._loss(logits, y), sync_dist=True, batch_size=logits.shape[0])
        if self.multi_label:
            (self.val_sweep if stage == "val" else self.test_sweep).update(torch.sigmoid(logits.float()), y)
        else:
            metrics = self.val_metrics if stage == "val" else self.test_metrics
            metrics.update(logits, y)
            self.log_dict(metrics, prog_bar=stage == "val", batch_size=logits.shape[0])
            if stage == "test":
                self.test_f1_per_class.update(logits, y)
                self.confusion.update(logits, y)
        return logits

    def _log_multilabel(self, sweep: MultilabelThresholdSweep, stage: str, tune: bool = False) -> None:
        counts = sweep.compute()  # summed over processes
        sweep.reset()
        if tune:
            self.thresholds.copy_(sweep.best(counts, per_label=self.threshold == "tune_per_label"))
        at_half = sweep.f1_at(counts, torch.full((self.num_classes,), 0.5))
        chosen = sweep.f1_at(counts, self.thresholds)
        self.log_dict(
            {
                f"{stage}/f1_macro": chosen["macro_f1"],
                f"{stage}/f1_micro": chosen["micro_f1"],
                f"{stage}/f1_macro_at_0.5": at_half["macro_f1"],
                f"{stage}/f1_micro_at_0.5": at_half["micro_f1"],
                **({f"{stage}/threshold": float(self.thresholds.mean())} if stage == "val" else {}),
            },
            prog_bar=stage == "val",
        )

    def on_validation_epoch_end(self) -> None:
        if self.multi_label:
            # The threshold is chosen on this validation epoch (not on the sanity check's few batches), so the
            # logged val F1 is optimistic; the test split scores the chosen threshold honestly.
            tune = isinstance(self.threshold, str) and not self.trainer.sanity_checking
            self._log_multilabel(self.val_sweep, "val", tune=tune)

    def on_test_epoch_end(self) -> None:
        if self.multi_label:
            self._log_multilabel(self.test_sweep, "test")
            return
        per_class = self.test_f1_per_class.compute()
        self.test_f1_per_class.reset()
        if self.num_classes <= 20:
            self.log_dict({f"test/f1_{metric_name(n)}": v for n, v in zip(self.labels, per_class)})
        self.save_confusion_matrix(self.confusion, self.labels)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(**_model_inputs(batch)).float()
        return torch.sigmoid(logits) if self.multi_label else logits.softmax(-1)

    def export_metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"multi_label": self.multi_label}
        if self.multi_label:
            meta["threshold"] = [round(float(t), 6) for t in self.thresholds]
            meta["postprocessing"] = "sigmoid over logits; a label is predicted when its probability >= threshold"
        else:
            meta["postprocessing"] = "softmax over logits"
        return meta

    def export_spec(self, batch_size: int = 8) -> Any:
        """What :mod:`recipezoo.export` writes: the network on token ids, batch and sequence axes dynamic."""
        return text_export_spec(self, self.task, self.export_metadata(), batch_size)


class TokenClassifier(Task):
    """Token classification (NER with BIO/IOB1/BIOES tags, or plain tags such as POS).

    Trained on the first sub-token of every word (the other sub-tokens are ignored); evaluated per word, with words
    cut off by truncation predicted ``O``, so a truncated entity counts as missed. Entity tags are scored at the
    entity level (exact span and type: ``val|test/precision``, ``recall``, ``f1``, ``test/f1_<type>``); plain tags
    by word accuracy and macro F1 (``val|test/acc``, ``f1``).

    Args:
        net: ``(input_ids, attention_mask[, token_type_ids]) -> logits (B, T, num_classes)``.
        num_classes: number of tags.
        optimizer: a partial optimizer taking param groups.
        scheduler: a partial ``(optimizer, total_steps) -> LRScheduler``, or None.
        finetune: the fine-tuning policy.
        labels: tag names in index order.
        scheme: ``BIO``/``BIOES`` (entity-level scoring) or ``tags`` (word-level scoring).
        preprocessing: the tokenizer settings, carried into exports.
        compile: ``torch.compile`` the network for training.
    """

    task = "token_classification"

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        finetune: dict[str, Any] | FineTuningPolicy | None = None,
        labels: Sequence[str] | None = None,
        scheme: str = "BIO",
        preprocessing: dict[str, Any] | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__(net, optimizer, scheduler, as_policy(finetune), compile)
        self.labels = _labels(labels, num_classes)
        self.preprocessing = dict(preprocessing or {})
        self.num_classes = int(num_classes)
        self.scheme = scheme
        self.entities = scheme != "tags"
        self.outside = self.labels.index("O") if "O" in self.labels else 0
        # Word accuracy (and macro F1 for plain tags); -1 marks the padding words.
        self.val_words = classification_metrics(self.num_classes, f1=not self.entities, ignore_index=-1)
        self.test_words = classification_metrics(self.num_classes, f1=not self.entities, ignore_index=-1)
        if self.entities:
            self.val_spans, self.test_spans = SpanF1(self.labels), SpanF1(self.labels)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.network(input_ids, attention_mask, token_type_ids)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training objective of a batch, without logging (what a plain PyTorch loop computes)."""
        logits = self(**_model_inputs(batch))  # (B, T, C)
        return F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE)

    def word_predictions(self, logits: torch.Tensor, word_index: torch.Tensor) -> torch.Tensor:
        """``(B, T, C)`` logits -> ``(B, W)`` tag per word (its first sub-token's); truncated words get ``O``."""
        pred = logits.argmax(-1).gather(1, word_index.clamp(min=0))
        return pred.masked_fill(word_index < 0, self.outside)

    def eval_step(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        logits = self(**_model_inputs(batch))
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE)
        self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=logits.shape[0])
        words, tags = self.word_predictions(logits, batch["word_index"]), batch["word_tags"]
        (self.val_words if stage == "val" else self.test_words).update(words, tags)
        if self.entities:
            (self.val_spans if stage == "val" else self.test_spans).update(words, tags.clamp(min=0), tags >= 0)

    def _log_epoch(self, stage: str) -> None:
        words = self.val_words if stage == "val" else self.test_words
        out = {f"{stage}/{k}": v for k, v in words.compute().items()}
        words.reset()
        if self.entities:
            spans = self.val_spans if stage == "val" else self.test_spans
            for k, v in spans.compute().items():
                if not k.startswith("f1_") or stage == "test":
                    out[f"{stage}/{k}"] = v
            spans.reset()
        self.log_dict(out, prog_bar=stage == "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self(**_model_inputs(batch)).float().softmax(-1)

    def export_metadata(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "postprocessing": "softmax over logits (B, T, C); each word takes its first sub-token's tag",
        }

    def export_spec(self, batch_size: int = 8) -> Any:
        """What :mod:`recipezoo.export` writes: the network on token ids, batch and sequence axes dynamic."""
        return text_export_spec(self, self.task, self.export_metadata(), batch_size)
