"""The fine-tuning policy (freeze, gradual unfreeze, frozen BatchNorm) in real Lightning runs, parameter
groups and learning-rate schedules."""

from __future__ import annotations

import functools
import math
from typing import Any

import lightning.pytorch as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from recipezoo.core.finetune import FineTuningCallback, FineTuningPolicy
from recipezoo.core.optim import constant, cosine, linear, one_cycle, param_groups
from recipezoo.vision.models import create_model
from recipezoo.vision.task import ImageClassifier

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def make_module(finetune: dict[str, Any] | None = None, seed: int = 0, **kwargs: Any) -> ImageClassifier:
    torch.manual_seed(seed)
    net = create_model("convnet_tiny", 3, in_chans=3)
    return ImageClassifier(
        net, 3, functools.partial(torch.optim.AdamW, lr=1e-2), finetune=finetune, channels_last=False, **kwargs
    )


def loader(seed: int = 0, n: int = 16) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 16, 16, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=8)


def fit(
    module: ImageClassifier,
    max_epochs: int,
    callbacks: list[L.Callback] | None = None,
    val: bool = False,
    **trainer_kwargs: Any,
) -> L.Trainer:
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks or [],
        num_sanity_val_steps=0,
        **trainer_kwargs,
    )
    trainer.fit(module, loader(), loader(seed=1, n=8) if val else None)
    return trainer


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: nn.Module) -> dict[str, bool]:
    return {k: not torch.equal(v, before[k]) for k, v in module.state_dict().items()}


class Recorder(L.Callback):
    """Records, at the first batch of every epoch, which blocks train and which are in train mode; snapshots
    the network at the end of every epoch."""

    def __init__(self) -> None:
        self.trainable: dict[int, list[bool]] = {}
        self.training: dict[int, list[bool]] = {}
        self.bn_training: dict[int, list[bool]] = {}
        self.end_of_epoch: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            blocks = pl_module.net.layer_groups()
            e = trainer.current_epoch
            self.trainable[e] = [all(p.requires_grad for p in b.parameters()) for b in blocks]
            self.training[e] = [b.training for b in blocks]
            self.bn_training[e] = [m.training for m in pl_module.net.modules() if isinstance(m, _BN)]

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.end_of_epoch[trainer.current_epoch] = snapshot(pl_module.net)


def _is_head(key: str) -> bool:
    return key.startswith("model.fc.")


# ------------------------------------------------------------------------------------------------------------
# (a) freeze, then unfreeze


def test_frozen_backbone_epoch_trains_only_the_head() -> None:
    module = make_module({"freeze_backbone_epochs": 1})
    before = snapshot(module.net)
    rec = Recorder()
    fit(module, max_epochs=1, callbacks=[rec])
    diff = changed(before, module.net)
    backbone = {k: d for k, d in diff.items() if not _is_head(k)}
    # parameters and BatchNorm statistics alike
    assert backbone and not any(backbone.values()), [k for k, d in backbone.items() if d]
    assert diff["model.fc.weight"] and diff["model.fc.bias"]
    assert rec.trainable[0] == [False, False]
    assert all(p.requires_grad for p in module.net.head.parameters())


def test_backbone_trains_once_unfrozen() -> None:
    module = make_module({"freeze_backbone_epochs": 1})
    rec = Recorder()
    fit(module, max_epochs=2, callbacks=[rec])
    assert rec.trainable == {0: [False, False], 1: [True, True]}
    after_epoch0 = rec.end_of_epoch[0]
    diff = changed(after_epoch0, module.net)
    weights = [k for k in diff if k.endswith(".weight") and not _is_head(k)]
    assert weights and all(diff[k] for k in weights), {k: diff[k] for k in weights}
    assert diff["model.fc.weight"]


