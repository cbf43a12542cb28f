"""The gradient-boosted-trees baseline reported beside every fraud run: is deep learning worth it here?

scikit-learn's HistGradientBoostingClassifier, trained on the same training split and the same preprocessed
features (numeric columns scaled, categoricals as vocabulary codes with native categorical splits), with its decision
threshold chosen on the same validation split by the same rule, scored on the same test split with the same metrics.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from recipezoo.fraud import metrics as M

log = logging.getLogger(__name__)

# HistGradientBoosting's categorical splits need fewer categories than its bins (255): larger vocabularies are
# given to it as ordinal numbers instead.
_MAX_NATIVE_CATEGORIES = 255


def _arrays(loader: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs_num, xs_cat, ys = [], [], []
    for x_num, x_cat, y in loader:
        xs_num.append(x_num.numpy())
        xs_cat.append(x_cat.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs_num), np.concatenate(xs_cat), np.concatenate(ys).astype(int)


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
    threshold = M.choose_threshold(
        scores_val, y_val, threshold_rule, threshold_target, cost_fn=cost_fn, cost_fp=cost_fp
    )["threshold"]
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
    **metric_kwargs: Any,
) -> dict[str, Any]:
    """Train and score the GBDT baseline on ``datamodule``'s splits.

    Args:
        datamodule: a set-up :class:`recipezoo.fraud.data.TabularDataModule`.
        max_iter: boosting iterations (early-stopped on an internal 10% of train).
        learning_rate: shrinkage.
        max_leaf_nodes: tree size.
        l2_regularization: leaf-value regularisation.
        seed: random state.
        **metric_kwargs: threshold rule, costs, fpr, recall, prevalence, as the deep model uses.

    Returns:
        ``{"name", "params", "fit_time_s", "test": {test/auprc, test/roc_auc, ...}}``.
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
    score = lambda xn, xc: clf.predict_proba(np.hstack([xn, xc]))[:, 1]  # noqa: E731
    metrics = test_metrics(score(xn_va, xc_va), y_va, score(xn_te, xc_te), y_te, **metric_kwargs)
    return {
        "name": "HistGradientBoostingClassifier",
        "params": params,
        "fit_time_s": round(fit_time, 2),
        "test": metrics,
    }
