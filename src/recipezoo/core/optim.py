"""Optimizer parameter groups and learning-rate schedules.

Optimizers are configured as ``_partial_`` Hydra nodes (``torch.optim.AdamW`` with its lr and weight decay) and
receive the parameter groups built here. Schedules are functions of ``(optimizer, total_steps)`` that step every
optimizer step, so one config works whatever the dataset size or epoch count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR


def adamw(
    params: Any,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    fused: bool | str | None = "auto",
) -> torch.optim.AdamW:
    """``torch.optim.AdamW``, fused by default where torch has the fused kernel (CPU and CUDA).

    The fused update is one kernel over every tensor instead of a Python loop over them: measured on the 2-core CPU
    for a 22M-parameter encoder, 96 ms per step instead of 313 ms (the for-loop) or 475 ms (foreach), with the
    same result to 6e-8 (docs/performance.md). ``auto`` falls back to torch's default on other devices (MPS, XLA).
    """
    params = list(params)
    if fused == "auto":
        tensors = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
        fused = bool(tensors) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in tensors)
    return torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=bool(fused) or None)


def _split_decay(params: Sequence[tuple[str, nn.Parameter]]) -> tuple[list, list]:
    # Biases and normalisation weights (1-d tensors) are not decayed: decaying them only hurts.
    decay = [p for _, p in params if p.ndim > 1]
    no_decay = [p for _, p in params if p.ndim <= 1]
    return decay, no_decay


def param_groups(
    head: nn.Module,
    layer_groups: Sequence[nn.Module],
    lr: float,
    weight_decay: float,
    backbone_lr_mult: float = 1.0,
    layer_decay: float = 1.0,
) -> list[dict]:
    """Parameter groups with per-layer learning rates.

    Args:
        head: the classifier head; trained at ``lr``.
        layer_groups: backbone blocks ordered from input to output.
        lr: base learning rate.
        weight_decay: applied to weight matrices only, not biases or norm parameters.
        backbone_lr_mult: multiplies the learning rate of every backbone block.
        layer_decay: layer-wise LR decay; the block ``d`` steps below the head gets ``lr * mult * layer_decay**d``.
    """
    groups: list[dict] = []
    seen: set[int] = set()

    def add(named: list[tuple[str, nn.Parameter]], group_lr: float, name: str) -> None:
        named = [(n, p) for n, p in named if id(p) not in seen]
        seen.update(id(p) for _, p in named)
        decay, no_decay = _split_decay(named)
        for params, wd, suffix in ((decay, weight_decay, ""), (no_decay, 0.0, "_no_decay")):
            if params:
                groups.append({"params": params, "lr": group_lr, "weight_decay": wd, "name": name + suffix})

    add(list(head.named_parameters()), lr, "head")
    depth = len(layer_groups)
    for i, block in enumerate(reversed(layer_groups), start=1):
        add(list(block.named_parameters()), lr * backbone_lr_mult * layer_decay**i, f"backbone.{depth - i}")
    return groups


def decay_groups(net: nn.Module) -> list[dict]:
    """Parameter groups for a network trained from scratch: weight decay on weight matrices only.

    Biases, norms and embedding tables are not decayed (an embedding's rows are regularised by what uses them, and
    decay would shrink the rows of rare ids most), nor the parameters the network names in ``no_weight_decay()``.
    Frozen parameters are left out. The decayed group takes the optimizer's own weight decay.
    """
    skip = set(getattr(net, "no_weight_decay", set)())
    embeddings = {id(m.weight) for m in net.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name in skip or id(p) in embeddings else decay).append(p)
    return [g for g in ({"params": decay}, {"params": no_decay, "weight_decay": 0.0}) if g["params"]]


def with_schedule(
    optimizer: torch.optim.Optimizer,
    scheduler_factory: Callable[..., LRScheduler] | None,
    total_steps: int | Callable[[], int],
) -> torch.optim.Optimizer | dict:
    """What ``configure_optimizers`` returns: the optimizer alone, or with its schedule stepped every optimizer step.

    ``total_steps`` may be a function, called only when there is a scheduler
    (``lambda: trainer.estimated_stepping_batches``).
    """
    if not scheduler_factory:  # None, or {} from scheduler=none
        return optimizer
    scheduler = scheduler_factory(optimizer, total_steps=int(total_steps() if callable(total_steps) else total_steps))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def configure(
    net: nn.Module,
    optimizer_factory: Callable[..., torch.optim.Optimizer],
    scheduler_factory: Callable[..., LRScheduler] | None,
    total_steps: int | Callable[[], int],
    backbone_lr_mult: float = 1.0,
    layer_decay: float = 1.0,
) -> torch.optim.Optimizer | dict:
    """What a LightningModule's ``configure_optimizers`` returns for a network with ``head`` and ``layer_groups()``.

    The partial optimizer carries the base learning rate and weight decay; :func:`param_groups` gives per-block
    learning rates. Parameters outside the head and the blocks (a ViT's cls token, a final norm) train at the
    backbone rate. The scheduler, if any, steps every optimizer step (see :func:`with_schedule`).
    """
    probe = optimizer_factory(params=[nn.Parameter(torch.zeros(1))])
    lr, wd = probe.defaults["lr"], probe.defaults.get("weight_decay", 0.0)
    groups = param_groups(net.head, net.layer_groups(), lr, wd, backbone_lr_mult, layer_decay)
    grouped = {id(p) for g in groups for p in g["params"]}
    rest = [p for p in net.parameters() if id(p) not in grouped]
    if rest:
        groups.append({"params": rest, "lr": lr * backbone_lr_mult, "weight_decay": 0.0, "name": "backbone.other"})
    return with_schedule(optimizer_factory(params=groups), scheduler_factory, total_steps)


def configure_module(module: Any) -> torch.optim.Optimizer | dict:
    """``configure_optimizers`` of a LightningModule holding ``net``, ``optimizer_factory``, ``scheduler_factory``
    and ``policy`` (every :class:`recipezoo.core.task.Task`).

    With a fine-tuning policy the network exposes ``head`` and ``layer_groups()`` and gets per-block learning rates
    (:func:`configure`); without one (``policy`` None: a network trained from scratch) it gets one weight-decay
    split (:func:`decay_groups`).
    """
    total_steps = lambda: module.trainer.estimated_stepping_batches  # noqa: E731  (read only with a scheduler)
    policy = getattr(module, "policy", None)
    if policy is None:
        optimizer = module.optimizer_factory(params=decay_groups(module.net))
        return with_schedule(optimizer, module.scheduler_factory, total_steps)
    return configure(
        module.net,
        module.optimizer_factory,
        module.scheduler_factory,
        total_steps,
        policy.backbone_lr_mult,
        policy.layer_decay,
    )


def _warmup_then(fn: Callable[[float], float], warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return fn(min(1.0, progress))

    return factor


def _warmup_steps(total_steps: int, warmup_steps: int | None, warmup_fraction: float) -> int:
    return warmup_steps if warmup_steps is not None else int(round(warmup_fraction * total_steps))


def cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int | None = None,
    warmup_fraction: float = 0.0,
    min_lr_ratio: float = 0.0,
) -> LRScheduler:
    """Linear warmup, then cosine decay to ``min_lr_ratio`` times each group's learning rate."""
    warm = _warmup_steps(total_steps, warmup_steps, warmup_fraction)
    return LambdaLR(
        optimizer,
        _warmup_then(
            lambda t: min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)), warm, total_steps
        ),
    )


def linear(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int | None = None,
    warmup_fraction: float = 0.1,
    min_lr_ratio: float = 0.0,
) -> LRScheduler:
    """Linear warmup, then linear decay (the usual transformer fine-tuning schedule)."""
    warm = _warmup_steps(total_steps, warmup_steps, warmup_fraction)
    return LambdaLR(optimizer, _warmup_then(lambda t: 1 - (1 - min_lr_ratio) * t, warm, total_steps))


def constant(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int | None = None, warmup_fraction: float = 0.0
) -> LRScheduler:
    """Linear warmup, then a constant learning rate."""
    warm = _warmup_steps(total_steps, warmup_steps, warmup_fraction)
    return LambdaLR(optimizer, _warmup_then(lambda t: 1.0, warm, total_steps))


def one_cycle(
    optimizer: torch.optim.Optimizer, total_steps: int, pct_start: float = 0.25, div_factor: float = 25.0
) -> LRScheduler:
    """torch's OneCycleLR peaking at each group's configured learning rate."""
    max_lr = [g["lr"] for g in optimizer.param_groups]
    return OneCycleLR(
        optimizer, max_lr=max_lr, total_steps=max(1, total_steps), pct_start=pct_start, div_factor=div_factor
    )
