"""What recipezoo adds to Lightning checkpoints, and loading a trained model back from one.

Every checkpoint carries, under the ``recipezoo`` key, the run's resolved config and ``data_info`` (label names,
preprocessing, anything the data fitted). That is enough to rebuild the model with no data and no network, and to
reproduce training-time preprocessing at predict and export time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from omegaconf import DictConfig, OmegaConf

from recipezoo.core.errors import CheckpointError

KEY = "recipezoo"


class ConfigInCheckpoint(L.Callback):
    """Stores the resolved run config (with ``data_info``) in every checkpoint."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        from recipezoo import __version__

        checkpoint[KEY] = {"config": self.config, "version": __version__}


def read(path: str | os.PathLike, weights_only: bool = True) -> dict[str, Any]:
    """Read a recipezoo checkpoint, with a clear error when it is missing or not one of ours."""
    p = Path(os.path.expanduser(str(path)))
    if not p.is_file():
        hint = ""
        if p.parent.is_dir():
            found = sorted(x.name for x in p.parent.glob("*.ckpt"))
            hint = f" Checkpoints in {p.parent}: {', '.join(found)}." if found else ""
        raise CheckpointError(f"checkpoint not found: {p}.{hint}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=weights_only)
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {p}: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(ckpt, dict) or KEY not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(
            f"{p} is not a recipezoo checkpoint (no '{KEY}' config inside); pass a .ckpt written by train.py."
        )
    return ckpt


def _no_pretrained(node: Any) -> None:
    # Weights come from the checkpoint: never download or read the original pretrained weights again.
    if isinstance(node, DictConfig):
        for k in node:
            if k == "pretrained":
                node[k] = False
            else:
                _no_pretrained(node[k])


def config_of(ckpt: dict[str, Any]) -> DictConfig:
    """The resolved config a checkpoint was trained with."""
    return OmegaConf.create(ckpt[KEY]["config"])


def load_module(path: str | os.PathLike, weights_only: bool = True) -> tuple[L.LightningModule, DictConfig]:
    """Rebuild the trained LightningModule from a checkpoint (eval mode, CPU) and return it with its config."""
    from hydra.utils import instantiate

    ckpt = read(path, weights_only)
    cfg = config_of(ckpt)
    model_cfg = cfg.model.copy()
    _no_pretrained(model_cfg)
    module = instantiate(model_cfg, _convert_="all")
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    return module, cfg
