"""The fine-tuning policy, the same for every backbone.

A network taking part exposes ``head`` (its classifier module) and ``layer_groups()`` (backbone blocks from input to
output). The policy freezes the backbone for the first epochs, then unfreezes it all at once or one block per epoch
from the top, and can keep BatchNorm layers frozen throughout. Frozen parameters stay in the optimizer with
``requires_grad=False``: they get no gradient, so the optimizer leaves them (and their weight decay) untouched, and
their learning rates and schedules are in place the moment they are unfrozen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as L
from torch import nn

log = logging.getLogger(__name__)

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@dataclass
class FineTuningPolicy:
    """How a pretrained backbone is fine-tuned.

    Attributes:
        freeze_backbone_epochs: train only the head for this many epochs, then unfreeze.
        gradual: after the frozen epochs, unfreeze one backbone block per epoch from the top.
        backbone_lr_mult: the backbone's learning rate relative to the head's.
        layer_decay: layer-wise LR decay; 1.0 disables it.
        freeze_bn: keep every BatchNorm layer's statistics and affine parameters fixed (small batches, small data).
        frozen_blocks: keep the first N backbone blocks (counted from the input) frozen for the whole run; for a
            Transformer encoder block 0 is the embeddings, so 1 freezes the embeddings and N + 1 the embeddings
            and the lower N layers.
        head_init: how a pretrained backbone's new head starts (:func:`recipezoo.core.probe.init_head`):
            ``default`` (the library's initialisation), ``zero``, or ``probe`` (the linear probe's solution: LP-FT).
            Networks trained from scratch keep their initialisation whatever this says.
    """

    freeze_backbone_epochs: int = 0
    gradual: bool = False
    backbone_lr_mult: float = 1.0
    layer_decay: float = 1.0
    freeze_bn: bool = False
    frozen_blocks: int = 0
    head_init: str = "default"


def as_policy(finetune: dict[str, Any] | FineTuningPolicy | None) -> FineTuningPolicy:
    """The policy a task's ``finetune`` argument names: a policy, its fields as a dict (the config), or None for
    the defaults (train everything from the first epoch at one learning rate)."""
    return finetune if isinstance(finetune, FineTuningPolicy) else FineTuningPolicy(**(finetune or {}))


def _set_trainable(module: nn.Module, trainable: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(trainable)


class FineTuningCallback(L.Callback):
    """Applies a :class:`FineTuningPolicy` to ``pl_module.net`` at the start of every training epoch."""

    def __init__(self, policy: FineTuningPolicy) -> None:
        self.policy = policy

    def frozen_blocks(self, epoch: int, n_blocks: int) -> int:
        """How many backbone blocks (counted from the input) are frozen during ``epoch``."""
        p = self.policy
        always = min(n_blocks, max(0, p.frozen_blocks))
        if epoch < p.freeze_backbone_epochs:
            return n_blocks
        if p.gradual:
            return max(always, n_blocks - (epoch - p.freeze_backbone_epochs + 1))
        return always

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        blocks = list(net.layer_groups())
        n_frozen = self.frozen_blocks(trainer.current_epoch, len(blocks))
        for i, block in enumerate(blocks):
            frozen = i < n_frozen
            _set_trainable(block, not frozen)
            # Frozen blocks keep their BatchNorm statistics and skip dropout; unfrozen ones train normally again
            # (Lightning does not reset train mode at each epoch).
            block.train(not frozen)
        if self.policy.freeze_bn:
            for m in net.modules():
                if isinstance(m, _BN):
                    m.eval()
                    _set_trainable(m, False)
        if n_frozen and trainer.current_epoch == 0 or n_frozen != getattr(self, "_last", n_frozen):
            log.info("Epoch %d: %d of %d backbone blocks frozen", trainer.current_epoch, n_frozen, len(blocks))
        self._last = n_frozen
