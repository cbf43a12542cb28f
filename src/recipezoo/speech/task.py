"""The speech LightningModules: :class:`AudioClassifier` and :class:`SpeechRecognizer` (CTC), whatever the network.

Both own the front-end (:class:`recipezoo.speech.frontend.FrontEnd`) and the training-time augmentation, so the
spectrogram, normalisation, gain/shift/noise and SpecAugment run on the accelerator, batched. What they export is
the whole path from the padded waveform: ``(waveform (B, T) float32 at the model's sample rate, lengths (B,) int64)
-> logits`` (classifier) or ``-> (log_probs (B, T', V), output_lengths (B,))`` (recognizer).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchmetrics as tm
from torch import nn

from recipezoo.core.errors import ConfigError
from recipezoo.core.finetune import FineTuningPolicy, as_policy
from recipezoo.core.task import Task, classification_metrics
from recipezoo.runtime.audio import ctc_collapse
from recipezoo.speech.frontend import FrontEnd, WaveAugment, spec_augment

log = logging.getLogger(__name__)


def build_frontend(net: nn.Module, settings: dict[str, Any] | None) -> FrontEnd:
    """The front-end a network reads: the configured features, or the waveform for pretrained speech encoders."""
    settings = dict(settings or {})
    reads = getattr(net, "input_kind", "features")
    kind = settings.get("kind", "logmel")
    if reads == "waveform" and kind != "waveform":
        log.info("%s reads the waveform: front-end kind '%s' replaced by 'waveform'.", type(net).__name__, kind)
        settings["kind"] = "waveform"
    elif reads == "features" and kind == "waveform":
        raise ConfigError(
            f"{type(net).__name__} reads log-mel/MFCC features, not the waveform: set model.frontend.kind=logmel "
            "(or mfcc), or use a pretrained speech encoder as backbone.name."
        )
    return FrontEnd(**settings)


def build_augment(augment: dict[str, Any] | None, frontend: FrontEnd) -> tuple[WaveAugment, nn.Module]:
    """Waveform augmentation and SpecAugment from the ``model.augment`` settings (SpecAugment: features only)."""
    a = dict(augment or {})
    known = {"gain_db", "shift_ms", "noise_prob", "noise_snr_db", "time_masks", "time_mask_frames", "freq_masks"}
    known |= {"freq_mask_bins", "time_mask_max_fraction"}
    unknown = sorted(set(a) - known)
    if unknown:
        raise ConfigError(f"unknown model.augment key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
    wave = WaveAugment(
        a.get("gain_db", 0.0),
        a.get("shift_ms", 0.0),
        a.get("noise_prob", 0.0),
        tuple(a.get("noise_snr_db", (10.0, 30.0))),
        frontend.sample_rate,
    )
    spec = (
        nn.Identity()
        if frontend.kind == "waveform"  # pretrained encoders mask their own latent frames (mask_time_prob)
        else spec_augment(
            a.get("time_masks", 0),
            a.get("time_mask_frames", 0),
            a.get("freq_masks", 0),
            a.get("freq_mask_bins", 0),
            a.get("time_mask_max_fraction", 1.0),
        )
    )
    return wave, spec


class WaveformModel(nn.Module):
    """Front-end + network: what predict and export run, ``(waveform (B, T), lengths (B,)) -> outputs``.

    For a CTC network the outputs are ``(log_probs (B, T', V), output_lengths (B,))``.
    """

    def __init__(self, frontend: FrontEnd, net: nn.Module, ctc: bool = False) -> None:
        super().__init__()
        self.frontend, self.net, self.ctc = frontend, net, ctc

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> Any:
        x, n = self.frontend(waveform, lengths)
        out = self.net(x, n)
        if self.ctc:
            logits, out_lengths = out
            return logits.float().log_softmax(-1), out_lengths
        return out


def _example_waveforms(sample_rate: int, seconds: float) -> Callable[[int], dict[str, torch.Tensor]]:
    """Export example inputs: noise of varied lengths; the padded length grows with the batch size, so the parity
    check's two batch sizes also prove the time axis dynamic."""

    def make(n: int) -> dict[str, torch.Tensor]:
        t = int(sample_rate * seconds) + 37 * n
        lengths = torch.randint(t // 2, t + 1, (n,))
        lengths[0] = t
        wave = 0.1 * torch.randn(n, t) * (torch.arange(t)[None, :] < lengths[:, None])
        return {"waveform": wave, "lengths": lengths}

    return make


class AudioClassifier(Task):
    """Keyword spotting / sound classification with cross-entropy.

    Logged: ``train/loss_step``, ``train/loss_epoch``, ``train/acc``;
    ``val/loss``, ``val/acc``, ``val/f1`` (macro), ``val/acc_top5`` (more
    than 5 classes); the same on test, with ``test_confusion_matrix.csv`` in the run folder.

    Args:
        net: a network from :mod:`recipezoo.speech.models` (``input_kind``, ``head``, ``layer_groups()``).
        num_classes: number of classes.
        optimizer: a partial optimizer (``torch.optim.AdamW`` with its lr/weight_decay) taking param groups.
        scheduler: a partial ``(optimizer, total_steps) -> LRScheduler`` from :mod:`recipezoo.core.optim`, or None.
        finetune: the fine-tuning policy (freeze/unfreeze, backbone LR multiplier, layer decay, frozen blocks).
        frontend: :class:`~recipezoo.speech.frontend.FrontEnd` settings (kind, sample_rate, n_features...).
        augment: training augmentation: ``gain_db``, ``shift_ms``, ``noise_prob``, ``noise_snr_db``,
            ``time_masks``, ``time_mask_frames``, ``freq_masks``, ``freq_mask_bins``, ``time_mask_max_fraction``.
        label_smoothing: cross-entropy label smoothing.
        labels: class names in index order (saved with the model).
        preprocessing: the data's preprocessing (sample rate, clip length), carried into exports.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        finetune: dict[str, Any] | FineTuningPolicy | None = None,
        frontend: dict[str, Any] | None = None,
        augment: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        labels: list[str] | None = None,
        preprocessing: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(net, optimizer, scheduler, as_policy(finetune))
        self.num_classes = int(num_classes)
        self.frontend = build_frontend(net, frontend)
        self.wave_augment, self.spec_augment = build_augment(augment, self.frontend)
        self.label_smoothing = float(label_smoothing)
        self.labels = list(labels) if labels else [str(i) for i in range(self.num_classes)]
        self.preprocessing = dict(preprocessing or {})
        self.train_metrics = classification_metrics(self.num_classes, "train/", f1=False)
        self.val_metrics = classification_metrics(self.num_classes, "val/", top_k=5)
        self.test_metrics = classification_metrics(self.num_classes, "test/", top_k=5)
        self.confusion = tm.ConfusionMatrix(task="multiclass", num_classes=self.num_classes)

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # (B, T), (B,) -> (B, C)
        x, n = self.frontend(waveform, lengths)
        return self.net(x, n)

    def _train_forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        wave, lengths = self.wave_augment(batch["audio"], batch["lengths"])
        x, n = self.frontend(wave, lengths)
        logits = self.net(self.spec_augment(x), n)
        return logits, F.cross_entropy(logits.float(), batch["label"], label_smoothing=self.label_smoothing)

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """The training objective of a batch, without metrics or logging (what a plain PyTorch loop computes)."""
        return self._train_forward(batch)[1]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits, loss = self._train_forward(batch)
        self.train_metrics.update(logits.detach(), batch["label"])
        return loss

    def logits_and_labels(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return self(batch["audio"], batch["lengths"]), batch["label"]

    def eval_step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        logits = self(batch["audio"], batch["lengths"])
        y = batch["label"]
        loss = F.cross_entropy(logits.float(), y)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics.update(logits, y)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", sync_dist=True, batch_size=y.shape[0])
        self.log_dict(metrics, prog_bar=stage == "val", batch_size=y.shape[0])
        return logits

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.confusion.update(self.eval_step(batch, "test"), batch["label"])

    def on_test_epoch_end(self) -> None:
        self.save_confusion_matrix(self.confusion, self.labels)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self(batch["audio"], batch["lengths"]).softmax(-1)

    def export_spec(self, batch_size: int = 8) -> Any:
        """What :mod:`recipezoo.export` writes: front-end + network on the padded waveform, batch and time dynamic."""
        from recipezoo.core.export import ExportSpec

        clip = self.preprocessing.get("clip_samples") or self.frontend.sample_rate
        make = _example_waveforms(
            self.frontend.sample_rate, min(clip, 2 * self.frontend.sample_rate) / self.frontend.sample_rate
        )
        return ExportSpec(
            model=WaveformModel(self.frontend, self.net).eval(),
            inputs=make(batch_size),
            output_names=["logits"],
            dynamic_axes={"waveform": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "logits": {0: "batch"}},
            metadata={
                "task": "audio_classification",
                "labels": self.labels,
                "preprocessing": self.preprocessing,
                "frontend": self.frontend.settings(),
                "input": "waveform: (batch, time) float32 mono at preprocessing.sample_rate, zero-padded; lengths: "
                "(batch,) int64 valid samples; longer files centre-cropped to preprocessing.clip_samples",
                "postprocessing": "softmax over logits",
            },
            make_inputs=make,
        )


class SpeechRecognizer(Task):
    """CTC speech-to-text over a character vocabulary, with greedy (best-path) decoding.

    Logged: ``train/loss_step``, ``train/loss_epoch`` (CTC, per target token);
    ``val/loss``, ``val/wer``, ``val/cer`` (torchmetrics, over the
    whole split); the same on test, with ``test_transcripts.csv`` (path, reference, hypothesis) in the run folder.

    Args:
        net: a CTC network from :mod:`recipezoo.speech.models` returning ``(logits, output_lengths)``.
        tokens: the output tokens, CTC blank first (the data's ``info["tokens"]``).
        optimizer: a partial optimizer taking param groups.
        scheduler: a partial ``(optimizer, total_steps) -> LRScheduler``, or None.
        finetune: the fine-tuning policy.
        frontend: front-end settings.
        augment: training augmentation (see :class:`AudioClassifier`).
        preprocessing: the data's preprocessing (sample rate, text normalisation), carried into exports.
    """

    def __init__(
        self,
        net: nn.Module,
        tokens: list[str],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        finetune: dict[str, Any] | FineTuningPolicy | None = None,
        frontend: dict[str, Any] | None = None,
        augment: dict[str, Any] | None = None,
        preprocessing: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(net, optimizer, scheduler, as_policy(finetune))
        self.tokens = list(tokens)
        self.blank = 0
        self.frontend = build_frontend(net, frontend)
        self.wave_augment, self.spec_augment = build_augment(augment, self.frontend)
        self.preprocessing = dict(preprocessing or {})
        self.wer = nn.ModuleDict({s: tm.text.WordErrorRate() for s in ("val", "test")})
        self.cer = nn.ModuleDict({s: tm.text.CharErrorRate() for s in ("val", "test")})
        self.test_rows: list[tuple[int, str, str]] = []
        self._too_short = 0

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log_probs (B, T', V), output_lengths (B,))``."""
        x, n = self.frontend(waveform, lengths)
        logits, out_lengths = self.net(x, n)
        return logits.float().log_softmax(-1), out_lengths

    def _ctc(self, log_probs: torch.Tensor, out_lengths: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        # zero_infinity: an utterance whose transcript needs more frames than the network leaves it contributes no
        # loss instead of an infinite one (counted and reported once per epoch in training).
        return F.ctc_loss(
            log_probs.transpose(0, 1),  # (T', B, V)
            batch["targets"],
            out_lengths,
            batch["target_lengths"],
            blank=self.blank,
            reduction="mean",
            zero_infinity=True,
        )

    def _train_forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        wave, lengths = self.wave_augment(batch["audio"], batch["lengths"])
        x, n = self.frontend(wave, lengths)
        logits, out_lengths = self.net(self.spec_augment(x), n)
        return self._ctc(logits.float().log_softmax(-1), out_lengths, batch), out_lengths

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        """The training objective of a batch, without logging (what a plain PyTorch loop computes)."""
        return self._train_forward(batch)[0]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, out_lengths = self._train_forward(batch)
        self._too_short += int((out_lengths < batch["target_lengths"]).sum())
        return loss

    def on_train_epoch_end(self) -> None:
        if self._too_short and self.current_epoch == 0:
            log.warning(
                "%d training utterance(s) this epoch have transcripts longer than the frames the network leaves "
                "them; they add no loss. Check for transcripts that do not belong to their audio.",
                self._too_short,
            )
        self._too_short = 0

    def decode(self, log_probs: torch.Tensor, out_lengths: torch.Tensor) -> list[str]:
        """Greedy transcripts of a batch."""
        best = log_probs.argmax(-1).cpu()
        return [ctc_collapse(best[b, : int(n)].tolist(), self.tokens, self.blank) for b, n in enumerate(out_lengths)]

    def eval_step(self, batch: dict[str, Any], stage: str) -> list[str]:
        log_probs, out_lengths = self(batch["audio"], batch["lengths"])
        loss = self._ctc(log_probs, out_lengths, batch)
        hyps = self.decode(log_probs, out_lengths)
        self.wer[stage].update(hyps, batch["text"])
        self.cer[stage].update(hyps, batch["text"])
        n = len(hyps)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val", sync_dist=True, batch_size=n)
        self.log(f"{stage}/wer", self.wer[stage], prog_bar=stage == "val", batch_size=n)
        self.log(f"{stage}/cer", self.cer[stage], prog_bar=stage == "val", batch_size=n)
        return hyps

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        hyps = self.eval_step(batch, "test")
        self.test_rows += list(zip(batch["index"].tolist(), batch["text"], hyps))

    def on_test_epoch_end(self) -> None:
        rows, self.test_rows = self.test_rows, []
        if self.trainer.world_size > 1:  # every rank's utterances, for the file below
            import torch.distributed as dist

            gathered: list[Any] = [None] * self.trainer.world_size
            dist.all_gather_object(gathered, rows)
            rows = [r for part in gathered for r in part]
        log_dir = self.trainer.log_dir if self.trainer.loggers else None
        if not (self.trainer.is_global_zero and log_dir):
            return
        items = getattr(self.trainer.datamodule, "split_items", {}).get("test") if self.trainer.datamodule else None
        with open(Path(log_dir) / "test_transcripts.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "reference", "hypothesis"])
            for index, ref, hyp in sorted(set(rows)):
                w.writerow([items[index].get("path", index) if items else index, ref, hyp])

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[str]:
        return self.decode(*self(batch["audio"], batch["lengths"]))

    def export_spec(self, batch_size: int = 8) -> Any:
        """What :mod:`recipezoo.export` writes: front-end + network + log-softmax on the padded waveform."""
        from recipezoo.core.export import ExportSpec

        make = _example_waveforms(self.frontend.sample_rate, 1.0)
        return ExportSpec(
            model=WaveformModel(self.frontend, self.net, ctc=True).eval(),
            inputs=make(batch_size),
            output_names=["log_probs", "output_lengths"],
            dynamic_axes={
                "waveform": {0: "batch", 1: "time"},
                "lengths": {0: "batch"},
                "log_probs": {0: "batch", 1: "frames"},
                "output_lengths": {0: "batch"},
            },
            metadata={
                "task": "speech_recognition",
                "tokens": self.tokens,
                "blank": self.blank,
                "preprocessing": self.preprocessing,
                "frontend": self.frontend.settings(),
                "input": "waveform: (batch, time) float32 mono at preprocessing.sample_rate, zero-padded; lengths: "
                "(batch,) int64 valid samples",
                "postprocessing": "greedy CTC: argmax per frame over the first output_lengths frames, merge repeats, "
                "drop the blank (index 0), join tokens",
            },
            make_inputs=make,
        )
