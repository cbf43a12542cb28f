"""The linear probe (logistic regression on frozen pretrained features) and the new head's initialisation.

Everything is offline: the "pretrained" weights are tiny networks made here and saved to a file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from recipezoo.core import probe
from recipezoo.core.checkpoint import load_module
from recipezoo.train import _baseline_wins, _report, build, run
from recipezoo.vision.models import create_model
from tests.conftest import TINY, tiny


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A "pretrained" convnet_tiny (another label count than the synthetic twin's, so the head is new)."""
    torch.manual_seed(0)
    path = tmp_path / "pretrained.pth"
    torch.save(create_model("convnet_tiny", num_classes=3).state_dict(), path)
    return path


def _blobs(n: int, classes: int, dim: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (classes, dim))
    y = rng.integers(0, classes, n)
    # features on very different scales, so the folded standardisation matters
    return (centres[y] + rng.normal(0, 1, (n, dim))) * np.logspace(-2, 2, dim) + 5.0, y


@pytest.mark.parametrize("classes", [2, 4])
def test_probe_head_is_the_fitted_logistic_regression(classes: int) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = _blobs(400, classes)
    head = probe.fit_probe(x[:300], y[:300], x[300:], y[300:], classes, Cs=(0.1,))
    # the reference: scikit-learn on the features standardised with scales floored at a tenth of the median's
    mean, std = x[:300].mean(0), x[:300].std(0)
    scale = np.maximum(std, 0.1 * np.median(std))
    reference = LogisticRegression(C=0.1, max_iter=1000).fit((x[:300] - mean) / scale, y[:300])
    logits = head.logits(x[300:])
    assert logits.shape == (100, classes)
    # the folded linear head gives the reference's probabilities, not just its argmax
    probs = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), -1).numpy()
    np.testing.assert_allclose(probs, reference.predict_proba((x[300:] - mean) / scale), atol=1e-4)
    assert (logits.argmax(1) == y[300:]).mean() > 0.9


def test_a_near_constant_feature_gives_a_finite_head() -> None:
    """A feature whose spread is float noise (as pooled features of a real encoder have) must not blow the folded
    head up: its weights stay finite in float32 and the logits usable to start fine-tuning from."""
    x, y = _blobs(300, 2, seed=3)
    x = np.hstack([x, np.full((300, 1), 0.3) + np.random.default_rng(0).normal(0, 1e-12, (300, 1))]).astype(np.float32)
    head = probe.fit_probe(x[:200], y[:200], x[200:], y[200:], 2)
    weight = torch.as_tensor(head.weight)
    assert torch.isfinite(weight).all() and weight.abs().max() < 1e4
    assert (head.logits(x[200:]).argmax(1) == y[200:]).mean() > 0.9


def test_probe_picks_C_on_validation_and_never_predicts_an_unseen_class() -> None:
    x, y = _blobs(300, 3, seed=1)
    seen = y != 2  # class 2 absent from training
    head = probe.fit_probe(x[seen][:150], y[seen][:150], x[seen][150:], y[seen][150:], 4, Cs=(1e-4, 1.0))
    assert head.C == 1.0  # 1e-4 all but ignores the features
    assert head.weight.shape == (4, 6) and set(head.logits(x).argmax(1)) <= {0, 1}


def test_init_head_zero_and_probe() -> None:
    module = type("M", (), {})()
    module.net = nn.Module()
    module.net.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(4, 3))
    linear = probe.head_linear(module.net)
    assert linear is module.net.head[1]
    probe.init_head(module, "zero")
    assert not linear.weight.any() and not linear.bias.any()
    fitted = probe.ProbeHead(np.ones((3, 4), np.float32), np.arange(3, dtype=np.float32), C=1.0)
    probe.init_head(module, "probe", fitted)
    assert torch.equal(linear.weight, torch.ones(3, 4)) and torch.equal(linear.bias, torch.arange(3.0))
    with pytest.raises(ValueError):
        probe.init_head(module, "probe")


def test_vision_run_reports_the_probe_and_writes_its_checkpoint(make_cfg, weights: Path, caplog) -> None:
    cfg = make_cfg(
        "+recipe=vision/imagefolder_finetune",
        *TINY,
        f"backbone.pretrained={weights}",
        "probe.enabled=true",
        "finetune.head_init=probe",
        "trainer.max_epochs=1",
    )
    with caplog.at_level(logging.INFO, logger="recipezoo"):
        summary = run(cfg)
    base = summary["baseline"]
    assert base["name"] == "linear_probe"
    assert {"val/acc", "val/f1", "val/loss"} <= set(base["val"]) and {"test/acc", "test/f1"} <= set(base["test"])
    assert isinstance(base["beats_model_on_val"], bool)
    written = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())
    assert written["baseline"]["test"] == base["test"]
    assert "Linear probe (logistic regression" in caplog.text and "LP-FT" in caplog.text
    assert "Baseline test:    linear_probe" in caplog.text

    # The probe's checkpoint: the pretrained backbone with the probe as its head, loadable like any checkpoint,
    # and scoring the validation split exactly as the probe did.
    path = Path(base["artifact"])
    assert path.name == "baseline.ckpt" and path.is_file()
    module, _ = load_module(path)
    pretrained = torch.load(weights, weights_only=True)
    state = module.net.state_dict()
    backbone_keys = [k for k in pretrained if not k.startswith("model.fc.")]
    assert backbone_keys and all(torch.equal(state[k], pretrained[k]) for k in backbone_keys)
    datamodule, _ = build(cfg)
    module.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in datamodule.eval_dataloader("val"):
            correct += int((module(x).argmax(1) == y).sum())
            total += len(y)
    assert correct / total == pytest.approx(base["val"]["val/acc"], abs=1e-6)


