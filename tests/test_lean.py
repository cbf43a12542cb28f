"""The cheaper per-step bookkeeping (core.lean) changes nothing Lightning does with it."""

from __future__ import annotations

import lightning.pytorch as L
import torch
from lightning.pytorch.profilers import SimpleProfiler
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from recipezoo.core.lean import LeanHookName, NullProfiler, trainer_extras


class _Logged(LeanHookName, L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 2)
        self.hooks: list[str] = []

    def training_step(self, batch, batch_idx):
        self.hooks.append(self._current_fx_name)
        loss = torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("train/epoch_marker", float(self.current_epoch + 1))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(module: L.LightningModule, **kwargs) -> L.Trainer:
    data = TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, **kwargs,
    )  # fmt: skip
    trainer.fit(module, DataLoader(data, batch_size=8))
    return trainer


def test_hook_names_and_logging_work_as_usual() -> None:
    module = _Logged()
    before = module.net.weight.detach().clone()
    trainer = _fit(module, profiler=NullProfiler())
    assert module.hooks == ["training_step"] * 8
    assert module._current_fx_name is None  # restored after the loop
    assert "_current_fx_name" not in module._modules and "_current_fx_name" not in module._parameters
    assert trainer.callback_metrics["train/epoch_marker"] == 2.0 and "train/loss_epoch" in trainer.callback_metrics
    assert not torch.equal(before, module.net.weight)


def test_modules_and_parameters_still_register() -> None:
    module = _Logged()
    module.extra = torch.nn.Linear(2, 2)
    module.scale = torch.nn.Parameter(torch.ones(1))
    assert "extra" in module._modules and "scale" in module._parameters


def test_null_profiler_is_the_default_and_a_chosen_profiler_wins() -> None:
    assert isinstance(trainer_extras(OmegaConf.create({"max_epochs": 1}))["profiler"], NullProfiler)
    assert trainer_extras(OmegaConf.create({"profiler": "simple"})) == {}
    with NullProfiler().profile("a"), NullProfiler().profile("b"):  # reusable and nestable
        pass
    trainer = _fit(_Logged(), profiler="simple")
    assert isinstance(trainer.profiler, SimpleProfiler)


def test_every_task_uses_the_lean_hook_name() -> None:
    from recipezoo.fraud.task import FraudDetector
    from recipezoo.nlp.task import TextClassifier, TokenClassifier
    from recipezoo.recsys.task import Recommender
    from recipezoo.speech.task import AudioClassifier, SpeechRecognizer
    from recipezoo.vision.task import ImageClassifier

    for task in (FraudDetector, TextClassifier, TokenClassifier, Recommender, AudioClassifier, SpeechRecognizer,
                 ImageClassifier):  # fmt: skip
        assert issubclass(task, LeanHookName), task.__name__


def _redraws(max_epochs: int, max_steps: int, batches: int = 40) -> tuple[int, int]:
    """Steps and redraws of the throttled bar (an hour's interval: only the forced redraws happen)."""
    from recipezoo.core.progress import ProgressBar

    class Counting(ProgressBar):
        redraws = 0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            before = self._last
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            Counting.redraws += self._last != before

    data = TensorDataset(torch.randn(batches * 2, 4), torch.randint(0, 2, (batches * 2,)))
    trainer = L.Trainer(
        max_epochs=max_epochs, max_steps=max_steps, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_model_summary=False, callbacks=[Counting(interval=3600)],
    )  # fmt: skip
    trainer.fit(_Logged(), DataLoader(data, batch_size=2))
    return trainer.global_step, Counting.redraws


def test_throttled_bar_redraws_at_epoch_ends_only() -> None:
    # The first batch (nothing drawn yet) and each epoch's last batch; with max_steps and no max_epochs Lightning's
    # total_train_batches counts the steps remaining, which must not make the second half redraw every batch.
    assert _redraws(max_epochs=2, max_steps=-1) == (80, 3)
    assert _redraws(max_epochs=-1, max_steps=30) == (30, 2)
