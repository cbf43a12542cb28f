"""What recipezoo adds to Lightning checkpoints, and loading a trained model back from one.

Every checkpoint carries, under the ``recipezoo`` key, the run's resolved config and ``data_info`` (label names,
preprocessing, anything the data fitted). That is enough to rebuild the model with no data and no network, and to
reproduce training-time preprocessing at predict and export time.

What the data fitted that is too large for a config (a tokenizer's vocabulary, an id map of 10^5 items) travels as
``files``: a DataModule exposing ``files`` (``{file name: text}``) has them stored in every checkpoint; evaluate and
resume hand them back through ``datamodule.restore({**data_info, "files": ...})``, and export writes them into the
bundle next to the model.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from recipezoo.core.errors import CheckpointError
from recipezoo.core.pretrained import describe_unreadable

KEY = "recipezoo"


class ConfigInCheckpoint(L.Callback):
    """Stores the resolved run config (with ``data_info``) and the data's ``files`` in every checkpoint."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        from recipezoo import __version__

        checkpoint[KEY] = {"config": self.config, "version": __version__}
        files = getattr(getattr(trainer, "datamodule", None), "files", None)
        if files:
            checkpoint[KEY]["files"] = {str(k): v for k, v in files.items()}


FIX = "Pass the best.ckpt or last.ckpt of a finished run (in its checkpoints/ folder)."
# Files export.py writes: a bundle's model, never a checkpoint.
EXPORTED_SUFFIXES = (".onnx", ".pt", ".pt2")


def read(path: str | os.PathLike, weights_only: bool = True) -> dict[str, Any]:
    """Read a recipezoo checkpoint, with a clear error when it is missing or not one of ours.

    Every refusal is one :class:`CheckpointError` naming the file, what it is instead (a folder, a run folder, an
    export bundle, an empty, truncated or unrelated file, a checkpoint of another program) and what to pass.
    """
    p = Path(os.path.expanduser(str(path)))
    if p.is_dir():
        raise CheckpointError(not_a_checkpoint_folder(p))
    if not p.is_file():
        hint = ""
        if p.parent.is_dir():
            found = sorted(x.name for x in p.parent.glob("*.ckpt"))
            hint = f" Checkpoints in {p.parent}: {', '.join(found)}." if found else ""
        raise CheckpointError(f"checkpoint not found: {p}.{hint}")
    if p.suffix in EXPORTED_SUFFIXES and (p.parent / "metadata.json").is_file():
        raise CheckpointError(_bundle_message(p.parent, p))
    try:
        ckpt = _torch_load(p, weights_only)
    except Exception as e:  # torch's errors on a damaged or foreign file: described from the file's bytes instead
        what, pickled = describe_unreadable(p, e)
        if p.suffix in EXPORTED_SUFFIXES and not pickled:
            what = f"it is an exported model file ({p.suffix}), not a checkpoint"
        fix = (
            "Pass a checkpoint written by train.py (a run's checkpoints/best.ckpt or last.ckpt); a file from "
            "elsewhere must hold tensors and plain values only (save model.state_dict(), not objects)."
            if pickled
            else FIX + _siblings(p)
        )
        raise CheckpointError(f"cannot read checkpoint {p}: {what}. {fix}") from None
    if not isinstance(ckpt, dict) or KEY not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(_foreign_message(p, ckpt))
    return ckpt


def _torch_load(p: Path, weights_only: bool) -> Any:
    # mmap: tensors are read lazily, so looking up a checkpoint's config (predict's task dispatch) stays cheap. Only
    # the zip format can be mapped; a legacy-format file is read whole.
    with open(p, "rb") as f:
        mmap = f.read(2) == b"PK"
    return torch.load(p, map_location="cpu", weights_only=weights_only, mmap=mmap)


def _siblings(p: Path) -> str:
    found = sorted(x.name for x in p.parent.glob("*.ckpt") if x != p and x.stat().st_size > 0)
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    return f" Checkpoints next to it: {shown}." if found else ""


def _bundle_message(bundle: Path, given: Path) -> str:
    """An export bundle (or a file inside one) given where a checkpoint is needed."""
    try:
        meta = json.loads((bundle / "metadata.json").read_text())
    except (OSError, ValueError):
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    fmt = str(meta.get("format") or "")
    kind = f"{'an' if fmt[:1] in 'aeiou' else 'a'} {fmt} export bundle".replace("  ", " ")
    what = kind if given == bundle else f"the model file of {kind} ({bundle})"
    source = meta.get("source_checkpoint")
    where = (
        f": {shlex.quote(str(source))}"
        if source and Path(str(source)).is_file()
        else " (in the run's checkpoints/ folder)."
    )
    return (
        f"{given} is {what}, for scripts/predict.py and the bundle's loader.py, not a checkpoint; use the .ckpt it "
        f"was exported from{where}"
    )


