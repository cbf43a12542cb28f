"""The base task (core.task.Task): optimizer groups, the fine-tuning policy, compile, loss logging and the
classification metric set, on a toy task built from the base alone."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as L
import pytest
import torch
import torch.nn.functional as F
import torchmetrics as tm
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from recipezoo.core.finetune import FineTuningCallback, FineTuningPolicy, as_policy
from recipezoo.core.metrics import TrainLoss, classification_metrics
from recipezoo.core.optim import constant, decay_groups
from recipezoo.core.task import Task

ADAMW = partial(torch.optim.AdamW, lr=1e-2, weight_decay=0.1)
K = 3


class Net(nn.Module):
    """Two backbone blocks and a head: what the fine-tuning policy reads."""

    def __init__(self) -> None:
        super().__init__()
        self.block0 = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8))
        self.block1 = nn.Linear(8, 8)
        self.head = nn.Linear(8, K)

    def layer_groups(self) -> list[nn.Module]:
        return [self.block0, self.block1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.block1(torch.relu(self.block0(x)))))


class Toy(Task):
    """A classification task holding only what is its own: forward, loss, eval_step, test epoch end."""

    def __init__(self, net: nn.Module, finetune: dict | None = None, scratch: bool = False, **kwargs) -> None:
        super().__init__(net, ADAMW, policy=None if scratch else as_policy(finetune), **kwargs)
        self.labels = [f"c{i}" for i in range(K)]
        self.train_metrics = classification_metrics(K, "train/", f1=False)
        self.val_metrics = classification_metrics(K, "val/")
        self.test_metrics = classification_metrics(K, "test/")
        self.confusion = tm.ConfusionMatrix(task="multiclass", num_classes=K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(self(batch[0]), batch[1])

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch[0])
        self.train_metrics.update(logits.detach(), batch[1])
        return F.cross_entropy(logits, batch[1])

    def eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(batch[0])
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics.update(logits, batch[1])
        self.log_dict(metrics, batch_size=len(logits))
        if stage == "test":
            self.confusion.update(logits, batch[1])
        return logits

    def on_test_epoch_end(self) -> None:
        self.save_confusion_matrix(self.confusion, self.labels)


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 4, generator=g)
    return DataLoader(TensorDataset(x, x[:, :K].argmax(1)), batch_size=16)


def _trainer(tmp_path: Path, epochs: int = 1, **kwargs) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=CSVLogger(tmp_path, name="", version=""),
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[TrainLoss()], **kwargs,
    )  # fmt: skip


def test_classification_metric_set_names_top_k_and_ignore_index() -> None:
    assert set(classification_metrics(10, "val/", top_k=5).keys(keep_base=False)) == {
        "val/acc", "val/f1", "val/acc_top5",
    }  # fmt: skip
    assert set(classification_metrics(5, "val/", top_k=5).keys(keep_base=False)) == {"val/acc", "val/f1"}
    assert set(classification_metrics(4, f1=False).keys()) == {"acc"}
    words = classification_metrics(3, ignore_index=-1)
    words.update(torch.tensor([0, 1, 2, 0]), torch.tensor([0, 1, -1, 1]))  # the padded word is not scored
    out = words.compute()
    assert float(out["acc"]) == pytest.approx(2 / 3)


def test_decay_groups_spare_biases_norms_embeddings_and_named_parameters() -> None:
    class Tabular(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(5, 4)
            self.token = nn.Parameter(torch.zeros(2, 4))
            self.linear = nn.Linear(4, 4)
            self.norm = nn.LayerNorm(4)
            self.frozen = nn.Linear(4, 4)
            self.frozen.requires_grad_(False)

        def no_weight_decay(self) -> set[str]:
            return {"token"}

    net = Tabular()
    decay, no_decay = decay_groups(net)
    assert decay["params"] == [net.linear.weight] and "weight_decay" not in decay
    assert {id(p) for p in no_decay["params"]} == {
        id(p) for p in (net.emb.weight, net.token, net.linear.bias, net.norm.weight, net.norm.bias)
    }
    assert no_decay["weight_decay"] == 0.0


def test_scratch_task_gets_one_weight_decay_split_and_no_fine_tuning_callback() -> None:
    module = Toy(Net(), scratch=True)
    assert module.policy is None and module.configure_callbacks() == []
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(module.net.parameters()))


def test_fine_tuned_task_gets_per_block_rates_and_its_schedule() -> None:
    module = Toy(Net(), finetune={"backbone_lr_mult": 0.5, "layer_decay": 0.5})
    (callback,) = module.configure_callbacks()
    assert isinstance(callback, FineTuningCallback) and callback.policy is module.policy
    module.scheduler_factory = partial(constant, warmup_steps=4)
    module._trainer = SimpleNamespace(estimated_stepping_batches=8)  # what the schedule's length is read from
    out = module.configure_optimizers()
    assert out["lr_scheduler"]["interval"] == "step"
    assert out["lr_scheduler"]["scheduler"].get_last_lr()[0] == pytest.approx(1e-2 / 4)  # warming up
    rates = {g["name"]: g["initial_lr"] for g in out["optimizer"].param_groups}
    assert rates["head"] == rates["head_no_decay"] == 1e-2
    assert rates["backbone.1"] == pytest.approx(1e-2 * 0.5 * 0.5)
    assert rates["backbone.0"] == pytest.approx(1e-2 * 0.5 * 0.25)


def test_frozen_backbone_trains_only_the_head(tmp_path: Path) -> None:
    module = Toy(Net(), finetune=FineTuningPolicy(freeze_backbone_epochs=1))
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    _trainer(tmp_path).fit(module, _loader())
    after = module.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("block"))
    assert not torch.equal(before["head.weight"], after["head.weight"])


def test_toy_task_trains_logs_and_keeps_only_its_network_in_the_state_dict(tmp_path: Path) -> None:
    module = Toy(Net())
    trainer = _trainer(tmp_path)
    trainer.fit(module, _loader(), _loader())
    logged = set(trainer.logged_metrics)
    assert {"train/loss_epoch", "train/acc", "val/acc", "val/f1"} <= logged
    assert "train/loss" not in logged  # the task returns its loss; TrainLoss alone logs it
    assert set(trainer.test(module, _loader(), verbose=False)[0]) == {"test/acc", "test/f1"}
    assert sum(map(sum, module.test_confusion_matrix)) == 48
    assert (tmp_path / "test_confusion_matrix.csv").read_text().startswith("true\\predicted,c0,c1,c2")
    assert set(module.state_dict()) == {f"net.{k}" for k in module.net.state_dict()}
    assert module.files == {} and dict(module.hparams) == {}


def test_compile_wraps_the_network_off_the_module_tree() -> None:
    plain = Toy(Net())
    plain.setup("fit")
    assert plain.network is plain.net
    module = Toy(Net(), compile=True)
    module.setup("validate")
    assert module.network is module.net  # only fitting compiles
    module.setup("fit")
    assert module.network is not module.net
    assert set(module.state_dict()) == {f"net.{k}" for k in module.net.state_dict()}


def test_base_asks_for_what_a_task_must_define() -> None:
    with pytest.raises(NotImplementedError, match="defines no loss"):
        Task(Net(), ADAMW).loss((torch.zeros(1, 4), torch.zeros(1)))
    with pytest.raises(NotImplementedError, match="defines no eval_step"):
        Task(Net(), ADAMW).validation_step((torch.zeros(1, 4), torch.zeros(1)), 0)