def test_unfrozen_blocks_return_to_train_mode() -> None:
    """Blocks frozen (and put in eval mode) in the first epochs must train normally once unfrozen: BatchNorm
    back in train mode, its running statistics updated from the data again."""
    module = make_module({"freeze_backbone_epochs": 1})
    rec = Recorder()
    fit(module, max_epochs=2, callbacks=[rec])
    assert rec.training[0] == [False, False]  # frozen blocks keep their statistics
    assert rec.training[1] == [True, True], "unfrozen blocks are still in eval mode"
    assert all(rec.bn_training[1])
    diff = changed(rec.end_of_epoch[0], module.net)
    stats = [k for k in diff if k.endswith("running_mean")]
    assert stats and all(diff[k] for k in stats), "BatchNorm statistics did not update after unfreezing"


def test_no_policy_trains_everything_from_the_first_epoch() -> None:
    module = make_module(None)
    before = snapshot(module.net)
    rec = Recorder()
    fit(module, max_epochs=1, callbacks=[rec])
    assert rec.trainable[0] == [True, True] and rec.training[0] == [True, True]
    assert all(
        changed(before, module.net)[k] for k in before if not k.endswith("num_batches_tracked") and "running" not in k
    )


# ------------------------------------------------------------------------------------------------------------
# (b) gradual unfreezing


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (FineTuningPolicy(), [0, 0, 0, 0, 0]),
        (FineTuningPolicy(freeze_backbone_epochs=2), [3, 3, 0, 0, 0]),
        (FineTuningPolicy(freeze_backbone_epochs=1, gradual=True), [3, 2, 1, 0, 0]),
        (FineTuningPolicy(freeze_backbone_epochs=2, gradual=True), [3, 3, 2, 1, 0]),
        (FineTuningPolicy(freeze_backbone_epochs=0, gradual=True), [2, 1, 0, 0, 0]),
        # frozen_blocks: the lowest blocks stay frozen all run, whatever the rest of the schedule does.
        (FineTuningPolicy(frozen_blocks=1), [1, 1, 1, 1, 1]),
        (FineTuningPolicy(frozen_blocks=2, freeze_backbone_epochs=1), [3, 2, 2, 2, 2]),
        (FineTuningPolicy(frozen_blocks=1, freeze_backbone_epochs=0, gradual=True), [2, 1, 1, 1, 1]),
        (FineTuningPolicy(frozen_blocks=9), [3, 3, 3, 3, 3]),
    ],
)
def test_frozen_blocks_schedule(policy: FineTuningPolicy, expected: list[int]) -> None:
    cb = FineTuningCallback(policy)
    assert [cb.frozen_blocks(epoch, 3) for epoch in range(5)] == expected


def test_gradual_unfreezing_goes_from_the_top_in_a_real_run() -> None:
    """Two blocks: epoch 0 all frozen, epoch 1 the top block trains, epoch 2 both; frozen blocks stay put."""
    module = make_module({"freeze_backbone_epochs": 1, "gradual": True})
    before = snapshot(module.net)
    rec = Recorder()
    fit(module, max_epochs=3, callbacks=[rec])
    assert rec.trainable == {0: [False, False], 1: [False, True], 2: [True, True]}
    e0, e1 = rec.end_of_epoch[0], rec.end_of_epoch[1]
    stage0 = [k for k in before if k.startswith("model.features.0.")]
    stage1 = [k for k in before if k.startswith("model.features.1.")]
    assert all(torch.equal(e0[k], before[k]) for k in stage0 + stage1)
    assert all(torch.equal(e1[k], e0[k]) for k in stage0)  # bottom block still frozen in epoch 1
    assert torch.equal(e1["model.features.1.0.weight"], e0["model.features.1.0.weight"]) is False
    assert not torch.equal(rec.end_of_epoch[2]["model.features.0.0.weight"], e1["model.features.0.0.weight"])


# ------------------------------------------------------------------------------------------------------------
# (c) frozen BatchNorm


