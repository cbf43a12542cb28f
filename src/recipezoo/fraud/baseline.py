"""The gradient-boosted-trees baseline reported beside every fraud run: is deep learning worth it here?

scikit-learn's HistGradientBoostingClassifier, trained on the same training split and the same preprocessed
features (numeric columns scaled, categoricals as vocabulary codes with native categorical splits), with its decision
threshold chosen on the same validation split by the same rule, scored on the same validation and test splits with
the same metrics (``val/auprc``... as the deep model logs them, so the run can tell which one won).

Its score is the log-odds (``decision_function``), the scale of the deep classifiers' logits: the threshold lives on
it, and ``sigmoid(score)`` is ``predict_proba``. With ``out_dir``, the fitted trees are saved as ONNX
(:mod:`recipezoo.fraud.gbdt_onnx`, checked against scikit-learn on the validation and test rows) with their
threshold, so ``scripts/export.py ... model=baseline`` can bundle them like a deep model when they win.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from recipezoo.fraud import metrics as M

log = logging.getLogger(__name__)

# HistGradientBoosting's categorical splits need fewer categories than its bins (255): larger vocabularies are
# given to it as ordinal numbers instead.
_MAX_NATIVE_CATEGORIES = 255
ARTIFACT = "baseline/gbdt.onnx"  # in the run folder
# Largest difference in log-odds accepted between the saved ONNX trees and scikit-learn (both sum in float64).
ARTIFACT_TOLERANCE = 1e-6


def _arrays(loader: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs_num, xs_cat, ys = [], [], []
    for x_num, x_cat, y in loader:
        xs_num.append(x_num.numpy())
        xs_cat.append(x_cat.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs_num), np.concatenate(xs_cat), np.concatenate(ys).astype(int)


def _decide(
    scores_val: np.ndarray,
    y_val: np.ndarray,
    threshold_rule: str = "max_f1",
    threshold_target: float | None = None,
    cost_fn: float = 100.0,
    cost_fp: float = 1.0,
) -> dict[str, Any]:
    """The threshold and its validation stats, chosen as the deep model chooses them."""
    return M.choose_threshold(scores_val, y_val, threshold_rule, threshold_target, cost_fn=cost_fn, cost_fp=cost_fp)


def val_metrics(scores_val: np.ndarray, y_val: np.ndarray, stats: dict[str, Any]) -> dict[str, float]:
    """The validation metrics the deep model logs, under its names (``val/auprc``, ``val/roc_auc``, and at the
    chosen threshold ``val/precision``, ``val/recall``, ``val/f1``, ``val/cost``, ``val/threshold``), and
    ``val/ece`` of ``sigmoid(score)``. ``scores_val`` are log-odds."""
    out = {
        "val/auprc": M.auprc(scores_val, y_val),
        "val/roc_auc": M.roc_auc(scores_val, y_val),
        "val/precision": stats["precision"],
        "val/recall": stats["recall"],
        "val/f1": stats["f1"],
        "val/cost": stats["cost"],
        "val/ece": M.ece(M.apply_calibration(scores_val, {"kind": "none"}), y_val),
        "val/threshold": stats["threshold"],
    }
    return {k: float(v) for k, v in out.items()}


def test_metrics(
    scores_val: np.ndarray,
    y_val: np.ndarray,
    scores_test: np.ndarray,
    y_test: np.ndarray,
    *,
    threshold_rule: str = "max_f1",
    threshold_target: float | None = None,
    cost_fn: float = 100.0,
    cost_fp: float = 1.0,
    fpr: float = 0.01,
    recall: float = 0.8,
    prevalence: float | None = None,
) -> dict[str, float]:
    """The fraud test metrics of any scorer, with its threshold chosen on validation (shared with the deep models)."""
    threshold = _decide(scores_val, y_val, threshold_rule, threshold_target, cost_fn, cost_fp)["threshold"]
    decision = (scores_test >= threshold).astype(int)
    tp = int(((decision == 1) & (y_test == 1)).sum())
    precision = tp / max(1, int(decision.sum()))
    rec = tp / max(1, int(y_test.sum()))
    out = {
        "test/auprc": average_precision_score(y_test, scores_test),
        "test/roc_auc": roc_auc_score(y_test, scores_test),
        "test/recall_at_fpr": M.recall_at_fpr(scores_test, y_test, fpr),
        "test/precision_at_recall": M.precision_at_recall(scores_test, y_test, recall),
        "test/precision": precision,
        "test/recall": rec,
        "test/f1": 2 * precision * rec / max(1e-12, precision + rec),
        "test/cost": M.expected_cost(y_test, decision, cost_fn, cost_fp)["mean"],
    }
    if prevalence:
        out["test/auprc_at_prevalence"] = M.auprc_at_prevalence(scores_test, y_test, prevalence)
    return {k: float(v) for k, v in out.items()}


def gbdt(
    datamodule: Any,
    max_iter: int = 300,
    learning_rate: float = 0.05,
    max_leaf_nodes: int = 31,
    l2_regularization: float = 0.0,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    **metric_kwargs: Any,
) -> dict[str, Any]:
    """Train and score the GBDT baseline on ``datamodule``'s splits; save it as ONNX into ``out_dir``.

    Args:
        datamodule: a set-up :class:`recipezoo.fraud.data.TabularDataModule`.
        max_iter: boosting iterations (early-stopped on an internal 10% of train).
        learning_rate: shrinkage.
        max_leaf_nodes: tree size.
        l2_regularization: leaf-value regularisation.
        seed: random state.
        out_dir: the run folder: the trees are saved to ``<out_dir>/baseline/gbdt.onnx`` with their threshold (see
            :mod:`recipezoo.fraud.gbdt_onnx`); None saves nothing.
        **metric_kwargs: threshold rule, costs, fpr, recall, prevalence, as the deep model uses.

    Returns:
        ``{"name", "params", "fit_time_s", "threshold" (on the log-odds), "threshold_on": "score", "val":
        {val/auprc, val/roc_auc, ...}, "test": {test/auprc, test/roc_auc, ...}}``, and with ``out_dir``
        ``"artifact"`` (the ONNX file's path) and ``"artifact_max_abs_diff"`` (its largest log-odds difference from
        scikit-learn on the validation and test rows), or ``"artifact_error"`` when it could not be saved.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    (xn_tr, xc_tr, y_tr), (xn_va, xc_va, y_va), (xn_te, xc_te, y_te) = (
        _arrays(datamodule.eval_dataloader(s)) for s in ("train", "val", "test")
    )
    cards = list(datamodule.info["cardinalities"])
    native = [False] * xn_tr.shape[1] + [c <= _MAX_NATIVE_CATEGORIES for c in cards]
    params = {
        "max_iter": max_iter,
        "learning_rate": learning_rate,
        "max_leaf_nodes": max_leaf_nodes,
        "l2_regularization": l2_regularization,
        "early_stopping": True,
        "random_state": seed,
    }
    clf = HistGradientBoostingClassifier(categorical_features=np.array(native) if any(native) else None, **params)
    start = time.perf_counter()
    clf.fit(np.hstack([xn_tr, xc_tr]), y_tr)
    fit_time = time.perf_counter() - start
    # Log-odds, the deep classifiers' scale (sigmoid gives predict_proba exactly, and no probability saturates).
    score = lambda xn, xc: clf.decision_function(np.hstack([xn, xc]))  # noqa: E731
    s_va, s_te = score(xn_va, xc_va), score(xn_te, xc_te)
    rule = {
        k: metric_kwargs[k] for k in ("threshold_rule", "threshold_target", "cost_fn", "cost_fp") if k in metric_kwargs
    }
    stats = _decide(s_va, y_va, **rule)
    result: dict[str, Any] = {
        "name": "HistGradientBoostingClassifier",
        "params": params,
        "fit_time_s": round(fit_time, 2),
        "threshold": stats["threshold"],
        "threshold_on": "score",
        "val": val_metrics(s_va, y_va, stats),
        "test": test_metrics(s_va, y_va, s_te, y_te, **metric_kwargs),
    }
    if out_dir is not None:
        facts = {
            "model": "HistGradientBoostingClassifier",
            "params": params,
            "threshold": stats["threshold"],
            "threshold_on": "score",
            "threshold_rule": stats["rule"],
            "threshold_target": stats["target"],
            "score_kind": "logit",
            "calibration": {"kind": "none"},
            "n_num": int(xn_tr.shape[1]),
            "cardinalities": [int(c) for c in cards],
            "native_categorical": native[xn_tr.shape[1] :],
            "val": result["val"],
        }
        check = (np.concatenate([xn_va, xn_te]), np.concatenate([xc_va, xc_te]), np.concatenate([s_va, s_te]))
        try:
            path, diff = save_onnx(clf, Path(out_dir) / ARTIFACT, facts, *check)
            result.update(artifact=str(path), artifact_max_abs_diff=diff)
        except Exception as e:  # the run's numbers stand; only the export of the baseline is lost
            log.warning("The GBDT baseline was not saved as ONNX (%s: %s).", type(e).__name__, e)
            result["artifact_error"] = f"{type(e).__name__}: {e}"
    return result