def not_a_checkpoint_folder(p: Path, bundles: bool = False) -> str:
    """The message for a folder given where a checkpoint file is needed, naming the file to pass when there is one.

    ``bundles``: the caller also takes an export bundle (predict), so the message says the folder holds neither.
    """
    if (p / "metadata.json").is_file():
        return _bundle_message(p, p)
    for folder in (p / "checkpoints", p):
        found = sorted(folder.glob("*.ckpt"))
        if found:
            best = next((f for f in found if f.name == "best.ckpt"), None) or next(
                (f for f in found if f.name == "last.ckpt"), found[0]
            )
            kind = "a run folder" if folder != p else "a folder"
            return f"{p} is {kind}, not a checkpoint file; pass its checkpoint: {shlex.quote(str(best))}"
    neither = (
        "without checkpoints or metadata.json, not a checkpoint or an export bundle"
        if bundles
        else ("without checkpoints, not a checkpoint file")
    )
    return f"{p} is a folder {neither}. {FIX}"


def _foreign_message(p: Path, obj: Any) -> str:
    if isinstance(obj, dict) and "state_dict" in obj:
        what = "a Lightning checkpoint written by another program (no recipezoo config inside)"
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        what = "a plain state dict (weights with no recipe config)"
    else:
        what = f"a file holding a {type(obj).__name__}, not a checkpoint"
    return (
        f"{p} is not a recipezoo checkpoint: it is {what}. Pass a .ckpt written by train.py; to start a model from "
        f"a weights file, use backbone.pretrained={shlex.quote(str(p))} instead."
    )


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


def files_of(ckpt: dict[str, Any]) -> dict[str, str | bytes]:
    """The files the data fitted (``{file name: text or bytes}``; empty for most tasks)."""
    return dict(ckpt[KEY].get("files") or {})


def restore_info(ckpt: dict[str, Any]) -> dict[str, Any]:
    """What ``datamodule.restore`` takes: the checkpoint's ``data_info`` plus its ``files`` (when it has any)."""
    info = OmegaConf.to_container(config_of(ckpt).get("data_info") or OmegaConf.create({}), resolve=True)
    files = files_of(ckpt)
    return {**info, "files": files} if files else info


def load_module(path: str | os.PathLike, weights_only: bool = True) -> tuple[L.LightningModule, DictConfig]:
    """Rebuild the trained LightningModule from a checkpoint (eval mode, CPU) and return it with its config.

    The checkpoint's ``files`` (see the module docstring) are attached to the module as ``module.files``.
    """
    from hydra.utils import instantiate

    ckpt = read(path, weights_only)
    cfg = config_of(ckpt)
    model_cfg = cfg.model.copy()
    _no_pretrained(model_cfg)
    module = instantiate(model_cfg, _convert_="all")
    module.load_state_dict(ckpt["state_dict"])
    module.eval()
    module.files = files_of(ckpt)
    return module, cfg


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, but a run resumed into a new folder keeps its best checkpoints.

    Resumed runs always write to a new run folder (old runs are never overwritten). Lightning then forgets the best
    score and paths of the old folder, so the resumed run would report and test a worse "best" model. Here the old
    folder's best checkpoints are copied into the new ``checkpoints/`` and the state is rewritten to point at them.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and os.path.normpath(old) != os.path.normpath(self.dirpath):
            state_dict = dict(state_dict)

            def moved(path: str | None) -> str | None:
                if not path or not os.path.isfile(path):
                    return None
                new = os.path.join(self.dirpath, os.path.basename(path))
                if rank_zero_only.rank == 0 and not os.path.exists(new):
                    os.makedirs(self.dirpath, exist_ok=True)
                    shutil.copy2(path, new)
                return new

            best_k = {moved(p): s for p, s in state_dict.get("best_k_models", {}).items()}
            state_dict["best_k_models"] = {p: s for p, s in best_k.items() if p}
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                state_dict[key] = moved(state_dict.get(key)) or ""
            if not state_dict["best_model_path"]:
                state_dict["best_model_score"] = None
            state_dict["dirpath"] = self.dirpath
        super().load_state_dict(state_dict)
