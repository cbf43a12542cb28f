"""Export a trained checkpoint to ONNX or TorchScript, with a parity check against eager PyTorch.

The output folder (a "bundle") holds the model file, ``metadata.json`` (labels, preprocessing, input and output
spec, the measured parity) and, for ONNX, ``loader.py``: a copy of the torch-free runtime its task registers
(:mod:`recipezoo.core.registry`), which predicts with onnxruntime and numpy.

``model="baseline"`` exports the classical baseline the run trained beside the deep model instead (summary.json's
``baseline.artifact``), in the same bundle format, so whichever model won on validation can be kept: a checkpoint
(a linear probe saved as a checkpoint of the same task) is exported like any checkpoint; the fraud GBDT's ONNX
trees (:mod:`recipezoo.fraud.gbdt_onnx`) become a bundle with the deep model's inputs, outputs and metadata.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import shlex
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recipezoo import __version__
from recipezoo.core import checkpoint as ckpt_io
from recipezoo.core.errors import CheckpointError, ConfigError, ExportParityError
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

MODELS = ("deep", "baseline")


def run_folder(ckpt: str | Path) -> Path:
    """The run folder of a checkpoint: the parent of ``checkpoints/``, else the checkpoint's own folder."""
    p = Path(ckpt).expanduser().resolve()
    return p.parent.parent if p.parent.name == "checkpoints" else p.parent


def default_output(ckpt: str | Path, fmt: str, model: str = "deep") -> Path:
    """``<run folder>/export/<format>`` for a checkpoint in ``<run folder>/checkpoints/``
    (``export/baseline_<format>`` for the baseline)."""
    return run_folder(ckpt) / "export" / (f"baseline_{fmt}" if model == "baseline" else fmt)