def save_onnx(
    clf: Any, path: Path, facts: dict[str, Any], x_num: np.ndarray, x_cat: np.ndarray, expected: np.ndarray
) -> tuple[Path, float]:
    """Write ``clf`` as ONNX to ``path`` after checking its scores on ``(x_num, x_cat)`` against ``expected``
    (scikit-learn's log-odds): the largest difference is stored in the file (``parity``) and returned.

    Raises:
        ValueError: the ONNX scores differ by more than :data:`ARTIFACT_TOLERANCE` (nothing is written).
    """
    import onnxruntime as ort

    from recipezoo.fraud import gbdt_onnx

    n_num, n_cat = x_num.shape[1], x_cat.shape[1]
    model = gbdt_onnx.to_onnx(clf, n_num, n_cat)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = {"x_num": x_num.astype(np.float32), **({"x_cat": x_cat.astype(np.int64)} if n_cat else {})}
    got = session.run(None, feed)[0]
    diff = float(np.max(np.abs(got - expected))) if len(expected) else 0.0
    if not diff <= ARTIFACT_TOLERANCE:
        raise ValueError(f"ONNX scores differ from scikit-learn's by {diff:.3g} (tolerance {ARTIFACT_TOLERANCE:g})")
    parity = {"max_abs_diff": diff, "rows": int(len(expected)), "reference": "scikit-learn decision_function"}
    gbdt_onnx.set_facts(model, {**facts, "parity": parity})
    path = Path(path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(model.SerializeToString())
    os.replace(tmp, path)
    log.info("GBDT baseline saved as ONNX: %s (max abs diff from scikit-learn %.2g)", path, diff)
    return path, diff
