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

from recipezoo.core.errors import CheckpointError, ConfigError
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
        path = self.model_file
        if path is None or not path.is_file():
            raise CheckpointError(f"{self.bundle} lacks its model file {path.name if path else ''}: {_COPY_WHOLE}")
        try:
            if self.format == "onnx":
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.log_severity_level = 3
                return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            from recipezoo.core.export import load_torch

            return load_torch(path)
        except Exception as e:  # a damaged or foreign model file; onnxruntime's error types are private
            from recipezoo.core.pretrained import first_sentence

            raise CheckpointError(f"cannot open {path} ({first_sentence(e)}): {_COPY_WHOLE}") from None

    def runtime(self) -> ModuleType:
        """The task's torch-free runtime module (what ONNX bundles carry as ``loader.py``)."""
        if not self.task.runtime:
            raise ConfigError(f"task '{self.task.name}' registers no runtime.")
        return importlib.import_module(self.task.runtime)


_FORMAT_OF_SUFFIX = {".onnx": "onnx", ".pt": "torchscript", ".pt2": "torch_export"}


def _path(source: str | os.PathLike) -> Path:
    return Path(os.path.expanduser(str(source)))


_COPY_WHOLE = "copy the whole folder that scripts/export.py wrote, or export the checkpoint again."
_EXPORTED_SUFFIXES = (".onnx", ".pt", ".pt2")


def _bundle_metadata(p: Path) -> tuple[Path, dict[str, Any]]:
    """A bundle folder (``p`` or the folder of a file in it) and its metadata; one clear error for anything else."""
    from recipezoo.core.checkpoint import not_a_checkpoint_folder
    from recipezoo.core.pretrained import sniff_file

    bundle = p if p.is_dir() else p.parent
    meta = bundle / "metadata.json"
    if not meta.is_file():
        if not p.exists():
            found = sorted(x.name for x in p.parent.glob("*.ckpt")) if p.parent.is_dir() else []
            hint = f" Checkpoints in {p.parent}: {', '.join(found)}." if found else ""
            raise CheckpointError(f"not found: {p}. Pass a .ckpt or the folder scripts/export.py wrote.{hint}")
        if p.is_dir():
            raise CheckpointError(not_a_checkpoint_folder(p, bundles=True))
        if p.suffix in _EXPORTED_SUFFIXES:
            raise CheckpointError(
                f"{p} was copied without its bundle: an exported model needs the metadata.json (and files) that "
                "scripts/export.py wrote next to it. Pass that whole folder, or export the checkpoint again."
            )
        raise ConfigError(f"{p} is neither a .ckpt nor an export folder with metadata.json: it is {sniff_file(p)[1]}.")
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{meta} is damaged ({type(e).__name__}): {_COPY_WHOLE}") from None
    if not isinstance(data, dict) or not data.get("task"):
        raise CheckpointError(f"{meta} names no task, so it is not an export bundle's metadata: {_COPY_WHOLE}")
    return bundle, data


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
    if fmt == "onnx" and spec.runtime:
        # An ONNX bundle is served by its task's torch-free runtime: its own checks (metadata keys, the model file)
        # run here, so a damaged bundle is one line before any input is read.
        check = getattr(importlib.import_module(spec.runtime), "read_metadata", None)
        if check is not None:
            try:
                check(bundle, (spec.name,))
            except ValueError as e:
                raise CheckpointError(str(e)) from None
    return Loaded(spec, str(fmt), p, meta, bundle=bundle)
