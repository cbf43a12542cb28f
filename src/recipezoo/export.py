"""Export a trained checkpoint to ONNX or TorchScript, with a parity check against eager PyTorch.

The output folder (a "bundle") holds the model file, ``metadata.json`` (labels, preprocessing, input and output
spec, the measured parity) and, for ONNX, ``loader.py``: a copy of the torch-free runtime its task registers
(:mod:`recipezoo.core.registry`), which predicts with onnxruntime and numpy.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from recipezoo import __version__
from recipezoo.core import checkpoint as ckpt_io
from recipezoo.core.errors import ConfigError, ExportParityError
from recipezoo.core.export import (
    FILENAMES,
    FORMATS,
    Runner,
    eager,
    export_onnx,
    export_program,
    export_torchscript,
    latency_ms,
    max_abs_diff,
)
from recipezoo.core.outputs import claim_folder
from recipezoo.core.registry import TaskSpec, get_task, task_for_module

log = logging.getLogger("recipezoo")


def default_output(ckpt: str | Path, fmt: str) -> Path:
    """``<run folder>/export/<format>`` for a checkpoint in ``<run folder>/checkpoints/``."""
    p = Path(ckpt).expanduser().resolve()
    run = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    return run / "export" / fmt


def export(
    ckpt: str | Path,
    format: str = "onnx",
    output: str | Path | None = None,
    tolerance: float = 1e-4,
    batch_size: int = 8,
    overwrite: bool = False,
    measure_latency: bool = True,
) -> dict[str, Any]:
    """Export ``ckpt`` and verify it; raises :class:`ExportParityError` when outputs differ by more than ``tolerance``.

    Args:
        ckpt: a checkpoint written by ``train.py``.
        format: ``onnx``, ``torchscript`` (falls back to ``torch_export`` when the network does not trace) or
            ``torch_export`` (a ``torch.export`` program, ``model.pt2``).
        output: the bundle folder (default ``<run>/export/<format>``); must be new or empty unless ``overwrite``.
        tolerance: largest max-abs difference from eager PyTorch accepted.
        batch_size: batch size of the parity check (a second, different size checks the dynamic batch axis).
        overwrite: replace the files an earlier export wrote into ``output`` (nothing else is ever touched).
        measure_latency: time batch-1 inference of eager vs the exported model.

    Returns:
        The metadata written to ``metadata.json``.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format '{format}'; choose one of {', '.join(FORMATS)}.")
    out = Path(output).expanduser() if output else default_output(ckpt, format)
    # overwrite=true replaces only what an export wrote there (the files its metadata.json lists: a bundle holds
    # nothing else); a folder holding anything else is refused, and no folder is ever removed. Checked before the
    # model loads.
    claim = functools.partial(claim_folder, out, overwrite, default_name=f"{format}_bundle", recognise=bundle_files)
    claim(check_only=True)
    module, cfg = ckpt_io.load_module(ckpt)
    files = {n: c for n, c in module.files.items() if Path(n).name == n}  # plain names only: no path escapes
    out = claim()

    return _write_bundle(module, cfg, files, ckpt, out, format, tolerance, batch_size, measure_latency)


