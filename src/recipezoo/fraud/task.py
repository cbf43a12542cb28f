"""FraudDetector: the LightningModule for fraud detection on tabular rows, whatever the network.

Two kinds of network plug in (see :mod:`recipezoo.fraud.models`): classifiers whose score is a logit, trained with
BCE or focal loss, and anomaly detectors whose score is a reconstruction error, trained on normal rows only. For
both, the decision threshold and the calibration (score -> probability) are chosen on the validation rows at the end
of every validation epoch and saved in the module's state dict, so each checkpoint carries the ones chosen at its
own epoch and ``best.ckpt`` the best epoch's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics as tm
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from recipezoo.core.errors import ConfigError
from recipezoo.core.task import Task
from recipezoo.fraud import metrics as M

log = logging.getLogger(__name__)

LOSSES = ("bce", "focal")


def binary_focal_loss_with_logits(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: float | None = None,
    pos_weight: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Focal loss (Lin et al., 2017) on logits, averaged over rows: ``alpha_t * (1 - p_t)**gamma * BCE``.

    With ``gamma=0`` and ``alpha=None`` it is exactly ``F.binary_cross_entropy_with_logits`` (``pos_weight``
    included), so both losses share one class-weighting knob.

    Args:
        logits: scores ``(B,)``.
        target: 0/1 labels ``(B,)``, float.
        gamma: focusing strength; 0 disables the modulation.
        alpha: weight of the positive class (``1 - alpha`` for negatives); None weights both classes 1.
        pos_weight: multiplies the positive term of the BCE, as in torch's BCE-with-logits.
    """
    if pos_weight is not None and not isinstance(pos_weight, torch.Tensor):
        pos_weight = torch.tensor(float(pos_weight), device=logits.device, dtype=logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight, reduction="none")  # (B,)
    if gamma:
        p = torch.sigmoid(logits)
        p_t = p * target + (1 - p) * (1 - target)  # probability given to the true class
        bce = (1 - p_t).pow(gamma) * bce
    if alpha is not None:
        bce = (alpha * target + (1 - alpha) * (1 - target)) * bce
    return bce.mean()


def _plain(value: Any) -> Any:
    """Plain python (dict/list/scalars) from config containers, so checkpoints and metadata stay JSON-like."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class DecisionState(nn.Module):
    """The threshold and calibration chosen on validation, kept in the state dict as plain python.

    Saved through ``get_extra_state`` (state-dict key ``decision._extra_state``) rather than checkpoint hooks, so
    everything that restores weights restores them too: Lightning's resume, ``load_state_dict`` in
    :func:`recipezoo.core.checkpoint.load_module` (which predict/evaluate/export use), and a plain
    ``torch.load(weights_only=True)`` (only dicts, lists, strings, numbers and None inside).
    """

    def __init__(self) -> None:
        super().__init__()
        self.threshold: float | None = None  # flag when score >= threshold; None until a validation epoch ran
        self.calibration: dict[str, Any] = {"kind": "none"}
        self.stats: dict[str, Any] = {}  # validation stats at the threshold (see metrics.choose_threshold)
        self.epoch: int | None = None  # the epoch whose validation chose them

    def update(self, threshold: float, calibration: dict[str, Any], stats: dict[str, Any], epoch: int) -> None:
        self.threshold, self.calibration, self.stats, self.epoch = float(threshold), calibration, stats, int(epoch)

    def get_extra_state(self) -> dict[str, Any]:
        return _plain(
            {"threshold": self.threshold, "calibration": self.calibration, "stats": self.stats, "epoch": self.epoch}
        )

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.threshold = state.get("threshold")
        self.calibration = dict(state.get("calibration") or {"kind": "none"})
        self.stats = dict(state.get("stats") or {})
        self.epoch = state.get("epoch")


class ScoreModel(nn.Module):
    """What is exported: ``(x_num (B, n_num) float32, x_cat (B, n_cat) int64) -> score (B,)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.net(x_num, x_cat)


