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


def test_train_loss_logs_every_n_steps_and_the_weighted_epoch_mean(tmp_path) -> None:
    import csv

    import lightning.pytorch as L
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset

    from recipezoo.core.metrics import TrainLoss

    class Constant(L.LightningModule):
        """Loss = the mean of the batch's targets, with no learning (lr 0): the logged values are known."""

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, batch_idx):
            (y,) = batch
            return y.mean() + 0 * self.w.sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    y = torch.arange(10, dtype=torch.float32)  # batches of 4, 4, 2: means 1.5, 5.5, 8.5
    trainer = L.Trainer(
        max_epochs=1, log_every_n_steps=2, logger=CSVLogger(tmp_path, name="", version=""), callbacks=[TrainLoss()],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(Constant(), DataLoader(TensorDataset(y), batch_size=4))
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    steps = {int(r["step"]): float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")}
    assert steps == {1: 5.5}  # the second step only (every 2 steps), not each step
    (epoch,) = [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]
    assert epoch == pytest.approx(4.5)  # (1.5 * 4 + 5.5 * 4 + 8.5 * 2) / 10: weighted by batch size
