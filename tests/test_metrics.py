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
    # A first batch predicted perfectly: top-1 and top-5 states are then identical, which is what made torchmetrics'
    # compute groups merge them (and report F1 = 1.0 beside 90% accuracy).
    module.test_metrics.update(torch.nn.functional.one_hot(y[:k], k).float() * 5, y[:k])
    module.test_metrics.update(logits, y)
    m = {k_: float(v) for k_, v in module.test_metrics.compute().items()}
    assert m["test/acc"] == pytest.approx(28 / 30)
    assert m["test/acc_top5"] == 1.0
    # Over the 30 examples: class 0 has precision 1, recall 1/3 -> F1 1/2; class 1 precision 3/5, recall 1 -> F1 3/4.
    assert m["test/f1"] == pytest.approx((1 / 2 + 3 / 4 + 8) / 10)