class FraudDetector(Task):
    """Trains a tabular fraud network; picks its decision threshold and calibration on validation.

    Logged: ``train/loss_step``, ``train/loss_epoch``;
    per validation epoch ``val/loss``, ``val/auprc``, ``val/roc_auc`` and, at the chosen
    threshold, ``val/precision``, ``val/recall``, ``val/f1``, ``val/cost`` (mean per row), ``val/threshold``,
    ``val/ece`` (in-sample: the calibration was fitted on these rows, so it reads optimistic; ``test/ece`` is the
    honest one); on test ``test/{auprc, roc_auc, recall_at_fpr, precision_at_recall, precision, recall, f1, cost,
    ece, threshold}`` and ``test/auprc_at_prevalence`` when ``prevalence`` is set. Monitor ``val/auprc`` (max).

    Args:
        net: a network ``forward(x_num, x_cat) -> score (B,)`` with ``n_num``, ``cardinalities`` and ``score_kind``
            (``"logit"`` or ``"anomaly"``) attributes, from :mod:`recipezoo.fraud.models`.
        optimizer: a partial optimizer (``torch.optim.AdamW`` with its lr/weight_decay) taking param groups.
        scheduler: a partial ``(optimizer, total_steps) -> LRScheduler`` from :mod:`recipezoo.core.optim`, or
            None / ``{}``.
        loss: ``bce`` or ``focal`` (classifiers; anomaly nets minimise their score on normal rows).
        pos_weight: weight of the positive term of the loss: ``auto`` (``data_pos_weight``, the negatives/positives
            ratio the data measured), a number, or None for no weighting.
        data_pos_weight: the data's ``pos_weight`` (read when ``pos_weight`` is ``auto``).
        focal_gamma: focal loss focusing strength.
        focal_alpha: focal loss positive-class weight, or None.
        threshold_rule: ``max_f1``, ``target_precision``, ``target_recall`` or ``min_cost``.
        threshold_target: the precision/recall target of the ``target_*`` rules.
        cost_fn: cost of a missed fraud (``val/cost``, ``test/cost`` and the ``min_cost`` rule).
        cost_fp: cost of a false alarm.
        calibration: ``temperature``, ``platt``, ``isotonic`` or ``none``. Anomaly nets use ``isotonic`` unless
            ``platt`` is asked for (a temperature, or a bare sigmoid, means nothing on a reconstruction error).
        fpr: the false-positive rate of ``test/recall_at_fpr``.
        recall: the recall of ``test/precision_at_recall``.
        prevalence: the real fraud rate, when the data were undersampled: adds ``test/auprc_at_prevalence``.
        preprocessing: the fitted preprocessing (the data's ``info["preprocessing"]``), carried into exports.
        positive_label: the raw label value of the positive (fraud) class, carried into exports.
        compile: ``torch.compile`` the network for training.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss: str = "bce",
        pos_weight: str | float | None = "auto",
        data_pos_weight: float | None = None,
        focal_gamma: float = 2.0,
        focal_alpha: float | None = None,
        threshold_rule: str = "max_f1",
        threshold_target: float | None = None,
        cost_fn: float = 100.0,
        cost_fp: float = 1.0,
        calibration: str = "temperature",
        fpr: float = 0.01,
        recall: float = 0.8,
        prevalence: float | None = None,
        preprocessing: dict[str, Any] | None = None,
        positive_label: Any = None,
        compile: bool = False,
    ) -> None:
        if loss not in LOSSES:
            raise ConfigError(f"unknown loss '{loss}'; choose one of {', '.join(LOSSES)}.")
        if threshold_rule not in M.RULES:
            raise ConfigError(f"unknown threshold_rule '{threshold_rule}'; choose one of {', '.join(M.RULES)}.")
        if threshold_rule.startswith("target_") and (threshold_target is None or not 0 < threshold_target <= 1):
            raise ConfigError(f"threshold_rule={threshold_rule} needs threshold_target in (0, 1].")
        if calibration not in M.CALIBRATIONS:
            raise ConfigError(f"unknown calibration '{calibration}'; choose one of {', '.join(M.CALIBRATIONS)}.")
        if prevalence is not None and not 0 < prevalence < 1:
            raise ConfigError(f"prevalence must be in (0, 1), got {prevalence}.")
        # No fine-tuning policy: tabular networks train from scratch, with weight decay on weight matrices only
        # (not on biases, norms, embedding tables or FT-Transformer's tokenizer; core.optim.decay_groups).
        super().__init__(net, optimizer, scheduler, compile=compile)
        self.n_num = int(net.n_num)
        self.cardinalities = [int(c) for c in net.cardinalities]
        self.score_kind = getattr(net, "score_kind", "logit")
        self.loss_name = loss
        self.pos_weight = self._resolve_pos_weight(pos_weight, data_pos_weight)
        self.focal_gamma, self.focal_alpha = float(focal_gamma), focal_alpha
        self.threshold_rule, self.threshold_target = threshold_rule, threshold_target
        self.cost_fn, self.cost_fp = float(cost_fn), float(cost_fp)
        self.calibration_kind = calibration
        if self.score_kind == "anomaly" and calibration not in ("isotonic", "platt"):
            log.info("calibration=%s means nothing on reconstruction errors; using isotonic.", calibration)
            self.calibration_kind = "isotonic"
        self.fpr, self.recall, self.prevalence = float(fpr), float(recall), prevalence
        self.preprocessing = _plain(preprocessing or {})
        self.positive_label = _plain(positive_label)
        self.decision = DecisionState()
        # (score, label) pairs of the epoch, one CatMetric so the two columns can never fall out of step;
        # it gathers uneven per-rank lengths under DDP. nan_strategy="disable": never drop a row.
        self.val_rows = tm.CatMetric(nan_strategy="disable")
        self.test_rows = tm.CatMetric(nan_strategy="disable")
        self.test_results: dict[str, Any] = {}

    def _resolve_pos_weight(self, pos_weight: str | float | None, data_pos_weight: float | None) -> float | None:
        if pos_weight in (None, "none", "None"):
            return None
        if pos_weight == "auto":
            if data_pos_weight is None:
                log.warning("pos_weight=auto but the data gave no pos_weight; training without class weighting.")
                return None
            return float(data_pos_weight)
        try:
            return float(pos_weight)
        except (TypeError, ValueError):
            raise ConfigError(f"pos_weight must be auto, a number or null, got {pos_weight!r}.") from None

    # -- decision state -----------------------------------------------------------------------------------------

    @property
    def threshold(self) -> float | None:
        """The decision threshold on the score scale (flag when ``score >= threshold``); None before validation."""
        return self.decision.threshold

    @property
    def calibration(self) -> dict[str, Any]:
        """The calibration dict (see :func:`recipezoo.fraud.metrics.apply_calibration`)."""
        return self.decision.calibration

    def decide(self, scores: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
        """``score``, calibrated ``probability`` and ``flag`` (score >= threshold) for raw scores ``(N,)``."""
        s = scores.detach().float().cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
        s = s.astype(np.float64)
        threshold = self._effective_threshold()
        return {"score": s, "probability": M.apply_calibration(s, self.calibration), "flag": s >= threshold}

    def _effective_threshold(self) -> float:
        if self.threshold is not None:
            return float(self.threshold)
        return math.nan if (d := self._default_threshold()) is None else d

    def _default_threshold(self) -> float | None:
        # Before any validation: a logit of 0 is p = 0.5; a reconstruction error has no natural cut.
        return 0.0 if self.score_kind == "logit" else None

    # -- training -----------------------------------------------------------------------------------------------

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:  # (B, n_num), (B, n_cat) -> (B,)
        return self.network(x_num, x_cat)

    def _classifier_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits, y = logits.float(), y.float()  # the loss in float32 under mixed precision
        pw = None if self.pos_weight is None else torch.tensor(self.pos_weight, device=logits.device)
        if self.loss_name == "focal":
            return binary_focal_loss_with_logits(logits, y, self.focal_gamma, self.focal_alpha, pw)
        return F.binary_cross_entropy_with_logits(logits, y, pos_weight=pw)

    def _loss(self, scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training objective on scores already computed: classifier loss, or mean score of normal rows."""
        if self.score_kind == "anomaly":
            normal = y < 0.5
            return scores[normal].float().mean() if bool(normal.any()) else scores.new_tensor(math.nan)
        return self._classifier_loss(scores, y)

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The training objective of a batch, without logging (what a plain PyTorch loop computes)."""
        x_num, x_cat, y = batch
        if self.score_kind == "anomaly":
            normal = y < 0.5
            return self(x_num[normal], x_cat[normal]).float().mean()
        return self._classifier_loss(self(x_num, x_cat), y)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor | None:
        # The autoencoder learns what normal rows look like (fraud rows never reach its forward in training): a
        # batch without normal rows has nothing to learn from.
        if self.score_kind == "anomaly" and not bool((batch[2] < 0.5).any()):
            return self._skip_batch()
        return self.loss(batch)

    def _skip_batch(self) -> torch.Tensor | None:
        # None skips the step on one device; under DDP every rank must run backward, so a zero loss that touches
        # every parameter keeps the gradient all-reduce in step (zero gradients).
        trainer = self._trainer  # None when called outside a Trainer
        if trainer is None or trainer.world_size == 1:
            return None
        return sum(p.sum() for p in self.net.parameters() if p.requires_grad) * 0.0

    # -- validation / test --------------------------------------------------------------------------------------

    def eval_step(self, batch: tuple[torch.Tensor, ...], stage: str) -> None:
        """Collect the batch's (score, label) rows; the metrics are computed on all of them at the epoch's end."""
        x_num, x_cat, y = batch
        scores = self(x_num, x_cat).detach().float()
        rows = self.val_rows if stage == "val" else self.test_rows
        rows.update(torch.stack([scores, y.float()], dim=1))  # (B, 2)

    @staticmethod
    def _gathered(rows: tm.CatMetric) -> tuple[torch.Tensor, torch.Tensor]:
        """All ranks' (scores, labels) of the epoch, ``(N,)`` each; resets the accumulator."""
        value = rows.compute()  # all-gathers across DDP ranks (uneven lengths included)
        rows.reset()
        if isinstance(value, list) or value.numel() == 0:  # no batch this epoch
            return torch.zeros(0), torch.zeros(0)
        value = value.reshape(-1, 2)
        return value[:, 0], value[:, 1]

    # Threshold selection, calibration and cost need every score of the split at once, so the epoch-end metrics
    # are computed on the gathered arrays with the numpy/sklearn functions of recipezoo.fraud.metrics (AUPRC and
    # ROC AUC included: the same numbers as torchmetrics' BinaryAveragePrecision/BinaryAUROC, and the very same
    # code as the scikit-learn baseline is scored with). Every rank computes identical values.

    def on_validation_epoch_end(self) -> None:
        scores, y = self._gathered(self.val_rows)
        if self.trainer.sanity_checking or scores.numel() == 0:
            return  # the sanity check's few batches must not choose the threshold
        s, t = scores.double().cpu().numpy(), y.cpu().numpy().round().astype(np.int64)
        out = {
            "val/loss": float(self._loss(scores, y)),
            "val/auprc": M.auprc(s, t),
            "val/roc_auc": M.roc_auc(s, t),
        }
        if 0 < t.sum() < t.size:
            stats = M.choose_threshold(s, t, self.threshold_rule, self.threshold_target, self.cost_fn, self.cost_fp)
            threshold = stats["threshold"]
            if not stats["reached"]:
                rank_zero_warn(stats["message"])
            calibration = M.fit_calibration(s, t, self.calibration_kind)
            out.update(
                {
                    "val/precision": stats["precision"],
                    "val/recall": stats["recall"],
                    "val/f1": stats["f1"],
                    "val/cost": stats["cost"],
                    "val/ece": M.ece(M.apply_calibration(s, calibration), t),
                    "val/threshold": threshold,
                }
            )
            self.decision.update(threshold, calibration, stats, self.current_epoch)
        else:
            rank_zero_warn(
                f"validation holds {int(t.sum())} fraud rows of {t.size}: threshold and calibration were not "
                "updated (a split with both classes is needed)."
            )
            out.update({k: math.nan for k in ("val/precision", "val/recall", "val/f1", "val/cost", "val/ece")})
            out["val/threshold"] = math.nan if self.threshold is None else self.threshold
        # Values are identical on every rank; sync_dist only keeps Lightning's epoch-level DDP check quiet.
        self.log("val/auprc", out.pop("val/auprc"), prog_bar=True, sync_dist=True)
        self.log_dict(out, sync_dist=True)

    def on_test_epoch_end(self) -> None:
        scores, y = self._gathered(self.test_rows)
        if scores.numel() == 0:
            return
        s, t = scores.double().cpu().numpy(), y.cpu().numpy().round().astype(np.int64)
        threshold = self._effective_threshold()
        if self.threshold is None:
            rank_zero_warn(
                "no threshold was chosen on validation yet; "
                + ("using score >= 0 (p >= 0.5)." if self.score_kind == "logit" else "threshold metrics are NaN.")
            )
        flag = s >= threshold  # NaN threshold: nothing flagged
        tp, fp = int(np.sum(flag & (t == 1))), int(np.sum(flag & (t == 0)))
        fn, tn = int(t.sum()) - tp, int(t.size - t.sum()) - fp
        if math.isnan(threshold):
            at_threshold = dict.fromkeys(("precision", "recall", "f1", "cost"), math.nan)
        else:
            at_threshold = {
                "precision": tp / (tp + fp) if tp + fp else 0.0,
                "recall": tp / (tp + fn) if tp + fn else math.nan,
                "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan,
                "cost": M.expected_cost(t, flag, self.cost_fn, self.cost_fp)["mean"],  # per row
            }
        out = {
            "test/auprc": M.auprc(s, t),
            "test/roc_auc": M.roc_auc(s, t),
            "test/recall_at_fpr": M.recall_at_fpr(s, t, self.fpr),
            "test/precision_at_recall": M.precision_at_recall(s, t, self.recall),
            **{f"test/{k}": v for k, v in at_threshold.items()},
            "test/ece": M.ece(M.apply_calibration(s, self.calibration), t),
            "test/threshold": threshold,
        }
        if self.prevalence is not None:
            out["test/auprc_at_prevalence"] = M.auprc_at_prevalence(s, t, self.prevalence)
        self.log_dict(out, sync_dist=True)
        # For scripts (evaluate) that want the counts behind the rates.
        self.test_results = {**out, "tp": tp, "fp": fp, "fn": fn, "tn": tn, "rows": int(t.size)}

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Raw scores ``(B,)``; :meth:`decide` turns them into probabilities and flags."""
        x_num, x_cat = batch[0], batch[1]
        return self(x_num, x_cat).float()

    # -- export -------------------------------------------------------------------------------------------------

    def make_inputs(self, n: int) -> dict[str, torch.Tensor]:
        """Example inputs of ``n`` rows: standardised-looking numerics, valid category indices."""
        if self.cardinalities:
            x_cat = torch.stack([torch.randint(0, c, (n,)) for c in self.cardinalities], dim=1)  # (n, n_cat)
        else:
            x_cat = torch.zeros(n, 0, dtype=torch.long)
        return {"x_num": torch.randn(n, self.n_num), "x_cat": x_cat}

    def export_spec(self, batch_size: int = 8) -> Any:
        """What :mod:`recipezoo.export` writes: ``(x_num, x_cat) -> score``, batch axis dynamic, with the decision
        (threshold, calibration) and the preprocessing in the metadata."""
        from recipezoo.core.export import ExportSpec

        return ExportSpec(
            model=ScoreModel(self.net).eval(),
            inputs=self.make_inputs(batch_size),
            output_names=["score"],
            dynamic_axes={"x_num": {0: "batch"}, "x_cat": {0: "batch"}, "score": {0: "batch"}},
            metadata={
                "task": "fraud_detection",
                "preprocessing": self.preprocessing,
                "calibration": _plain(self.calibration),
                # On the SCORE scale (raw logit or reconstruction error), not on the probability: runtime.tabular's
                # OnnxFraudScorer reads "threshold_on" to compare the right quantity. Before any validation, a logit
                # net gets score >= 0 (p >= 0.5 uncalibrated); an anomaly net has no default (null).
                "threshold": self.threshold if self.threshold is not None else self._default_threshold(),
                "threshold_on": "score",
                "score_kind": self.score_kind,
                "positive_label": self.positive_label,
                "n_num": self.n_num,
                "cardinalities": self.cardinalities,
                "postprocessing": "probability = calibrate(score, calibration); flag = score >= threshold",
            },
            make_inputs=self.make_inputs,
        )