def _write_bundle(
    module: Any,
    cfg: Any,
    files: dict[str, Any],
    ckpt: str | Path,
    out: Path,
    format: str,
    tolerance: float,
    batch_size: int,
    measure_latency: bool,
) -> dict[str, Any]:
    """Write the bundle into ``out`` (cleared by :func:`claim_folder`) and check it against eager PyTorch."""
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):  # the exporter narrates every pass at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.manual_seed(0)
    spec = module.export_spec(batch_size)
    task = _task(spec.metadata.get("task"), module)
    model_path = out / FILENAMES[format]
    log.info("Exporting %s to %s ...", format, model_path)
    format, model_path = _write_model(spec, model_path, format)

    runner = Runner(format, model_path, torch.get_num_threads())  # timed against eager: the same cores
    diff, other = _parity(spec, runner, batch_size)
    # Further graphs of the same model (e.g. a recommender's towers): exported and checked the same way.
    parts_meta: dict[str, Any] = {}
    part_diffs: dict[str, float] = {}
    for name, part in spec.parts.items():
        part_path = out / f"{name}{Path(FILENAMES[format]).suffix}"
        part_format, part_path = _write_model(part, part_path, format)
        part_diffs[name], _ = _parity(part, Runner(part_format, part_path), batch_size)
        parts_meta[name] = {
            "model_file": part_path.name,
            "inputs": _input_spec(part),
            "outputs": part.output_names,
        }
    diff = max([diff, *part_diffs.values()])
    parity = {
        "max_abs_diff": diff,
        "tolerance": tolerance,
        "passed": diff <= tolerance,
        "batch_sizes": [batch_size] + ([batch_size // 2 + 1] if other is not None else []),
        **({"parts": part_diffs} if part_diffs else {}),
    }
    if measure_latency and spec.make_inputs:
        one = spec.make_inputs(1)
        parity["latency_ms_batch1"] = {
            "eager": round(latency_ms(lambda: eager(spec, one)), 3),
            format: round(latency_ms(lambda: runner(one)), 3),
        }

    metadata = {
        "format": format,
        "model_file": model_path.name,
        "recipe": cfg.get("recipe_name"),
        "source_checkpoint": str(Path(ckpt).expanduser().resolve()),
        "recipezoo_version": __version__,
        "torch_version": torch.__version__,
        "inputs": _input_spec(spec),
        "outputs": spec.output_names,
        **({"task": task.name, **task.metadata} if task is not None else {}),
        **spec.metadata,
        **({"parts": parts_meta} if parts_meta else {}),
        **({"files": sorted({*files, *spec.files})} if files or spec.files else {}),
        "parity": parity,
    }
    (out / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    for name, content in files.items():  # what the data fitted: a tokenizer, id maps
        (out / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    for name, content in spec.files.items():  # what the model computed for the bundle: e.g. item embeddings
        if Path(name).name == name:
            (out / name).write_bytes(content)
    if format == "onnx" and task is not None and task.runtime:
        # The torch-free runtime travels with the bundle, so it predicts where recipezoo is not installed.
        runtime = importlib.import_module(task.runtime)
        shutil.copy(runtime.__file__, out / "loader.py")
    log.info(
        "Parity %s vs eager: max abs diff %.3g (tolerance %.0e)%s",
        format,
        diff,
        tolerance,
        f"; batch-1 latency {parity['latency_ms_batch1']}" if "latency_ms_batch1" in parity else "",
    )
    if not parity["passed"]:
        raise ExportParityError(
            f"{format} export differs from eager PyTorch: max abs diff {diff:.3g} > tolerance "
            f"{tolerance:g}. The files are in {out} for inspection."
        )
    log.info("Bundle written to %s", out)
    return metadata


def bundle_files(folder: Path) -> list[str]:
    """The files of a bundle written by an earlier export (its ``metadata.json`` lists them), which
    ``overwrite=true`` may replace; nothing when the folder holds no bundle of ours."""
    meta = json.loads((folder / "metadata.json").read_text())
    if not isinstance(meta, dict) or "recipezoo_version" not in meta or "model_file" not in meta:
        return []
    names = {"metadata.json", "loader.py", str(meta["model_file"]), *map(str, meta.get("files", []))}
    names |= {str(p.get("model_file")) for p in (meta.get("parts") or {}).values() if isinstance(p, dict)}
    return sorted(n for n in names if Path(n).name == n and (folder / n).is_file())


def _task(name: Any, module: Any) -> TaskSpec | None:
    """The registered task of the exported model: the one its export metadata names, else its module's."""
    if name:
        try:
            return get_task(str(name))
        except ConfigError:  # a task nobody registered: exported as before, without a loader
            return None
    return task_for_module(module)


def _parity(spec: Any, runner: Runner, batch_size: int) -> tuple[float, Any]:
    """Largest difference between eager and exported outputs, on the example inputs and on another batch size."""
    diff = max_abs_diff(eager(spec, spec.inputs), runner(spec.inputs))
    other = spec.make_inputs(batch_size // 2 + 1) if spec.make_inputs else None  # another batch size
    if other is not None:
        diff = max(diff, max_abs_diff(eager(spec, other), runner(other)))
    return diff, other


def _input_spec(spec: Any) -> dict[str, Any]:
    return {
        n: {
            "shape": [spec.dynamic_axes.get(n, {}).get(i, d) for i, d in enumerate(t.shape)],
            "dtype": str(t.dtype).removeprefix("torch."),
        }
        for n, t in spec.inputs.items()
    }


def _write_model(spec: Any, path: Path, format: str) -> tuple[str, Path]:
    """Write one graph; TorchScript falls back to torch.export (``.pt2``) for a network that does not trace.

    Returns the format and the file actually written.
    """
    if format == "onnx":
        export_onnx(spec, path)
    elif format == "torch_export":
        export_program(spec, path)
    else:
        try:
            export_torchscript(spec, path)
        except Exception as e:  # some architectures do not trace: torch.export serves the same users
            log.warning(
                "TorchScript tracing failed (%s: %s); exporting with torch.export instead (%s, loaded with "
                "torch.export.load(path).module()).",
                type(e).__name__,
                str(e).splitlines()[0][:200] if str(e) else "",
                path.with_suffix(".pt2").name,
            )
            path.unlink(missing_ok=True)
            path = path.with_suffix(".pt2")
            export_program(spec, path)
            return "torch_export", path
    return format, path
