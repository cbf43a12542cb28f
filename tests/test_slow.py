"""Slow tier (python -m pytest -m slow): real training to a real accuracy, and a real torchvision backbone."""

import pytest

from recipezoo.export import export
from recipezoo.train import run


@pytest.mark.slow
def test_default_recipe_learns_the_real_digits(make_cfg) -> None:
    cfg = make_cfg("data.synthetic=false", "trainer.max_epochs=8")
    summary = run(cfg)
    assert summary["test"]["test/acc"] >= 0.97


@pytest.mark.slow
@pytest.mark.export
def test_imagefolder_recipe_with_its_own_resnet18_exports(make_cfg) -> None:
    # The recipe's real backbone (torchvision resnet18 at 224x224), randomly initialised: no download.
    cfg = make_cfg(
        "+recipe=vision/imagefolder_finetune",
        "backbone.pretrained=false",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
    )
    summary = run(cfg)
    for fmt in ("onnx", "torchscript"):
        meta = export(summary["best_checkpoint"], fmt)
        assert meta["parity"]["max_abs_diff"] <= 1e-4
        assert meta["inputs"]["input"]["shape"] == ["batch", 3, 224, 224]
