"""Export mechanics shared by every domain: ONNX and TorchScript writers, parity checks, latency.

A task's LightningModule describes what to export through ``export_spec(batch_size)``, returning an
:class:`ExportSpec`: the network, example inputs by name, the dynamic axes, output names and metadata. This module
turns that into files and checks them against eager PyTorch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript", "torch_export")
FILENAMES = {"onnx": "model.onnx", "torchscript": "model.pt", "torch_export": "model.pt2"}


@dataclass
class ExportSpec:
    """What a task exports.

    Attributes:
        model: the network, in eval mode, taking the inputs positionally in ``inputs`` order.
        inputs: example inputs by name (their batch axis is dimension 0).
        output_names: names of the outputs.
        dynamic_axes: per input/output name, ``{axis: name}`` of the axes that may vary (batch, sequence...).
        metadata: task facts for the bundle (labels, preprocessing, ...).
        make_inputs: builds example inputs of another batch size, to prove the batch axis is dynamic.
        parts: further graphs exported into the same bundle as ``<name>.onnx`` / ``<name>.pt``, each checked for
            parity like the model (e.g. a recommender's user and item towers beside its scoring model).
        files: further files written into the bundle, ``{file name: bytes}`` (e.g. item embeddings for an ANN index).
    """

    model: nn.Module
    inputs: dict[str, torch.Tensor]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    metadata: dict[str, Any] = field(default_factory=dict)
    make_inputs: Callable[[int], dict[str, torch.Tensor]] | None = None
    parts: dict[str, ExportSpec] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


def _dynamic_shapes(spec: ExportSpec) -> dict[str, dict[int, Any]]:
    """torch.export's dynamic shapes for ``spec``, keyed by the forward() parameter names (mapped positionally)."""
    import inspect

    names = list(spec.inputs)
    params = [p for p in inspect.signature(spec.model.forward).parameters][: len(names)]
    return {p: {axis: torch.export.Dim.DYNAMIC for axis in spec.dynamic_axes.get(n, {})} for p, n in zip(params, names)}


def export_onnx(spec: ExportSpec, path: Path, opset: int = 18) -> None:
    """Write ``spec.model`` as ONNX with the dynamic axes of ``spec`` (torch.export-based exporter)."""
    args = tuple(spec.inputs.values())
    names = list(spec.inputs)
    program = torch.onnx.export(
        spec.model,
        args,
        dynamo=True,
        input_names=names,
        output_names=spec.output_names,
        opset_version=opset,
        dynamic_shapes=_dynamic_shapes(spec),
        external_data=False,
        verbose=False,
    )
    program.save(str(path))


def export_torchscript(spec: ExportSpec, path: Path) -> None:
    """Write ``spec.model`` as a traced TorchScript module (shapes stay dynamic for convolutional/linear nets)."""
    with torch.no_grad():
        traced = torch.jit.trace(spec.model, tuple(spec.inputs.values()), check_trace=False)
    traced.save(str(path))


def export_program(spec: ExportSpec, path: Path) -> None:
    """Write ``spec.model`` as a ``torch.export`` program (``.pt2``), with the dynamic axes of ``spec``.

    For networks TorchScript cannot trace; load it with :func:`load_torch`.
    """
    with torch.no_grad():
        program = torch.export.export(spec.model, tuple(spec.inputs.values()), dynamic_shapes=_dynamic_shapes(spec))
    torch.export.save(program, str(path))


def load_torch(path: str | Path) -> Any:
    """An exported PyTorch model, callable on positional tensors: TorchScript (``.pt``) or torch.export (``.pt2``)."""
    if str(path).endswith(".pt2"):
        return torch.export.load(str(path)).module()
    return torch.jit.load(str(path), map_location="cpu").eval()


class Runner:
    """Runs an exported file on numpy inputs: onnxruntime for ONNX, torch for TorchScript / torch.export."""

    def __init__(self, fmt: str, path: Path, threads: int | None = None) -> None:
        """``threads``: onnxruntime's intra-op threads (default: its own choice, one per core); timing comparisons
        pass ``torch.get_num_threads()`` so both engines get the same cores."""
        self.fmt = fmt
        if fmt == "onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            if threads:
                opts.intra_op_num_threads = int(threads)
                opts.inter_op_num_threads = 1
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        else:
            self.module = load_torch(path)

    def __call__(self, inputs: dict[str, torch.Tensor]) -> list[np.ndarray]:
        if self.fmt == "onnx":
            return self.session.run(None, {k: v.numpy() for k, v in inputs.items()})
        with torch.no_grad():
            out = self.module(*inputs.values())
        out = out if isinstance(out, (tuple, list)) else (out,)
        return [o.numpy() for o in out]


def eager(spec: ExportSpec, inputs: dict[str, torch.Tensor]) -> list[np.ndarray]:
    with torch.no_grad():
        out = spec.model(*inputs.values())
    out = out if isinstance(out, (tuple, list)) else (out,)
    return [o.float().numpy() for o in out]


def max_abs_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(
        float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0 for x, y in zip(a, b)
    )


def latency_ms(fn: Callable[[], Any], repeats: int = 30, warmup: int = 5) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))
