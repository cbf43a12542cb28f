"""``model.compile=true``: torch.compile a task's network for training, the same way in every domain."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def compile_network(module: Any, enabled: bool, stage: str | None) -> None:
    """Compile ``module.net`` when fitting starts; the compiled wrapper is kept off the module tree, so
    checkpoints, exports and ``load_state_dict`` keep the plain network's keys."""
    if enabled and stage == "fit" and "_compiled" not in module.__dict__:
        object.__setattr__(module, "_compiled", torch.compile(module.net))


def network(module: Any) -> nn.Module:
    """What a task's forward calls: the compiled network when there is one, else the network itself."""
    return module.__dict__.get("_compiled", module.net)
