"""Fraud detection: metrics against hand-computed cases, the networks, export parity, and FraudDetector training."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from scipy.special import expit
from sklearn.metrics import average_precision_score
from torch.utils.data import DataLoader, TensorDataset

from recipezoo.core.export import Runner, eager, export_onnx, export_torchscript, max_abs_diff
from recipezoo.fraud import metrics as M
from recipezoo.fraud.models import FTTransformer, TabularAutoencoder, TabularMLP
from recipezoo.fraud.task import FraudDetector, binary_focal_loss_with_logits

# Small but complete versions of every network, so the tests stay fast on CPU.
NETS = {
    "mlp": partial(TabularMLP, hidden=(32, 16)),
    "ft_transformer": partial(FTTransformer, d_token=16, n_layers=2, n_heads=4),
    "autoencoder": partial(TabularAutoencoder, embedding_dim=4, hidden=(16, 4)),
}
ADAMW = partial(torch.optim.AdamW, lr=3e-3, weight_decay=1e-4)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # These tensors are tiny: a second intra-op thread buys nothing and, on a busy machine, its spin-waits made
    # the fits 5-10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- threshold selection and expected cost ----------------------------------------------------------------------

# Distinct scores 0.9 > 0.8 > 0.3 > 0.1; a fraud and a normal row tie at 0.8 and can only be flagged together.
S = np.array([0.9, 0.8, 0.8, 0.3, 0.1])
Y = np.array([1, 0, 1, 0, 0])


def _check_stats(threshold: float, stats: dict, scores: np.ndarray, y: np.ndarray) -> None:
    """The reported stats are those of the decision ``scores >= threshold``."""
    flag = scores >= threshold
    tp, fp = int((flag & (y == 1)).sum()), int((flag & (y == 0)).sum())
    assert (stats["tp"], stats["fp"]) == (tp, fp)
    assert stats["fn"] == int(y.sum()) - tp and stats["tn"] == int((y == 0).sum()) - fp
    json.dumps(stats)  # plain python only


def test_expected_cost_hand_case() -> None:
    cost = M.expected_cost([1, 1, 0, 0], [1, 0, 1, 0], cost_fn=100, cost_fp=1)  # one FN, one FP
    assert cost == {"total": 101.0, "mean": 25.25}
    assert M.expected_cost([0, 0], [0, 0]) == {"total": 0.0, "mean": 0.0}


def test_max_f1_with_tied_scores() -> None:
    # Candidates: >=0.9 F1 2/3; >=0.8 (flags the tie: tp 2, fp 1) F1 0.8; >=0.3 F1 2/3; all F1 4/7.
    stats = M.choose_threshold(S, Y, "max_f1")
    threshold = stats["threshold"]
    assert threshold == pytest.approx(0.55)  # halfway between 0.8 and the next score down
    assert stats["f1"] == pytest.approx(0.8) and stats["precision"] == pytest.approx(2 / 3) and stats["recall"] == 1
    assert stats["reached"] and stats["message"] is None
    _check_stats(threshold, stats, S, Y)


def test_equal_f1_prefers_the_higher_threshold() -> None:
    # >=4: tp 1, fn 1 -> F1 2/3; >=1: tp 2, fp 2 -> F1 2/3 as well; the one flagging fewer rows wins.
    scores, y = np.array([4.0, 3.0, 2.0, 1.0]), np.array([1, 0, 0, 1])
    stats = M.choose_threshold(scores, y, "max_f1")
    threshold = stats["threshold"]
    assert threshold == pytest.approx(3.5) and stats["f1"] == pytest.approx(2 / 3) and stats["tp"] == 1


@pytest.mark.parametrize(
    "cost_fn, cost_fp, threshold, total",
    [
        (10.0, 1.0, 0.55, 1.0),  # a missed fraud is expensive: flag the tie (one false alarm)
        (0.5, 1.0, 0.85, 0.5),  # false alarms dearer: flag only 0.9, miss one fraud
    ],
)
def test_min_cost(cost_fn: float, cost_fp: float, threshold: float, total: float) -> None:
    stats = M.choose_threshold(S, Y, "min_cost", cost_fn=cost_fn, cost_fp=cost_fp)
    thr = stats["threshold"]
    assert thr == pytest.approx(threshold)
    assert stats["cost_total"] == pytest.approx(total) and stats["cost"] == pytest.approx(total / len(S))
    assert M.expected_cost(Y, S >= thr, cost_fn, cost_fp)["total"] == pytest.approx(total)
    _check_stats(thr, stats, S, Y)


def test_min_cost_may_flag_nothing() -> None:
    # The top score is a normal row: flagging it costs 1 and catches nothing; missing the fraud costs only 0.5.
    scores, y = np.array([0.9, 0.1]), np.array([0, 1])
    stats = M.choose_threshold(scores, y, "min_cost", cost_fn=0.5, cost_fp=1.0)
    thr = stats["threshold"]
    assert thr > scores.max() and np.float32(scores.max()) < thr and stats["tp"] + stats["fp"] == 0
    assert stats["cost_total"] == 0.5 and stats["precision"] == 0.0 and stats["recall"] == 0.0


def test_target_precision_and_recall() -> None:
    stats = M.choose_threshold(S, Y, "target_precision", target=1.0)
    thr = stats["threshold"]
    assert thr == pytest.approx(0.85) and stats["precision"] == 1 and stats["recall"] == 0.5
    stats = M.choose_threshold(S, Y, "target_precision", target=0.6)  # 2/3 precision reaches recall 1
    thr = stats["threshold"]
    assert thr == pytest.approx(0.55) and stats["recall"] == 1
    stats = M.choose_threshold(S, Y, "target_recall", target=1.0)  # the best precision at recall 1
    thr = stats["threshold"]
    assert thr == pytest.approx(0.55) and stats["precision"] == pytest.approx(2 / 3)
    stats = M.choose_threshold(S, Y, "target_recall", target=0.5)
    thr = stats["threshold"]
    assert thr == pytest.approx(0.85) and stats["precision"] == 1
    _check_stats(thr, stats, S, Y)


def test_unreachable_target_chooses_the_closest_and_says_so() -> None:
    stats = M.choose_threshold([0.9, 0.1], [0, 1], "target_precision", target=0.9)
    thr = stats["threshold"]
    assert not stats["reached"] and "not reachable" in stats["message"]
    assert stats["precision"] == 0.5 and thr == pytest.approx(0.1)  # the highest precision there is


def test_threshold_degenerate_cases() -> None:
    with pytest.raises(ValueError, match="no positive"):
        M.choose_threshold([0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match="needs a target"):
        M.choose_threshold(S, Y, "target_recall")
    with pytest.raises(ValueError, match="unknown threshold rule"):
        M.choose_threshold(S, Y, "best")
    stats = M.choose_threshold([0.3, 0.7], [1, 1])  # no negatives: flag everything
    thr = stats["threshold"]
    assert stats["recall"] == 1 and thr == pytest.approx(0.3)
    stats = M.choose_threshold([0.5, 0.5, 0.5], [1, 0, 0])  # one tie group: all or nothing
    thr = stats["threshold"]
    assert stats["tp"] + stats["fp"] == 3 and thr == 0.5


# -- ranking metrics, ECE, reweighted AUPRC ---------------------------------------------------------------------

R_S = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
R_Y = np.array([1, 0, 1, 1, 0, 0])


def test_recall_at_fpr_hand_cases() -> None:
    assert M.recall_at_fpr(R_S, R_Y, fpr=0.0) == pytest.approx(1 / 3)  # only 0.9 before the first negative
    assert M.recall_at_fpr(R_S, R_Y, fpr=1 / 3) == pytest.approx(1.0)  # one false alarm allowed: >= 0.6
    assert M.recall_at_fpr([0.9, 0.8, 0.8], [1, 1, 0], fpr=0.0) == pytest.approx(0.5)  # the tie cannot be split
    assert math.isnan(M.recall_at_fpr([0.1, 0.2], [0, 0]))


def test_precision_at_recall_hand_cases() -> None:
    # recall >= 2/3 first at >= 0.7 (precision 2/3), then >= 0.6 (3/4), then 3/5, 1/2: the best is 3/4.
    assert M.precision_at_recall(R_S, R_Y, recall=2 / 3) == pytest.approx(0.75)
    assert M.precision_at_recall(R_S, R_Y, recall=0.3) == pytest.approx(1.0)
    assert M.precision_at_recall(R_S, R_Y, recall=1.0) == pytest.approx(0.75)
    assert math.isnan(M.precision_at_recall([0.1], [0]))


def test_ece_hand_case_and_torchmetrics() -> None:
    # Two bins: {0.1, 0.2} mean p 0.15 vs rate 0.5 -> 0.35 * 2/4; {0.7, 0.9} mean p 0.8 vs 1.0 -> 0.2 * 2/4.
    assert M.ece([0.1, 0.2, 0.7, 0.9], [0, 1, 1, 1], n_bins=2) == pytest.approx(0.275)
    assert M.ece([0.0, 1.0], [0, 1]) == 0.0
    from torchmetrics.functional.classification import binary_calibration_error

    rng = np.random.default_rng(0)
    p, y = rng.uniform(size=500), rng.integers(0, 2, 500)
    expected = float(binary_calibration_error(torch.tensor(p), torch.tensor(y), n_bins=15))
    assert M.ece(p, y, n_bins=15) == pytest.approx(expected, abs=1e-6)


def test_auprc_at_prevalence() -> None:
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=2000) < 0.1).astype(int)
    s = y * 1.5 + rng.normal(size=2000)
    rate = y.mean()
    assert M.auprc_at_prevalence(s, y, rate) == pytest.approx(average_precision_score(y, s), abs=1e-9)
    assert M.auprc_at_prevalence(s, y, 0.002) < M.auprc(s, y) - 0.2  # rarer fraud: precision collapses
    assert M.auprc_at_prevalence(s, y, 0.5) > M.auprc(s, y)
    with pytest.raises(ValueError, match="prevalence"):
        M.auprc_at_prevalence(s, y, 0.0)


# -- calibration ------------------------------------------------------------------------------------------------


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


@pytest.fixture
def overconfident() -> tuple[np.ndarray, np.ndarray]:
    """Logits 4x too large: labels drawn from sigmoid(z), scores 4 * z."""
    rng = np.random.default_rng(1)
    z = rng.normal(scale=1.5, size=4000)
    return 4 * z, (rng.uniform(size=z.size) < expit(z)).astype(int)


def test_apply_calibration_semantics() -> None:
    s = np.array([-1.0, 0.5, 2.0])
    np.testing.assert_allclose(M.apply_calibration(s, {"kind": "none"}), expit(s))
    np.testing.assert_allclose(M.apply_calibration(s, {"kind": "platt", "a": 2.0, "b": -1.0}), expit(2 * s - 1))
    iso = {"kind": "isotonic", "x": [0.0, 1.0], "y": [0.2, 0.8]}
    np.testing.assert_allclose(M.apply_calibration(s, iso), [0.2, 0.5, 0.8])


def test_temperature_lowers_nll(overconfident: tuple[np.ndarray, np.ndarray]) -> None:
    s, y = overconfident
    cal = M.fit_calibration(s, y, "temperature")
    assert set(cal) == {"kind", "a", "b"} and cal["kind"] == "platt" and cal["b"] == 0.0
    assert cal["a"] == pytest.approx(0.25, rel=0.15)  # 1/T undoes the 4x
    assert _nll(M.apply_calibration(s, cal), y) < _nll(M.apply_calibration(s, {"kind": "none"}), y) - 0.05
    json.dumps(cal)


def test_platt_fits_slope_and_offset(overconfident: tuple[np.ndarray, np.ndarray]) -> None:
    s, y = overconfident
    shifted = s + 8  # now also offset: the true map is sigmoid(s/4 - 2)
    cal = M.fit_calibration(shifted, y, "platt")
    assert cal["a"] == pytest.approx(0.25, rel=0.15) and cal["b"] == pytest.approx(-2.0, abs=0.3)
    assert _nll(M.apply_calibration(shifted, cal), y) < _nll(M.apply_calibration(shifted, {"kind": "none"}), y)


def test_isotonic_is_monotone(overconfident: tuple[np.ndarray, np.ndarray]) -> None:
    s, y = overconfident
    cal = M.fit_calibration(s, y, "isotonic")
    assert cal["kind"] == "isotonic" and len(cal["x"]) == len(cal["y"]) > 2
    assert np.all(np.diff(cal["x"]) > 0) and np.all(np.diff(cal["y"]) >= 0)
    p = M.apply_calibration(np.sort(np.r_[s, -1e3, 1e3]), cal)
    assert np.all(np.diff(p) >= 0) and p.min() >= 0 and p.max() <= 1
    assert _nll(M.apply_calibration(s, cal), y) < _nll(M.apply_calibration(s, {"kind": "none"}), y)
    json.dumps(cal)
    assert M.fit_calibration(s, y, "none") == {"kind": "none"}
    with pytest.raises(ValueError, match="both classes"):
        M.fit_calibration(s, np.zeros_like(y), "platt")


# -- networks and export ----------------------------------------------------------------------------------------


def _inputs(n: int, n_num: int, cards: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    x_cat = torch.stack([torch.randint(0, c, (n,)) for c in cards], 1) if cards else torch.zeros(n, 0).long()
    return torch.randn(n, n_num), x_cat


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("n_num, cards", [(5, [4, 7, 2]), (5, []), (0, [4, 7])], ids=["both", "no_cat", "no_num"])
def test_forward_shapes(name: str, n_num: int, cards: list[int]) -> None:
    net = NETS[name](n_num, cards)
    assert net.score_kind == ("anomaly" if name == "autoencoder" else "logit")
    assert net.n_num == n_num and net.cardinalities == cards
    for mode in (net.train, net.eval):
        mode()
        score = net(*_inputs(6, n_num, cards))
        assert score.shape == (6,) and score.dtype == torch.float32 and torch.isfinite(score).all()
    net.train()(*_inputs(6, n_num, cards)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())  # every parameter is used (DDP needs it)
    if name == "autoencoder":
        assert (net.eval()(*_inputs(6, n_num, cards)) >= 0).all()  # a reconstruction error


def test_network_argument_errors() -> None:
    with pytest.raises(ValueError, match="at least one feature"):
        TabularMLP(0, [])
    with pytest.raises(ValueError, match="divisible"):
        FTTransformer(3, [2], d_token=10, n_heads=4)


def test_default_embedding_dim() -> None:
    net = TabularMLP(1, [2, 10, 1000])
    assert [t.embedding_dim for t in net.embeddings.tables] == [2, 6, 16]  # round(1.6 * c**0.56), capped at 16


@pytest.mark.export
@pytest.mark.parametrize(
    "name, n_num, cards",
    [("mlp", 5, [4, 7, 2]), ("ft_transformer", 5, [4, 7, 2]), ("autoencoder", 5, [4, 7, 2]), ("mlp", 3, [])],
    ids=["mlp", "ft_transformer", "autoencoder", "mlp_no_cat"],
)
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_parity(name: str, n_num: int, cards: list[int], fmt: str, tmp_path: Path) -> None:
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.manual_seed(0)
    module = FraudDetector(NETS[name](n_num, cards), ADAMW, preprocessing={"numeric": ["a"]}, positive_label="fraud")
    spec = module.export_spec(batch_size=8)
    assert list(spec.inputs) == ["x_num", "x_cat"] and spec.output_names == ["score"]
    assert spec.inputs["x_cat"].dtype == torch.int64 and spec.inputs["x_cat"].shape == (8, len(cards))
    meta = spec.metadata
    assert meta["task"] == "fraud_detection" and meta["score_kind"] == module.score_kind
    assert meta["preprocessing"] == {"numeric": ["a"]} and meta["positive_label"] == "fraud"
    assert {"calibration", "threshold"} <= set(meta)
    json.dumps(meta)
    path = tmp_path / ("model.onnx" if fmt == "onnx" else "model.pt")
    (export_onnx if fmt == "onnx" else export_torchscript)(spec, path)
    runner = Runner(fmt, path)
    for inputs in (spec.inputs, spec.make_inputs(3)):  # a second batch size: the batch axis is dynamic
        out = runner(inputs)
        assert out[0].shape == (inputs["x_num"].shape[0],)
        assert max_abs_diff(eager(spec, inputs), out) <= 1e-4


# -- losses -----------------------------------------------------------------------------------------------------


def test_focal_loss_reduces_to_bce() -> None:
    logits, y = torch.randn(64) * 3, (torch.rand(64) < 0.3).float()
    bce = F.binary_cross_entropy_with_logits(logits, y)
    assert torch.allclose(binary_focal_loss_with_logits(logits, y, gamma=0.0, alpha=None), bce, atol=1e-6)
    pw = torch.tensor(5.0)
    assert torch.allclose(
        binary_focal_loss_with_logits(logits, y, gamma=0.0, pos_weight=pw),
        F.binary_cross_entropy_with_logits(logits, y, pos_weight=pw),
        atol=1e-6,
    )
    assert binary_focal_loss_with_logits(logits, y, gamma=2.0) < bce  # easy rows are down-weighted
    module = FraudDetector(TabularMLP(2, []), ADAMW, loss="focal", focal_gamma=0.0, pos_weight=None)
    assert torch.allclose(module._classifier_loss(logits, y), bce, atol=1e-6)


def test_pos_weight_scales_the_positive_term() -> None:
    logits, y = torch.randn(64), (torch.rand(64) < 0.3).float()
    pos = -F.logsigmoid(logits)  # loss of a positive row
    neg = -F.logsigmoid(-logits)  # loss of a negative row
    for pos_weight, data_pos_weight, w in [(None, 9.0, 1.0), (3.0, 9.0, 3.0), ("auto", 9.0, 9.0)]:
        module = FraudDetector(TabularMLP(2, []), ADAMW, pos_weight=pos_weight, data_pos_weight=data_pos_weight)
        assert module.pos_weight == (None if pos_weight is None else w)
        expected = (y * w * pos + (1 - y) * neg).mean()
        assert torch.allclose(module._classifier_loss(logits, y), expected, atol=1e-6)
    unweighted = FraudDetector(TabularMLP(2, []), ADAMW, pos_weight=None)._classifier_loss(logits, y)
    assert FraudDetector(TabularMLP(2, []), ADAMW, pos_weight=4.0)._classifier_loss(logits, y) > unweighted


# -- training with Lightning ------------------------------------------------------------------------------------


def synthetic(n: int = 3000, seed: int = 0, fraud_shift: float = 0.0) -> TensorDataset:
    """Rows with a learnable fraud rule: two numeric features far out, or the rare category 4 of column 0.

    With ``fraud_shift`` > 0 the fraud rows also sit ``fraud_shift`` away on feature 0 (an anomaly to detect).
    """
    g = torch.Generator().manual_seed(seed)
    x_num = torch.randn(n, 4, generator=g)
    x_cat = torch.stack([torch.randint(0, 5, (n,), generator=g), torch.randint(0, 3, (n,), generator=g)], 1)
    y = ((x_num[:, 0] + x_num[:, 1] > 2.2) | ((x_cat[:, 0] == 4) & (x_num[:, 2] > 0.5))).float()
    x_num[:, 0] += fraud_shift * y
    return TensorDataset(x_num, x_cat, y)


def trainer(tmp_path: Path, max_epochs: int = 3, **kwargs: object) -> L.Trainer:
    defaults = {"logger": False, "enable_checkpointing": False}
    return L.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=max_epochs,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **{**defaults, **kwargs},
    )


def loaders(train: TensorDataset, val: TensorDataset) -> tuple[DataLoader, DataLoader]:
    return DataLoader(train, batch_size=128, shuffle=True, drop_last=True), DataLoader(val, batch_size=512)


@pytest.mark.parametrize("name", ["mlp", "ft_transformer"])
def test_fit_learns_and_stores_the_decision(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    train, val = synthetic(3000, seed=0), synthetic(1000, seed=1)
    rate = float(val.tensors[2].mean())
    module = FraudDetector(
        NETS[name](4, [5, 3]), ADAMW, data_pos_weight=4.0, prevalence=0.01, cost_fn=50.0, cost_fp=1.0
    )
    assert module.threshold is None
    t = trainer(tmp_path)
    t.fit(module, *loaders(train, val))
    metrics = {k: float(v) for k, v in t.callback_metrics.items()}
    assert metrics["val/auprc"] > max(0.5, 3 * rate), metrics
    assert metrics["val/roc_auc"] > 0.85
    assert {"val/f1", "val/cost", "val/ece", "val/loss"} <= set(metrics)
    assert module.threshold is not None and math.isfinite(module.threshold)
    assert module.threshold == pytest.approx(metrics["val/threshold"])
    assert module.calibration["kind"] == "platt" and module.calibration["b"] == 0.0  # temperature
    assert module.decision.epoch == 2 and module.decision.stats["rule"] == "max_f1"

    (test,) = t.test(module, DataLoader(synthetic(1000, seed=2), batch_size=512), verbose=False)
    expected = ["auprc", "roc_auc", "recall_at_fpr", "precision_at_recall", "precision", "recall", "f1", "cost"]
    expected += ["ece", "threshold", "auprc_at_prevalence"]
    assert set(test) == {f"test/{k}" for k in expected}
    assert test["test/threshold"] == pytest.approx(module.threshold)
    assert test["test/auprc_at_prevalence"] < test["test/auprc"]  # 1% fraud is rarer than the test split's rate
    assert module.test_results["tp"] + module.test_results["fn"] == int(synthetic(1000, seed=2).tensors[2].sum())
    scores = torch.cat(t.predict(module, DataLoader(synthetic(100, seed=3), batch_size=64)))
    assert scores.shape == (100,)
    decided = module.decide(scores)
    np.testing.assert_array_equal(decided["flag"], decided["score"] >= module.threshold)


def test_autoencoder_trains_on_normal_rows_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    # Fraud rows sit 6 away on feature 0; normal rows are N(0, 1) there, so feature 0 tells who reached forward().
    train, val = synthetic(2000, seed=0, fraud_shift=6.0), synthetic(800, seed=1, fraud_shift=6.0)
    module = FraudDetector(NETS["autoencoder"](4, [5, 3]), ADAMW)
    assert module.calibration_kind == "isotonic"  # temperature means nothing on reconstruction errors
    seen: list[torch.Tensor] = []

    def spy(net: torch.nn.Module, args: tuple[torch.Tensor, torch.Tensor]) -> None:
        if net.training:
            seen.append(args[0][:, 0].detach().clone())

    module.net.register_forward_pre_hook(spy)
    t = trainer(tmp_path)
    t.fit(module, *loaders(train, val))
    rows = torch.cat(seen)
    n_normal = int((train.tensors[2] == 0).sum())
    assert rows.numel() >= 2 * n_normal * 0.9  # the normal rows of every (drop_last) epoch
    assert rows.max() < 5.0, "a fraud row reached the autoencoder during training"
    assert float(t.callback_metrics["val/auprc"]) > 0.8  # the shifted frauds reconstruct badly
    assert module.threshold is not None and module.calibration["kind"] == "isotonic"

    frauds_only = (torch.randn(4, 4), torch.zeros(4, 2).long(), torch.ones(4))
    assert module.training_step(frauds_only, 0) is None  # a batch with no normal row is skipped


def test_validation_without_frauds_keeps_the_decision(tmp_path: Path) -> None:
    train = synthetic(600, seed=0)
    val = synthetic(400, seed=1)
    normal = val.tensors[2] == 0
    val = TensorDataset(*(t[normal] for t in val.tensors))
    module = FraudDetector(NETS["mlp"](4, [5, 3]), ADAMW)
    t = trainer(tmp_path, max_epochs=1)
    with pytest.warns(UserWarning, match="threshold and calibration were not updated"):
        t.fit(module, *loaders(train, val))
    assert module.threshold is None and module.calibration == {"kind": "none"}
    assert math.isnan(float(t.callback_metrics["val/auprc"]))


def test_checkpoints_carry_their_own_decision(tmp_path: Path) -> None:
    torch.manual_seed(0)
    train, val = synthetic(1500, seed=0), synthetic(600, seed=1)
    module = FraudDetector(NETS["mlp"](4, [5, 3]), ADAMW, calibration="isotonic", threshold_rule="min_cost")
    every = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="epoch{epoch}", save_top_k=-1, every_n_epochs=1)
    best = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="best", monitor="val/auprc", mode="max")
    t = trainer(tmp_path, max_epochs=3, enable_checkpointing=True, callbacks=[every, best])
    t.fit(module, *loaders(train, val))

    saved = sorted((tmp_path / "ckpt").glob("epoch*.ckpt"))
    assert len(saved) == 3
    for path in saved:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = ckpt["state_dict"]["decision._extra_state"]
        assert state["epoch"] == ckpt["epoch"]  # chosen at the epoch the checkpoint was written
        assert state["calibration"]["kind"] == "isotonic" and state["stats"]["rule"] == "min_cost"

    ckpt = torch.load(best.best_model_path, map_location="cpu", weights_only=True)
    reloaded = FraudDetector(NETS["mlp"](4, [5, 3]), ADAMW, calibration="isotonic", threshold_rule="min_cost")
    reloaded.load_state_dict(ckpt["state_dict"])
    stored = ckpt["state_dict"]["decision._extra_state"]
    assert reloaded.threshold == stored["threshold"] and reloaded.calibration == stored["calibration"]
    assert reloaded.decision.epoch == ckpt["epoch"]
    assert reloaded.export_spec(4).metadata["threshold"] == stored["threshold"]
    last = torch.load(saved[-1], map_location="cpu", weights_only=True)["state_dict"]["decision._extra_state"]
    assert (module.threshold, module.calibration) == (last["threshold"], last["calibration"])


def test_fraud_domain_imports_no_heavy_domain_libraries() -> None:
    # models.py and metrics.py load none of them (nor Lightning/Hydra). task.py needs Lightning, and Lightning's
    # torchmetrics itself imports the `transformers` package whenever it is installed: task.py must add nothing.
    code = (
        "import sys\n"
        "heavy = lambda: sorted({m.split('.')[0] for m in sys.modules} & {'transformers', 'torchaudio', 'timm'})\n"
        "import recipezoo.fraud.models, recipezoo.fraud.metrics\n"
        "assert not heavy() and 'lightning' not in sys.modules and 'hydra' not in sys.modules, sys.modules\n"
        "import lightning.pytorch\n"
        "before = set(sys.modules)\n"
        "import recipezoo.fraud.task\n"
        "added = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "assert added <= {'recipezoo'}, added\n"
        "assert not {'torchaudio', 'timm'} & set(heavy()), heavy()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