def test_freeze_bn_keeps_statistics_and_affine_parameters() -> None:
    module = make_module({"freeze_bn": True})
    before = snapshot(module.net)
    rec = Recorder()
    # Validation in the middle of the epoch must not put BatchNorm back in train mode.
    fit(module, max_epochs=1, callbacks=[rec], val=True, val_check_interval=1)
    bn_keys = [f"{name}.{k}" for name, m in module.net.named_modules() if isinstance(m, _BN) for k in m.state_dict()]
    assert len(bn_keys) == 2 * 5  # weight, bias, running_mean, running_var, num_batches_tracked
    diff = changed(before, module.net)
    assert not any(diff[k] for k in bn_keys), [k for k in bn_keys if diff[k]]
    assert rec.bn_training[0] and not any(rec.bn_training[0])
    convs = [k for k in diff if k.endswith("0.weight") and "features" in k]
    assert convs and all(diff[k] for k in convs)  # the rest of the backbone trains
    bn_params = [p for m in module.net.modules() if isinstance(m, _BN) for p in m.parameters()]
    assert bn_params and not any(p.requires_grad for p in bn_params)


# ------------------------------------------------------------------------------------------------------------
# (d) parameter groups


class TinyNet(nn.Module):
    """Three blocks and a head; the head shares (ties) a parameter with the top block."""

    def __init__(self) -> None:
        super().__init__()
        self.b0 = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
        self.b1 = nn.Sequential(nn.Conv2d(4, 4, 3), nn.LayerNorm(4))
        self.b2 = nn.Linear(4, 4)
        self.head = nn.Linear(4, 4)
        self.b2.weight = self.head.weight  # tied


def test_param_groups_learning_rates_and_weight_decay() -> None:
    net = TinyNet()
    groups = param_groups(
        net.head, [net.b0, net.b1, net.b2], lr=0.1, weight_decay=0.05, backbone_lr_mult=0.5, layer_decay=0.8
    )
    by_name = {g["name"]: g for g in groups}
    expected_lr = {
        "head": 0.1,
        "head_no_decay": 0.1,
        # b2 owns only its bias (its weight is the head's): no decayed group.
        "backbone.2_no_decay": 0.1 * 0.5 * 0.8,
        "backbone.1": 0.1 * 0.5 * 0.8**2,
        "backbone.1_no_decay": 0.1 * 0.5 * 0.8**2,
        "backbone.0": 0.1 * 0.5 * 0.8**3,
        "backbone.0_no_decay": 0.1 * 0.5 * 0.8**3,
    }
    assert set(by_name) == set(expected_lr)
    for name, lr in expected_lr.items():
        assert by_name[name]["lr"] == pytest.approx(lr), name
    assert by_name["head"]["params"] == [net.head.weight]
    assert by_name["head_no_decay"]["params"] == [net.head.bias]
    assert by_name["backbone.2_no_decay"]["params"] == [net.b2.bias]
    assert by_name["backbone.0"]["params"] == [net.b0[0].weight]
    assert by_name["backbone.0_no_decay"]["params"] == [net.b0[0].bias, net.b0[1].weight, net.b0[1].bias]
    assert by_name["backbone.1_no_decay"]["params"] == [net.b1[0].bias, net.b1[1].weight, net.b1[1].bias]
    for g in groups:
        assert g["weight_decay"] == (0.0 if g["name"].endswith("_no_decay") else 0.05)
        assert all((p.ndim <= 1) == g["name"].endswith("_no_decay") for p in g["params"])
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in net.parameters()}
    torch.optim.AdamW(groups)  # torch accepts them (it too refuses a parameter in two groups)


def test_param_groups_defaults_give_one_learning_rate() -> None:
    net = TinyNet()
    groups = param_groups(net.head, [net.b0, net.b1, net.b2], lr=3e-4, weight_decay=0.0)
    assert {g["lr"] for g in groups} == {3e-4}


def test_image_classifier_optimizer_covers_every_parameter_once() -> None:
    module = make_module({"backbone_lr_mult": 0.1, "layer_decay": 0.5})
    opt = module.configure_optimizers()
    assert isinstance(opt, torch.optim.AdamW)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["head"] == pytest.approx(1e-2)
    assert lrs["backbone.1"] == pytest.approx(1e-2 * 0.1 * 0.5)
    assert lrs["backbone.0"] == pytest.approx(1e-2 * 0.1 * 0.25)
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(module.net.parameters()))
    wd = {g["name"]: g["weight_decay"] for g in opt.param_groups}
    assert wd["head"] == pytest.approx(0.01)  # AdamW's default weight decay, read from the partial
    assert all(v == 0.0 for k, v in wd.items() if k.endswith("_no_decay"))