def export(
    ckpt: str | Path,
    format: str = "onnx",
    output: str | Path | None = None,
    tolerance: float = 1e-4,
    batch_size: int = 8,
    overwrite: bool = False,
    measure_latency: bool = True,
    model: str = "deep",
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
        model: ``deep`` (the checkpoint) or ``baseline``: the classical baseline the checkpoint's run trained beside
            it (``baseline.artifact`` in the run's summary.json; default output ``<run>/export/baseline_<format>``).

    Returns:
        The metadata written to ``metadata.json``.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format '{format}'; choose one of {', '.join(FORMATS)}.")
    if model not in MODELS:
        raise ConfigError(f"unknown model '{model}'; choose one of {', '.join(MODELS)}.")
    if model == "baseline":
        return _export_baseline(ckpt, format, output, tolerance, batch_size, overwrite, measure_latency)
    extra = {"model": "deep"}
    return _export_checkpoint(ckpt, format, output, tolerance, batch_size, overwrite, measure_latency, extra)


def _export_checkpoint(
    ckpt: str | Path,
    format: str,
    output: str | Path | None,
    tolerance: float,
    batch_size: int,
    overwrite: bool,
    measure_latency: bool,
    extra: dict[str, Any] | None = None,
    default: Path | None = None,
) -> dict[str, Any]:
    """:func:`export` of a checkpoint; ``extra`` is added to the metadata (e.g. which model the bundle holds)."""
    out = Path(output).expanduser() if output else (default or default_output(ckpt, format))
    # overwrite=true replaces only what an export wrote there (the files its metadata.json lists: a bundle holds
    # nothing else); a folder holding anything else is refused, and no folder is ever removed. Checked before the
    # model loads.
    claim = functools.partial(claim_folder, out, overwrite, default_name=f"{format}_bundle", recognise=bundle_files)
    claim(check_only=True)
    module, cfg = ckpt_io.load_module(ckpt)
    files = {n: c for n, c in module.files.items() if Path(n).name == n}  # plain names only: no path escapes
    out = claim()

    return _write_bundle(module, cfg, files, ckpt, out, format, tolerance, batch_size, measure_latency, extra)


def _command(ckpt: str | Path, format: str, output: str | Path | None, overwrite: bool) -> str:
    """The export command line for the baseline of ``ckpt``'s run, ready to paste."""
    parts = ["python scripts/export.py", shlex.quote(f"ckpt={ckpt}"), "model=baseline", f"format={format}"]
    if output:
        parts.append(shlex.quote(f"output={output}"))
    if overwrite:
        parts.append("overwrite=true")
    return " ".join(parts)


def baseline_artifact(ckpt: str | Path) -> tuple[Path, dict[str, Any]]:
    """The saved baseline of ``ckpt``'s run (``baseline.artifact`` in its summary.json) and that baseline entry.

    A run folder moved since training is followed: an artifact path under the summary's ``run_dir`` is looked up
    under the folder the summary is in now.

    Raises:
        ConfigError: no summary.json, no baseline in it, or a baseline that was not saved.
        CheckpointError: the saved file is missing.
    """
    run = run_folder(ckpt)
    summary_path = run / "summary.json"
    deep = f"python scripts/export.py {shlex.quote(f'ckpt={ckpt}')} model=deep"
    if not summary_path.is_file():
        raise ConfigError(
            f"model=baseline reads the run's summary.json, and {run} has none: pass a checkpoint from the "
            f"checkpoints/ folder of a run train.py finished, or export the deep model: {deep}"
        )
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{summary_path} is unreadable ({type(e).__name__}); export the deep model: {deep}") from None
    entry = summary.get("baseline") if isinstance(summary, dict) else None
    if not isinstance(entry, dict):
        raise ConfigError(
            f"{summary_path} reports no baseline: {summary.get('recipe') or 'its recipe'} trains none beside its "
            f"model (or the run skipped testing). Export the deep model: {deep}"
        )
    artifact = entry.get("artifact")
    if not artifact:
        why = entry.get("artifact_error") or ("the run predates saved baselines, or trained with baseline.out_dir=null")
        raise ConfigError(
            f"the run's {entry.get('name', 'baseline')} baseline was not saved ({why}), so it cannot be exported; "
            f"train the run again to save it, or export the deep model: {deep}"
        )
    path = Path(str(artifact)).expanduser()
    if not path.is_file() and summary.get("run_dir"):
        try:
            moved = run / path.relative_to(Path(summary["run_dir"]))
        except ValueError:
            moved = None
        if moved is not None and moved.is_file():
            path = moved
    if not path.is_file():
        raise CheckpointError(
            f"the run's saved baseline {path} is missing (summary.json names it); copy the whole run folder, or "
            f"train the run again. The deep model exports with {deep}"
        )
    return path, entry


def _export_baseline(
    ckpt: str | Path,
    format: str,
    output: str | Path | None,
    tolerance: float,
    batch_size: int,
    overwrite: bool,
    measure_latency: bool,
) -> dict[str, Any]:
    """:func:`export` with ``model="baseline"``: the baseline saved beside ``ckpt`` by its run."""
    artifact, entry = baseline_artifact(ckpt)
    name = str(entry.get("name") or "baseline")
    default = default_output(ckpt, format, "baseline")
    if artifact.suffix == ".ckpt":  # a baseline saved as a checkpoint of the same task: exported like any other
        extra = {"model": "baseline", "model_name": name, "source_baseline": str(artifact.resolve())}
        return _export_checkpoint(
            artifact, format, output, tolerance, batch_size, overwrite, measure_latency, extra, default
        )
    if artifact.suffix != ".onnx":
        raise CheckpointError(f"the run's saved baseline {artifact} is neither a .ckpt nor an .onnx file.")
    if format != "onnx":
        what = "TorchScript" if format == "torchscript" else "A torch.export program"
        raise ConfigError(
            f"{what} cannot hold the {name} baseline's trees (they are saved as ONNX); export it as ONNX: "
            f"{_command(ckpt, 'onnx', output, overwrite)}"
        )
    out = Path(output).expanduser() if output else default
    claim = functools.partial(claim_folder, out, overwrite, default_name="onnx_bundle", recognise=bundle_files)
    claim(check_only=True)
    module, cfg = ckpt_io.load_module(ckpt)  # the run's task: the bundle's inputs, preprocessing and labels
    files = {n: c for n, c in module.files.items() if Path(n).name == n}
    out = claim()
    return _write_onnx_baseline(module, cfg, files, ckpt, artifact, entry, out, tolerance, batch_size, measure_latency)


def _onnx_facts(path: Path) -> dict[str, Any]:
    """What a saved ONNX baseline carries beside its graph: the ``recipezoo.*`` entries of its ``metadata_props``
    (JSON values), e.g. its threshold (written by :func:`recipezoo.fraud.gbdt_onnx.set_facts`)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
        return {
            p.key.removeprefix("recipezoo."): json.loads(p.value)
            for p in model.metadata_props
            if p.key.startswith("recipezoo.")
        }
    except Exception as e:  # a damaged file; onnx raises several types
        raise CheckpointError(
            f"cannot read the saved baseline {path} ({type(e).__name__}); train the run again."
        ) from None


def _write_onnx_baseline(
    module: Any,
    cfg: Any,
    files: dict[str, Any],
    ckpt: str | Path,
    artifact: Path,
    entry: dict[str, Any],
    out: Path,
    tolerance: float,
    batch_size: int,
    measure_latency: bool,
) -> dict[str, Any]:
    """A bundle of an ONNX baseline in the deep model's bundle format: the deep export's metadata (task,
    preprocessing, labels, inputs and outputs), with the baseline's own decision (threshold, calibration) and its
    parity against scikit-learn, measured when the run saved it."""
    spec = module.export_spec(batch_size)
    task = _task(spec.metadata.get("task"), module)
    facts = _onnx_facts(artifact)
    n_num, cards = facts.get("n_num"), facts.get("cardinalities")
    theirs = (spec.metadata.get("n_num"), spec.metadata.get("cardinalities"))
    if "threshold" not in facts or (n_num, cards) != theirs:
        raise CheckpointError(
            f"{artifact} does not fit {ckpt}: its features (n_num={n_num}, cardinalities={cards}) are not the "
            f"checkpoint's (n_num={theirs[0]}, cardinalities={theirs[1]}), or it carries no threshold. Pass a "
            "checkpoint of the run that saved it."
        )
    model_path = out / FILENAMES["onnx"]
    shutil.copyfile(artifact, model_path)
    # The file was checked against scikit-learn on the run's validation and test rows when it was saved; here it
    # must run on the deep model's example inputs, at two batch sizes, and give one finite score per row.
    runner = Runner("onnx", model_path, torch.get_num_threads())
    graph_inputs = {i.name for i in runner.session.get_inputs()}
    for n in (batch_size, batch_size // 2 + 1):
        inputs = spec.make_inputs(n) if spec.make_inputs else spec.inputs
        got = runner({k: v for k, v in inputs.items() if k in graph_inputs})[0]
        if got.shape != (len(next(iter(inputs.values()))),) or not np.isfinite(got).all():
            raise ExportParityError(f"{artifact} gives {got.shape} scores for {n} rows; the files are in {out}.")
    measured = facts.get("parity") or {}
    diff = float(measured.get("max_abs_diff", float("nan")))
    parity = {
        "max_abs_diff": diff,
        "tolerance": tolerance,
        "passed": diff <= tolerance,
        "reference": "scikit-learn decision_function on the run's validation and test rows, when the run saved it",
        **({"rows": measured["rows"]} if "rows" in measured else {}),
    }
    if measure_latency and spec.make_inputs:
        one = {k: v for k, v in spec.make_inputs(1).items() if k in graph_inputs}
        parity["latency_ms_batch1"] = {"onnx": round(latency_ms(lambda: runner(one)), 3)}
    name = str(facts.get("model") or entry.get("name") or "baseline")
    about = {
        "params": facts.get("params"),
        "threshold_rule": facts.get("threshold_rule"),
        "val": entry.get("val"),
        "test": entry.get("test"),
    }
    metadata = {
        "format": "onnx",
        "model_file": model_path.name,
        "recipe": cfg.get("recipe_name"),
        "source_checkpoint": str(Path(ckpt).expanduser().resolve()),
        "recipezoo_version": __version__,
        "torch_version": torch.__version__,
        "inputs": _input_spec(spec),
        "outputs": spec.output_names,
        **({"task": task.name, **task.metadata} if task is not None else {}),
        **spec.metadata,
        # The baseline's own decision, on its own score: log-odds, so calibration "none" (a sigmoid) gives its
        # predict_proba, and the threshold it chose on validation by the deep model's rule.
        "calibration": facts.get("calibration") or {"kind": "none"},
        "threshold": facts["threshold"],
        "threshold_on": facts.get("threshold_on", "score"),
        "score_kind": facts.get("score_kind", "logit"),
        "model": "baseline",
        "model_name": name,
        "source_baseline": str(artifact.resolve()),
        "baseline": {k: v for k, v in about.items() if v is not None},  # how it was fitted and scored
        **({"files": sorted(files)} if files else {}),
        "parity": parity,
    }
    (out / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    for file_name, content in files.items():
        (out / file_name).write_bytes(content if isinstance(content, bytes) else content.encode())
    if task is not None and task.runtime:
        shutil.copy(importlib.import_module(task.runtime).__file__, out / "loader.py")
    if not parity["passed"]:
        raise ExportParityError(
            f"the saved {name} differs from scikit-learn by {diff:.3g} > tolerance {tolerance:g}. The files are in "
            f"{out} for inspection."
        )
    log.info("Bundle of the %s baseline written to %s (threshold %.6g on its log-odds)", name, out, facts["threshold"])
    return metadata


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
    extra: dict[str, Any] | None = None,
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
        **(extra or {}),
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
