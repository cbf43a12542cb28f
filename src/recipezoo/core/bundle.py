"""Open a trained model for any task: a checkpoint, or an export bundle (ONNX, TorchScript, torch.export).

:func:`load` is the one place that tells the three apart and reads ``metadata.json``; the domains' predictors take
what it returns (:class:`Loaded`) and keep only what is theirs: reading inputs, running the model, writing rows.

- ``.ckpt``: the trained LightningModule (eval mode, CPU) and its run config;
- an export folder, or a file inside one (``model.onnx``, ``model.pt``, ``model.pt2``): its ``metadata.json``, and
  the model file opened on first use (onnxruntime for ONNX, torch for the others).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from recipezoo.core.errors import ConfigError
from recipezoo.core.registry import TaskSpec, get_task, task_for_module, tasks


@dataclass
class Loaded:
    """A model opened by :func:`load`.

    Attributes:
        task: the registered task the model was trained for.
        format: ``ckpt``, ``onnx``, ``torchscript`` or ``torch_export``.
        path: the source as given (``~`` expanded).
        metadata: a bundle's ``metadata.json``; for a checkpoint, the task and format with what the data fitted
            (its ``data_info``: labels, preprocessing...).
        bundle: the bundle folder (``None`` for a checkpoint).
        module: the trained LightningModule (checkpoints only), with the data's files as ``module.files``.
        config: the run's resolved config (checkpoints only).
    """

    task: TaskSpec
    format: str
    path: Path
    metadata: dict[str, Any]
    bundle: Path | None = None
    module: Any = None
    config: Any = None

    @property
    def is_checkpoint(self) -> bool:
        return self.format == "ckpt"

    @property
    def model_file(self) -> Path | None:
        """The bundle's model file (``None`` for a checkpoint)."""
        return self.bundle / self.metadata["model_file"] if self.bundle is not None else None

    @functools.cached_property
    def model(self) -> Any:
        """What runs the network: the LightningModule (checkpoint), an onnxruntime ``InferenceSession`` (ONNX; CPU,
        warnings off), or a torch module callable on positional tensors (TorchScript / torch.export)."""
        if self.module is not None:
            return self.module
        if self.format == "onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            return ort.InferenceSession(str(self.model_file), opts, providers=["CPUExecutionProvider"])
        from recipezoo.core.export import load_torch

        return load_torch(self.model_file)

    def runtime(self) -> ModuleType:
        """The task's torch-free runtime module (what ONNX bundles carry as ``loader.py``)."""
        if not self.task.runtime:
            raise ConfigError(f"task '{self.task.name}' registers no runtime.")
        return importlib.import_module(self.task.runtime)


_FORMAT_OF_SUFFIX = {".onnx": "onnx", ".pt": "torchscript", ".pt2": "torch_export"}


def _path(source: str | os.PathLike) -> Path:
    return Path(os.path.expanduser(str(source)))


def _bundle_metadata(p: Path) -> tuple[Path, dict[str, Any]]:
    bundle = p if p.is_dir() else p.parent
    meta = bundle / "metadata.json"
    if not meta.is_file():
        raise ConfigError(f"{p} is neither a .ckpt nor an export folder with metadata.json.")
    return bundle, json.loads(meta.read_text())


def _known() -> str:
    return ", ".join(tasks())


def _check(spec: TaskSpec, accepted: Iterable[str] | None, where: Path, what: str) -> TaskSpec:
    accepted = tuple(accepted) if accepted is not None else None
    if accepted is not None and spec.name not in accepted:
        handled = ", ".join(a.replace("_", " ") for a in accepted)
        raise ConfigError(f"{where} is a '{spec.name}' {what}; this predictor handles {handled}.")
    return spec


def _task_named(name: Any, where: Path) -> TaskSpec:
    try:
        return get_task(str(name))
    except ConfigError:
        raise ConfigError(f"{where}: no registered task {name!r}; known tasks: {_known()}.") from None


def _task_of_target(target: str, where: Path) -> TaskSpec:
    spec = task_for_module(target) if target else None
    if spec is None:
        raise ConfigError(f"{where}: no registered task trains '{target}'; known tasks: {_known()}.")
    return spec


def task_of(source: str | os.PathLike) -> TaskSpec:
    """The task of a checkpoint (from its config, weights not loaded) or of a bundle (from its metadata)."""
    p = _path(source)
    if p.suffix == ".ckpt":
        from recipezoo.core.checkpoint import config_of, read

        return _task_of_target(str(config_of(read(p)).model.get("_target_", "")), p)
    bundle, meta = _bundle_metadata(p)
    return _task_named(meta.get("task"), bundle)


def load(source: str | os.PathLike | Loaded, accept: Iterable[str] | None = None) -> Loaded:
    """Open a checkpoint or an export bundle (see the module docstring).

    Args:
        source: a ``.ckpt``, an export folder or a file inside one; an already opened :class:`Loaded` passes through.
        accept: the task names the caller handles; another task raises :class:`ConfigError`.
    """
    if isinstance(source, Loaded):
        _check(source.task, accept, source.bundle or source.path, "bundle" if source.bundle else "checkpoint")
        return source
    p = _path(source)
    if p.suffix == ".ckpt":
        from omegaconf import OmegaConf

        from recipezoo.core.checkpoint import load_module

        module, cfg = load_module(p)
        spec = task_for_module(type(module))
        if spec is None:
            spec = _task_of_target(str(cfg.model.get("_target_", "")), p)
        _check(spec, accept, p, "checkpoint")
        info = OmegaConf.to_container(cfg.get("data_info") or OmegaConf.create({}), resolve=True)
        return Loaded(spec, "ckpt", p, {"task": spec.name, "format": "ckpt", **info}, module=module, config=cfg)
    bundle, meta = _bundle_metadata(p)
    spec = _check(_task_named(meta.get("task"), bundle), accept, bundle, "bundle")
    fmt = meta.get("format") or _FORMAT_OF_SUFFIX.get(Path(str(meta.get("model_file", ""))).suffix, "")
    return Loaded(spec, str(fmt), p, meta, bundle=bundle)