# ------------------------------------------------------------------------------------------------------------
# (e) schedules


def lr_trace(make_scheduler, total_steps: int, lrs: tuple[float, ...] = (1.0,), **kwargs: Any) -> list[list[float]]:
    """The learning rate of every group at steps 0..total_steps (stepped after every optimizer step)."""
    params = [nn.Parameter(torch.zeros(1)) for _ in lrs]
    opt = torch.optim.AdamW([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)])
    sched = make_scheduler(opt, total_steps, **kwargs)
    trace = [[g["lr"] for g in opt.param_groups]]
    for _ in range(total_steps):
        opt.step()
        sched.step()
        trace.append([g["lr"] for g in opt.param_groups])
    return trace


def test_cosine_with_warmup() -> None:
    trace = [t[0] for t in lr_trace(cosine, 100, warmup_steps=10, min_lr_ratio=0.1)]
    assert trace[0] == pytest.approx(0.1)  # (0 + 1) / 10
    assert trace[4] == pytest.approx(0.5)
    assert trace[9] == pytest.approx(1.0)  # last warmup step
    assert trace[10] == pytest.approx(1.0)  # start of the decay
    assert max(trace) == pytest.approx(1.0)
    assert trace[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert trace[100] == pytest.approx(0.1)  # the end: min_lr_ratio x lr
    assert all(a >= b - 1e-12 for a, b in zip(trace[10:], trace[11:]))  # monotone decay


def test_cosine_warmup_fraction_and_per_group_scaling() -> None:
    trace = lr_trace(cosine, 40, lrs=(1.0, 0.1), warmup_fraction=0.1)  # 4 warmup steps
    assert trace[0] == pytest.approx([0.25, 0.025])
    assert trace[3] == pytest.approx([1.0, 0.1])
    assert trace[40] == pytest.approx([0.0, 0.0], abs=1e-12)


def test_linear_and_constant() -> None:
    lin = [t[0] for t in lr_trace(linear, 20, warmup_steps=4, min_lr_ratio=0.0)]
    assert lin[0] == pytest.approx(0.25) and lin[3] == pytest.approx(1.0)
    assert lin[12] == pytest.approx(0.5) and lin[20] == pytest.approx(0.0)
    const = [t[0] for t in lr_trace(constant, 20, warmup_steps=2)]
    assert const[0] == pytest.approx(0.5) and all(v == pytest.approx(1.0) for v in const[1:])


def test_one_cycle_peaks_at_the_configured_lr() -> None:
    trace = lr_trace(one_cycle, 100, lrs=(2.0, 0.2), pct_start=0.25, div_factor=25.0)
    first = [t[0] for t in trace[:100]]
    assert trace[0] == pytest.approx([2.0 / 25, 0.2 / 25])
    assert max(first) == pytest.approx(2.0)
    assert max(t[1] for t in trace[:100]) == pytest.approx(0.2)
    assert first.index(max(first)) == 24  # pct_start * total_steps - 1
    assert first[99] < 2.0 / 25  # annealed below the start


def test_adamw_is_fused_on_cpu_and_matches_the_unfused_update() -> None:
    from recipezoo.core.optim import adamw

    torch.manual_seed(0)
    a = [nn.Parameter(torch.randn(16, 16)) for _ in range(3)]
    b = [nn.Parameter(p.detach().clone()) for p in a]
    groups = lambda ps: [{"params": ps[:2], "lr": 1e-2}, {"params": ps[2:], "lr": 1e-3, "weight_decay": 0.0}]  # noqa: E731
    fused = adamw(groups(a), lr=1e-3, weight_decay=0.1)
    plain = torch.optim.AdamW(groups(b), lr=1e-3, weight_decay=0.1)
    assert fused.defaults["fused"] is True and not plain.defaults["fused"]
    for _ in range(5):
        for x, y in zip(a, b):
            g = torch.randn_like(x)
            x.grad, y.grad = g.clone(), g.clone()
        fused.step()
        plain.step()
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    assert adamw(groups(a), fused=False).defaults["fused"] is None