def test_head_init_zero_starts_at_zero_logits(make_cfg, weights: Path) -> None:
    cfg = make_cfg("+recipe=vision/imagefolder_finetune", *TINY, f"backbone.pretrained={weights}",
                   "finetune.head_init=zero", "probe.enabled=false")  # fmt: skip
    datamodule, module = build(cfg)
    transfer = probe.before_fit(cfg, datamodule, module, trainer=None)
    assert transfer.probe is None  # probe.enabled is false and zero needs none
    x, _ = next(iter(datamodule.eval_dataloader("val")))
    module.eval()
    assert not module(x).any()


def test_scratch_and_resumed_runs_skip_the_probe(make_cfg, caplog) -> None:
    cfg = make_cfg("+recipe=vision/imagefolder_finetune", *TINY, "probe.enabled=true", "finetune.head_init=probe")
    datamodule, module = build(cfg)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="recipezoo"):
        transfer = probe.before_fit(cfg, datamodule, module, trainer=None)
    assert transfer.probe is None and "trained from scratch" in caplog.text
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_text_and_audio_classifiers_are_probed(make_cfg) -> None:
    cfg = make_cfg("+recipe=nlp/text_classification", *tiny("nlp/text_classification"), "probe.enabled=true")
    datamodule, module = build(cfg)
    result = probe.before_fit(cfg, datamodule, module, trainer=None).probe
    assert result is not None and 0.0 <= result.summary["val"]["val/acc"] <= 1.0
    assert result.summary["params"]["features"] == module.net.head.in_features

    cfg = make_cfg("+recipe=speech/audio_classification", *tiny("speech/audio_classification"))
    datamodule, module = build(cfg)
    result = probe.run_probe(module, datamodule)
    assert result.head.weight.shape == (module.num_classes, module.net.head.in_features)
    assert result.summary["test"]["test/acc"] >= 0.0


def test_multilabel_text_skips_the_probe(make_cfg, caplog) -> None:
    recipe = "nlp/text_classification_multilabel"
    cfg = make_cfg(f"+recipe={recipe}", *tiny(recipe), "probe.enabled=true")
    datamodule, module = build(cfg)
    with caplog.at_level(logging.INFO, logger="recipezoo"):
        assert probe.before_fit(cfg, datamodule, module, trainer=None).probe is None
    assert "multi-label" in caplog.text


def test_the_run_says_when_the_baseline_wins(tmp_path: Path, caplog) -> None:
    from omegaconf import OmegaConf

    cb = type("CB", (), {"best_model_score": torch.tensor(0.80)})()
    monitor = OmegaConf.create({"metric": "val/acc", "mode": "max"})
    assert _baseline_wins({"val": {"val/acc": 0.9}}, monitor, cb) is True
    assert _baseline_wins({"val": {"val/acc": 0.7}}, monitor, cb) is False
    assert _baseline_wins({"val": {}}, monitor, cb) is None
    lower = OmegaConf.create({"metric": "val/loss", "mode": "min"})
    assert _baseline_wins({"val": {"val/loss": 0.7}}, lower, cb) is True

    summary = {
        "best_checkpoint": str(tmp_path / "checkpoints" / "best.ckpt"),
        "best_score": 0.8,
        "last_checkpoint": None,
        "monitor": "val/acc",
        "test": {"test/acc": 0.79},
        "wall_time_s": 1.0,
        "baseline": {
            "name": "linear_probe",
            "val": {"val/acc": 0.9},
            "test": {"test/acc": 0.88},
            "artifact": str(tmp_path / "checkpoints" / "baseline.ckpt"),
            "beats_model_on_val": True,
        },
    }
    with caplog.at_level(logging.INFO, logger="recipezoo"):
        _report(summary, tmp_path)
    assert "the linear_probe beats the model on validation (val/acc 0.9000 against 0.8000)" in caplog.text
    assert "model=baseline format=onnx" in caplog.text


def test_a_run_from_scratch_that_asked_for_no_probe_says_nothing_of_it(make_cfg, caplog) -> None:
    cfg = make_cfg("+recipe=vision/imagefolder_finetune", *TINY, "probe.enabled=false")
    datamodule, module = build(cfg)
    with caplog.at_level(logging.INFO, logger="recipezoo"):
        assert probe.before_fit(cfg, datamodule, module, trainer=None).probe is None
    assert "skipped" not in caplog.text
