"""The classifier's metrics agree with hand-computed values (no state shared between top-1, top-5 and F1)."""

import functools

import pytest
import torch

from recipezoo.vision.models import create_model
from recipezoo.vision.task import ImageClassifier


def test_top1_top5_and_macro_f1_are_computed_independently() -> None:
    k = 10
    module = ImageClassifier(create_model("convnet_tiny", k), k, functools.partial(torch.optim.AdamW, lr=1e-3))
    y = torch.arange(k).repeat(2)  # 20 examples, 2 per class
    logits = torch.nn.functional.one_hot(y, k).float() * 5
    # Two examples of class 0 are predicted as class 1, with the truth still in their top 5.
    wrong = torch.tensor([0, 10])
    logits[wrong, 1] = 10.0
    module.test_metrics.update(logits, y)
    m = {k_: float(v) for k_, v in module.test_metrics.compute().items()}
    assert m["test/acc"] == pytest.approx(18 / 20)
    assert m["test/acc_top5"] == 1.0
    # Class 0: precision 1, recall 0 -> F1 0; class 1: precision 2/4, recall 1 -> F1 2/3; others 1.
    assert m["test/f1"] == pytest.approx((0 + 2 / 3 + 8) / 10)
