"""Export a trained checkpoint to ONNX or TorchScript, with a parity check against eager PyTorch.

The output folder (a "bundle") holds the model file, ``metadata.json`` (labels, preprocessing, input and output
spec, the measured parity) and, for ONNX, ``loader.py``: a copy of the task's torch-free runtime
(:mod:`recipezoo.runtime.vision`, :mod:`recipezoo.runtime.tabular`) that predicts with onnxruntime and numpy.
"""

from __future__ import annotations

import importlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from recipezoo import __version__
from recipezoo.core import checkpoint as ckpt_io
from recipezoo.core.errors import ConfigError, ExportParityError, OutputExistsError
from recipezoo.core.export import (
    FILENAMES,
    FORMATS,
    Runner,
    eager,
    export_onnx,
    export_torchscript,
    latency_ms,
    max_abs_diff,
)

log = logging.getLogger("recipezoo")

# Task -> the torch-free module copied into ONNX bundles as loader.py.
RUNTIMES = {
    "image_classification": "recipezoo.runtime.vision",
    "fraud_detection": "recipezoo.runtime.tabular",
    "audio_classification": "recipezoo.runtime.audio",
    "speech_recognition": "recipezoo.runtime.audio",
}


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
        format: ``onnx`` or ``torchscript``.
        output: the bundle folder (default ``<run>/export/<format>``); must be new or empty unless ``overwrite``.
        tolerance: largest max-abs difference from eager PyTorch accepted.
        batch_size: batch size of the parity check (a second, different size checks the dynamic batch axis).
        overwrite: replace an existing bundle folder.
        measure_latency: time batch-1 inference of eager vs the exported model.

    Returns:
        The metadata written to ``metadata.json``.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format '{format}'; choose one of {', '.join(FORMATS)}.")
    module, cfg = ckpt_io.load_module(ckpt)
    files = {n: c for n, c in module.files.items() if Path(n).name == n}  # plain names only: no path escapes
    out = Path(output).expanduser() if output else default_output(ckpt, format)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError(
                f"{out} already holds files; nothing was overwritten. Pass output=<new folder> or overwrite=true."
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):  # the exporter narrates every pass at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.manual_seed(0)
    spec = module.export_spec(batch_size)
    model_path = out / FILENAMES[format]
    log.info("Exporting %s to %s ...", format, model_path)
    (export_onnx if format == "onnx" else export_torchscript)(spec, model_path)

    runner = Runner(format, model_path)
    diff = max_abs_diff(eager(spec, spec.inputs), runner(spec.inputs))
    other = spec.make_inputs(batch_size // 2 + 1) if spec.make_inputs else None  # another batch size
    if other is not None:
        diff = max(diff, max_abs_diff(eager(spec, other), runner(other)))
    parity = {
        "max_abs_diff": diff,
        "tolerance": tolerance,
        "passed": diff <= tolerance,
        "batch_sizes": [batch_size] + ([batch_size // 2 + 1] if other is not None else []),
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
        "inputs": {
            n: {
                "shape": [spec.dynamic_axes.get(n, {}).get(i, d) for i, d in enumerate(t.shape)],
                "dtype": str(t.dtype).removeprefix("torch."),
            }
            for n, t in spec.inputs.items()
        },
        "outputs": spec.output_names,
        **spec.metadata,
        **({"files": sorted(files)} if files else {}),
        "parity": parity,
    }
    (out / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    for name, content in files.items():  # what the data fitted: a tokenizer, id maps
        (out / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    if format == "onnx" and metadata.get("task") in RUNTIMES:
        # The torch-free runtime travels with the bundle, so it predicts where recipezoo is not installed.
        runtime = importlib.import_module(RUNTIMES[metadata["task"]])
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
