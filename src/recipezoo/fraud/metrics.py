"""Fraud-detection metrics and decisions on numpy arrays: thresholds, costs, calibration, ECE, reweighted AUPRC.

Everything here is torch-free and works on 1-D arrays of scores (any scale where higher = more likely fraud: logits,
probabilities, reconstruction errors) and 0/1 labels. A row is flagged when ``score >= threshold``.

Ranking metrics (:func:`auprc`, :func:`roc_auc`, :func:`recall_at_fpr`, :func:`precision_at_recall`) return NaN
when they are undefined (a class is missing); :func:`choose_threshold` raises instead, because a threshold chosen
without a single positive would be silently meaningless.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, roc_auc_score

RULES = ("max_f1", "target_precision", "target_recall", "min_cost")
CALIBRATIONS = ("none", "temperature", "platt", "isotonic")


def _arrays(scores: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    t = np.asarray(y).reshape(-1)
    if s.shape != t.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} vs {t.shape[0]}.")
    if np.isnan(s).any():
        raise ValueError(f"scores contain {int(np.isnan(s).sum())} NaN values.")
    if t.size and not np.isin(t, (0, 1)).all():
        raise ValueError(f"labels must be 0/1, got values {np.unique(t)[:10].tolist()}.")
    return s, t.astype(np.int64)


def expected_cost(y: Any, decision: Any, cost_fn: float = 100.0, cost_fp: float = 1.0) -> dict[str, float]:
    """Cost of flagging ``decision`` (bool/0-1 per row) when the truth is ``y``: ``FN * cost_fn + FP * cost_fp``.

    Args:
        y: 0/1 labels (1 = fraud).
        decision: the flags (1 = flagged as fraud).
        cost_fn: cost of a missed fraud.
        cost_fp: cost of a false alarm (a reviewed or blocked legitimate transaction).

    Returns:
        ``{"total": ..., "mean": ...}``, the mean over all rows (0 for no rows).
    """
    t = np.asarray(y).reshape(-1).astype(bool)
    d = np.asarray(decision).reshape(-1).astype(bool)
    if t.shape != d.shape:
        raise ValueError(f"labels and decisions differ in length: {t.shape[0]} vs {d.shape[0]}.")
    total = float(np.sum(t & ~d) * cost_fn + np.sum(~t & d) * cost_fp)
    return {"total": total, "mean": total / t.size if t.size else 0.0}


def _operating_points(s: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """Every distinct decision on these scores, from flagging nothing to flagging everything.

    Tied scores are flagged together (a threshold cannot split them), so candidates sit between distinct scores.
    Candidate 0 flags nothing; candidate k flags the rows with the k highest distinct scores.
    """
    order = np.argsort(-s, kind="mergesort")
    s_desc, t_desc = s[order], t[order]
    last = np.r_[np.flatnonzero(np.diff(s_desc)), s.size - 1] if s.size else np.zeros(0, np.int64)  # tie-group ends
    lowest = s_desc[last]  # the lowest score flagged at candidate k >= 1, descending
    tp = np.r_[0, np.cumsum(t_desc)[last]]
    fp = np.r_[0, np.cumsum(1 - t_desc)[last]]
    # Thresholds halfway between neighbouring distinct scores: a score computed again by an exported model, a few
    # ulps off, still falls on the same side.
    thr = np.empty(lowest.size + 1)
    if s.size:
        top = lowest[0]
        # Just above the top score; the next float32 up, so that the top score in float32 also stays below it.
        thr[0] = max(float(np.nextafter(np.float32(top), np.float32(np.inf))), np.nextafter(top, np.inf))
        mid = (lowest[:-1] + lowest[1:]) / 2
        thr[1:-1] = np.where(mid > lowest[1:], mid, lowest[:-1])
        thr[-1] = lowest[-1]
    else:
        thr[0] = math.inf
    return {"threshold": thr, "tp": tp, "fp": fp}


def _rates(points: dict[str, np.ndarray], n_pos: int, n_neg: int) -> dict[str, np.ndarray]:
    tp, fp = points["tp"], points["fp"]
    fn = n_pos - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)  # nothing flagged: precision 0
        recall = tp / n_pos if n_pos else np.full(tp.shape, np.nan)
        fpr = fp / n_neg if n_neg else np.zeros(fp.shape)
    f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return {"precision": precision, "recall": recall, "fpr": fpr, "f1": f1, "fn": fn}


def choose_threshold(
    scores: Any,
    y: Any,
    rule: str = "max_f1",
    target: float | None = None,
    cost_fn: float = 100.0,
    cost_fp: float = 1.0,
) -> dict[str, Any]:
    """Choose the decision threshold on validation scores.

    Rules:
        - ``max_f1``: the highest F1.
        - ``target_precision``: the highest recall among thresholds with precision >= ``target``.
        - ``target_recall``: the highest precision among thresholds with recall >= ``target``.
        - ``min_cost``: the lowest expected cost ``FN * cost_fn + FP * cost_fp``.

    Ties between thresholds go to the higher one (fewer rows flagged). Rows with equal scores are always flagged
    together. When a target cannot be met, the closest threshold is returned (the highest precision, or the highest
    recall) and the stats say so (``reached`` False, ``message``).

    Args:
        scores: the scores (higher = more likely fraud), on any scale.
        y: 0/1 labels.
        rule: one of :data:`RULES`.
        target: the precision or recall target, in (0, 1] (only for the ``target_*`` rules).
        cost_fn: cost of a missed fraud (reported by every rule, optimised by ``min_cost``).
        cost_fp: cost of a false alarm.

    Returns:
        The threshold on the score scale (flag when ``score >= threshold``) and the validation stats at it, as one
        dict of plain python values: ``threshold, rule, target, precision, recall, f1, fpr, tp, fp, tn, fn,
        flagged_rate, cost (mean per row), cost_total, reached, message``.

    Raises:
        ValueError: unknown rule, missing or out-of-range target, or labels with no positive row.
    """
    if rule not in RULES:
        raise ValueError(f"unknown threshold rule '{rule}'; choose one of {', '.join(RULES)}.")
    if rule.startswith("target_") and (target is None or not 0 < float(target) <= 1):
        raise ValueError(f"threshold rule '{rule}' needs a target in (0, 1], got {target!r}.")
    s, t = _arrays(scores, y)
    n_pos = int(t.sum())
    n_neg = int(t.size - n_pos)
    if n_pos == 0:
        raise ValueError(
            f"cannot choose a decision threshold: the {t.size} validation rows hold no positive (fraud) row. "
            "Use a larger or stratified validation split."
        )
    points = _operating_points(s, t)
    r = _rates(points, n_pos, n_neg)
    cost = r["fn"] * cost_fn + points["fp"] * cost_fp
    reached, message = True, None
    eps = 1e-12
    # np.argmax / argmin return the first optimum: candidates run from the highest threshold down.
    if rule == "max_f1":
        k = int(np.argmax(r["f1"]))
    elif rule == "min_cost":
        k = int(np.argmin(cost))
    elif rule == "target_precision":
        ok = (r["precision"] >= target - eps) & (points["tp"] > 0)
        if ok.any():
            k = int(np.argmax(np.where(ok, r["recall"], -1.0)))
        else:
            k = int(np.argmax(r["precision"]))
            reached = False
            message = (
                f"target precision {target} is not reachable on validation; chose the highest precision, "
                f"{r['precision'][k]:.4f} (recall {r['recall'][k]:.4f})."
            )
    else:  # target_recall
        ok = r["recall"] >= target - eps
        if ok.any():
            k = int(np.argmax(np.where(ok, r["precision"], -1.0)))
        else:  # only for a target above the reachable recall (never for target <= 1 with positives present)
            k = int(np.argmax(r["recall"]))
            reached = False
            message = f"target recall {target} is not reachable on validation; chose recall {r['recall'][k]:.4f}."
    tp, fp = int(points["tp"][k]), int(points["fp"][k])
    stats = {
        "threshold": float(points["threshold"][k]),
        "rule": rule,
        "target": None if target is None else float(target),
        "precision": float(r["precision"][k]),
        "recall": float(r["recall"][k]),
        "f1": float(r["f1"][k]),
        "fpr": float(r["fpr"][k]),
        "tp": tp,
        "fp": fp,
        "tn": n_neg - fp,
        "fn": n_pos - tp,
        "flagged_rate": (tp + fp) / t.size,
        "cost": float(cost[k]) / t.size,
        "cost_total": float(cost[k]),
        "reached": reached,
        "message": message,
    }
    return stats


def recall_at_fpr(scores: Any, y: Any, fpr: float = 0.01) -> float:
    """The highest recall (TPR) at a threshold with false-positive rate <= ``fpr``; NaN without both classes."""
    s, t = _arrays(scores, y)
    n_pos, n_neg = int(t.sum()), int(t.size - t.sum())
    if not n_pos or not n_neg:
        return math.nan
    points = _operating_points(s, t)
    ok = points["fp"] / n_neg <= fpr + 1e-12
    return float(np.max(points["tp"][ok]) / n_pos)  # candidate 0 (nothing flagged) always qualifies


def precision_at_recall(scores: Any, y: Any, recall: float = 0.8) -> float:
    """The highest precision at a threshold whose recall is at least ``recall``; NaN without positives."""
    s, t = _arrays(scores, y)
    n_pos = int(t.sum())
    if not n_pos:
        return math.nan
    points = _operating_points(s, t)
    r = _rates(points, n_pos, int(t.size - n_pos))
    ok = (r["recall"] >= recall - 1e-12) & (points["tp"] > 0)
    return float(np.max(r["precision"][ok])) if ok.any() else math.nan


def auprc(scores: Any, y: Any) -> float:
    """Average precision (area under the precision-recall curve, sklearn's step-wise sum); NaN without positives."""
    s, t = _arrays(scores, y)
    return float(average_precision_score(t, s)) if t.any() else math.nan


def roc_auc(scores: Any, y: Any) -> float:
    """Area under the ROC curve; NaN without both classes."""
    s, t = _arrays(scores, y)
    return float(roc_auc_score(t, s)) if 0 < t.sum() < t.size else math.nan


def auprc_at_prevalence(scores: Any, y: Any, prevalence: float) -> float:
    """Average precision as if positives made up ``prevalence`` of the rows (undersampled data -> real base rate).

    Negatives are weighted by ``(n_pos / n_neg) * (1 - prevalence) / prevalence``, so the weighted positive rate is
    ``prevalence``; precision, and so AUPRC, drops as fraud gets rarer while ROC AUC would not move.
    """
    if not 0 < prevalence < 1:
        raise ValueError(f"prevalence must be in (0, 1), got {prevalence}.")
    s, t = _arrays(scores, y)
    n_pos, n_neg = int(t.sum()), int(t.size - t.sum())
    if not n_pos or not n_neg:
        return math.nan
    w = np.where(t == 1, 1.0, (n_pos / n_neg) * (1 - prevalence) / prevalence)
    return float(average_precision_score(t, s, sample_weight=w))


def ece(probabilities: Any, y: Any, n_bins: int = 15) -> float:
    """Expected calibration error: ``sum_b (n_b / N) * |mean(y_b) - mean(p_b)|`` over equal-width bins of [0, 1].

    A probability on a bin edge goes to the upper bin (1.0 to the last one), as torchmetrics does.
    """
    p, t = _arrays(probabilities, y)
    if not p.size:
        return math.nan
    bins = np.clip(np.floor(p * n_bins).astype(np.int64), 0, n_bins - 1)
    gap = np.abs(np.bincount(bins, weights=t, minlength=n_bins) - np.bincount(bins, weights=p, minlength=n_bins))
    return float(gap.sum() / p.size)  # |sum(y_b) - sum(p_b)| / N == (n_b / N) * |mean(y_b) - mean(p_b)|


def _nll(z: np.ndarray, t: np.ndarray) -> float:
    return float(np.mean(np.logaddexp(0.0, z) - t * z))  # BCE with logits z, stable for any z


def fit_calibration(scores: Any, y: Any, kind: str = "temperature") -> dict[str, Any]:
    """Fit a map from scores to probabilities on validation rows; the result is plain JSON.

    Kinds:
        - ``none``: ``{"kind": "none"}``; probabilities are ``sigmoid(score)``.
        - ``temperature``: ``{"kind": "platt", "a": 1/T, "b": 0.0}``, T > 0 minimising the NLL of ``sigmoid(s/T)``
          (keeps the ranking and the logit's zero; for logits).
        - ``platt``: ``{"kind": "platt", "a": a, "b": b}``, logistic regression of the label on the score.
        - ``isotonic``: ``{"kind": "isotonic", "x": [...], "y": [...]}``, sklearn IsotonicRegression's thresholds
          (monotone; for any score scale, e.g. reconstruction errors).

    Read back with :func:`apply_calibration`. Fitting needs both classes (raises ValueError otherwise).
    """
    if kind not in CALIBRATIONS:
        raise ValueError(f"unknown calibration '{kind}'; choose one of {', '.join(CALIBRATIONS)}.")
    if kind == "none":
        return {"kind": "none"}
    s, t = _arrays(scores, y)
    if not 0 < t.sum() < t.size:
        raise ValueError(f"fitting '{kind}' calibration needs both classes; got {int(t.sum())} positives of {t.size}.")
    if kind == "temperature":
        # NLL is unimodal in log(1/T); a bounded search over T in [1e-3, 1e3] is enough for logits.
        res = minimize_scalar(lambda la: _nll(math.exp(la) * s, t), bounds=(-7.0, 7.0), method="bounded")
        return {"kind": "platt", "a": float(math.exp(res.x)), "b": 0.0}
    if kind == "platt":
        # Fit on standardised scores (well conditioned whatever the score scale), then map back. The tiny ridge
        # keeps the slope finite when validation is perfectly separable.
        mu, sd = float(s.mean()), float(s.std()) or 1.0
        z = (s - mu) / sd

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            logit = w[0] * z + w[1]
            g = expit(logit) - t  # d NLL / d logit
            return _nll(logit, t) + 1e-6 * w[0] ** 2, np.array([np.mean(g * z) + 2e-6 * w[0], np.mean(g)])

        w = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B").x
        return {"kind": "platt", "a": float(w[0] / sd), "b": float(w[1] - w[0] * mu / sd)}
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(s, t)
    return {"kind": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}


def _calibrate(scores: Any, calibration: dict[str, Any] | None) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    kind = (calibration or {"kind": "none"}).get("kind", "none")
    if kind == "none":
        return expit(s)
    if kind == "platt":
        return expit(float(calibration["a"]) * s + float(calibration["b"]))
    if kind == "isotonic":
        return np.clip(np.interp(s, calibration["x"], calibration["y"]), 0.0, 1.0)
    raise ValueError(f"unknown calibration kind '{kind}' (expected none, platt or isotonic).")


def apply_calibration(scores: Any, calibration: dict[str, Any] | None) -> np.ndarray:
    """Probabilities from scores with a :func:`fit_calibration` dict.

    ``none`` -> ``sigmoid(score)``; ``platt`` -> ``sigmoid(a * score + b)``; ``isotonic`` ->
    ``clip(interp(score, x, y), 0, 1)``. The torch-free runtime (:mod:`recipezoo.runtime.tabular`, ``calibrate``)
    implements the same map for exported bundles; when it is installed this delegates to it, so training, predict
    and bundles share one implementation.
    """
    try:
        from recipezoo.runtime.tabular import calibrate
    except ImportError:  # the runtime module is not there (yet): same semantics, implemented here
        return _calibrate(scores, calibration)
    return np.asarray(calibrate(np.asarray(scores), calibration), dtype=np.float64)
