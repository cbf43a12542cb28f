"""Train, then test, one recipe: the function behind ``python train.py``."""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from recipezoo.cli import user_error_in
from recipezoo.core import checkpoint as ckpt_io
from recipezoo.core import probe
from recipezoo.core.errors import CheckpointError, ConfigError, DataError, OutputExistsError
from recipezoo.core.lean import trainer_extras
from recipezoo.core.logs import route_lightning_logs
from recipezoo.core.marks import mark
from recipezoo.core.seed import seed_everything
from recipezoo.core.validate import bash_override, check_arguments, check_values

log = logging.getLogger("recipezoo")


def _instantiate(node: Any, **kwargs: Any) -> Any:
    """Hydra's ``instantiate``, but a :class:`UserError` raised inside arrives as itself, not wrapped in Hydra's
    ``InstantiationException`` ("Error in call to target ...")."""
    try:
        return instantiate(node, **kwargs)
    except Exception as e:
        user = user_error_in(e)
        if user is None or user is e:
            raise
        raise user from None


def _instantiate_all(node: DictConfig | dict | None) -> list[Any]:
    """Instantiate every non-null entry of a ``name: {_target_: ...}`` mapping (callbacks, loggers)."""
    return [_instantiate(v) for v in (node or {}).values() if v]


def is_ddp_child() -> bool:
    """True in the processes of ranks other than 0: started by Lightning's DDP launcher, or by torchrun / SLURM on
    any node (``RANK`` and ``GROUP_RANK`` are torchrun's, ``NODE_RANK`` Lightning's and SLURM's)."""
    return any(int(os.environ.get(k, "0") or 0) > 0 for k in ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "RANK"))


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuse to train into a folder that already holds a run's checkpoints or summary."""
    if overwrite or is_ddp_child():
        return
    taken = [
        p.name for p in (out / "checkpoints", out / "summary.json") if p.exists() and (p.is_file() or any(p.iterdir()))
    ]
    if taken:
        raise OutputExistsError(
            f"{out} already holds a run ({', '.join(taken)}); nothing was overwritten. Choose "
            "another hydra.run.dir, or pass overwrite=true to replace it."
        )


def check_resume(cfg: DictConfig) -> dict[str, Any] | None:
    """The checkpoint ``ckpt_path`` names, read (lazily) before anything is built; :class:`CheckpointError` when it
    was trained by another recipe or task, which resuming cannot continue."""
    if not cfg.get("ckpt_path"):
        return None
    ckpt = ckpt_io.read(cfg.ckpt_path)
    theirs = ckpt_io.config_of(ckpt)
    their_recipe, our_recipe = theirs.get("recipe_name"), cfg.get("recipe_name")
    their_target = OmegaConf.select(theirs, "model._target_", default=None)
    our_target = OmegaConf.select(cfg, "model._target_", default=None)
    if (their_recipe and our_recipe and their_recipe != our_recipe) or (
        their_target and our_target and their_target != our_target
    ):
        from recipezoo.core.registry import task_for_module

        spec = task_for_module(their_target) if their_target else None
        task = spec.name if spec is not None else their_target
        raise CheckpointError(
            f"this checkpoint was trained by recipe {their_recipe} (task {task}); this run is recipe {our_recipe}, "
            f"which cannot resume it. Resume it with its own recipe: +recipe={their_recipe} "
            f"{bash_override('ckpt_path', str(cfg.ckpt_path))}"
        )
    return ckpt


def build(cfg: DictConfig, ckpt: dict[str, Any] | None = None) -> tuple[L.LightningDataModule, L.LightningModule]:
    """Instantiate the DataModule, fill ``cfg.data_info`` from it, then instantiate the LightningModule.

    ``ckpt``: the checkpoint being resumed (read by :func:`check_resume`), if any.
    """
    datamodule = _instantiate(cfg.data)
    saved: dict[str, Any] = {}
    if cfg.get("ckpt_path"):
        # Resuming: the data adopts what the checkpoint's data fitted (labels, preprocessing); the DataModule
        # raises a clear error when the data does not fit it.
        saved = ckpt_io.restore_info(ckpt if ckpt is not None else ckpt_io.read(cfg.ckpt_path))
        if hasattr(datamodule, "restore"):
            datamodule.restore(saved)
    datamodule.prepare_data()
    datamodule.setup("fit")
    mark("data ready")
    with open_dict(cfg):
        cfg.data_info = datamodule.info
    if saved.get("num_classes") not in (None, cfg.data_info.get("num_classes")):
        raise CheckpointError(
            f"label-count mismatch: the checkpoint {cfg.ckpt_path} has {saved['num_classes']} "
            f"classes, the data {cfg.data_info['num_classes']}."
        )
    module = _instantiate(cfg.model, _convert_="all")
    mark("model built")
    return datamodule, module


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and test the configured recipe; write checkpoints, metrics and ``summary.json`` to the run folder.

    Returns:
        The summary: run folder, checkpoint paths, best validation score, test metrics, wall time.
    """
    start = time.perf_counter()
    mark("imports done")
    route_lightning_logs()
    # Mistakes in the config cost a fraction of a second here, not a data load and a model build.
    check_values(cfg)
    check_arguments(cfg)
    check_accelerator(cfg.trainer)
    out = Path(cfg.paths.output_dir)
    if cfg.get("train", True):
        check_output_dir(out, cfg.get("overwrite", False))
    resumed = check_resume(cfg)
    if cfg.trainer.get("sync_batchnorm") and (cfg.trainer.get("accelerator") == "cpu" or not torch.cuda.is_available()):
        log.info("sync_batchnorm is a GPU feature: turned off for this CPU run.")
        with open_dict(cfg):
            cfg.trainer.sync_batchnorm = False
    seed_everything(cfg.seed, cfg.get("deterministic", False))
    datamodule, module = build(cfg, resumed)
    del resumed  # its tensors are mapped lazily; Lightning reads the file again when it resumes
    if not is_ddp_child():
        # The fully resolved config, data_info included (Hydra's .hydra/config.yaml keeps the interpolations).
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, out / "config.yaml", resolve=True)

    callbacks_cfg = dict(cfg.get("callbacks") or {})
    # trainer.enable_progress_bar=false / enable_model_summary=false also drop the matching callbacks.
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks_cfg.pop("progress_bar", None)
    if not cfg.trainer.get("enable_model_summary", True):
        callbacks_cfg.pop("model_summary", None)
    if cfg.trainer.get("fast_dev_run"):  # a smoke test writes no checkpoints (Lightning would still save last.ckpt)
        callbacks_cfg.pop("model_checkpoint", None)
        callbacks_cfg.pop("last_checkpoint", None)
    callbacks = _instantiate_all(callbacks_cfg)
    callbacks.append(ckpt_io.ConfigInCheckpoint(OmegaConf.to_container(cfg, resolve=True)))
    loggers = _instantiate_all(cfg.get("logger"))
    quiet_fresh_csv_logs(out)
    trainer = build_trainer(cfg.trainer, callbacks, loggers)
    mark("trainer built")

    # Fine-tuning a pretrained backbone: the linear-probe baseline and the new head's initialisation.
    transfer = probe.before_fit(cfg, datamodule, module, trainer)
    mark("probe done")

    fit_time = 0.0
    if cfg.get("train", True):
        fit_start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
        fit_time = time.perf_counter() - fit_start

    ckpt_cb = trainer.checkpoint_callback
    best = ckpt_cb.best_model_path if ckpt_cb is not None and ckpt_cb.best_model_path else None
    test_metrics: dict[str, float] = {}
    nothing = ""
    baseline: dict[str, Any] | None = None
    if cfg.get("test", True):
        results = trainer.test(
            module, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=trainer.is_global_zero
        )
        test_metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
        nothing = _evaluated_nothing(test_metrics)
        if cfg.get("baseline") and trainer.is_global_zero:
            # A classical baseline trained on the same split and scored with the same metrics, reported beside the
            # run (e.g. gradient-boosted trees for tabular data): is deep learning worth it here?
            baseline = instantiate(cfg.baseline)(datamodule)
            log.info("Baseline: %s", ", ".join(f"{k}={v:.4f}" for k, v in sorted(baseline["test"].items())))
    if transfer.probe is not None and trainer.is_global_zero:
        baseline = dict(transfer.probe.summary)
        if best and transfer.baseline_state is not None:
            baseline["artifact"] = probe.save_baseline_checkpoint(
                best, transfer.baseline_state, str(Path(best).with_name("baseline.ckpt"))
            )
        log.info("Linear probe test: %s", ", ".join(f"{k}={v:.4f}" for k, v in sorted(baseline["test"].items())))
    if baseline is not None:
        baseline["beats_model_on_val"] = _baseline_wins(baseline, cfg.monitor, ckpt_cb)

    # Steps taken by every rank (gathered so the summary shows that all of them trained).
    steps = trainer.strategy.all_gather(torch.tensor(trainer.global_step)).reshape(-1).tolist()
    summary = {
        "recipe": cfg.get("recipe_name"),
        "run_dir": str(out),
        "best_checkpoint": best,
        "last_checkpoint": (
            str(Path(ckpt_cb.dirpath) / "last.ckpt")
            if ckpt_cb is not None and ckpt_cb.dirpath and (Path(ckpt_cb.dirpath) / "last.ckpt").exists()
            else None
        ),
        "monitor": cfg.monitor.metric,
        "best_score": float(ckpt_cb.best_model_score)
        if ckpt_cb is not None and ckpt_cb.best_model_score is not None
        else None,
        "epochs": trainer.current_epoch,
        "global_steps_per_rank": steps,
        "world_size": trainer.world_size,
        "test": test_metrics,
        **({"baseline": baseline} if baseline is not None else {}),
        "fit_time_s": round(fit_time, 2),
        "wall_time_s": round(time.perf_counter() - start, 2),
    }
    summary = strict_json(summary)
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
        _report(summary, out)
    if nothing:
        raise DataError(f"the test split evaluated nothing: {nothing} (summary: {out / 'summary.json'}).")
    return summary


def _baseline_wins(baseline: dict[str, Any], monitor: DictConfig, ckpt_cb: Any) -> bool | None:
    """Whether the baseline's validation score on the monitored metric beats the model's best (None: not
    comparable, e.g. no validation score on either side)."""
    theirs = (baseline.get("val") or {}).get(monitor.metric)
    ours = getattr(ckpt_cb, "best_model_score", None) if ckpt_cb is not None else None
    if theirs is None or ours is None or not math.isfinite(float(theirs)) or not math.isfinite(float(ours)):
        return None
    return bool(float(theirs) > float(ours) if monitor.mode == "max" else float(theirs) < float(ours))


def _evaluated_nothing(metrics: dict[str, float]) -> str:
    """Why a test run measured nothing (no metric, or every metric NaN), or an empty string."""
    if not metrics:
        return "no test metric was logged (an empty test split, or no example the task can score)"
    if all(not math.isfinite(v) for v in metrics.values()):
        return f"every test metric is NaN or infinite ({', '.join(sorted(metrics))})"
    return ""


def _round(value: float) -> float | None:
    # Metrics come from float32 tensors: 7 significant digits is all they hold (no test/f1=1.0000001192...).
    return float(f"{value:.7g}") if math.isfinite(value) else None


def strict_json(node: Any) -> Any:
    """``node`` with every float rounded to the 7 significant digits a float32 metric holds and NaN / infinity
    replaced by ``None``: what strict JSON (``allow_nan=False``) can hold and every reader parses."""
    if isinstance(node, float):
        return _round(node)
    if isinstance(node, dict):
        return {k: strict_json(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [strict_json(v) for v in node]
    return node


def check_accelerator(trainer_cfg: DictConfig) -> None:
    """:class:`ConfigError` before anything is built when ``trainer.accelerator`` names hardware this machine lacks
    (``trainer=gpu`` on a machine without a GPU), with the override that works here."""
    name = str(trainer_cfg.get("accelerator", "auto"))
    if name in ("auto", "cpu"):
        return
    from lightning.pytorch.accelerators import AcceleratorRegistry

    # "gpu" is Lightning's alias for whichever GPU backend this machine has (CUDA, else Apple's MPS).
    names = ["cuda", "mps"] if name == "gpu" else [name]
    known = [AcceleratorRegistry[n]["accelerator"] for n in names if n in AcceleratorRegistry]
    if not known:
        return  # not one Lightning knows by name: the Trainer reports it
    if not any(accelerator.is_available() for accelerator in known):
        kind = {"gpu": "a CUDA or Apple GPU", "cuda": "a CUDA GPU", "mps": "an Apple-silicon GPU"}.get(name, name)
        raise ConfigError(
            f"trainer.accelerator={name} needs {kind}, and this machine has none. Train on the CPU with trainer=cpu "
            "(or trainer.accelerator=cpu)."
        )


def build_trainer(trainer_cfg: DictConfig, callbacks: list[Any], loggers: list[Any]) -> L.Trainer:
    """The Trainer; what Lightning refuses while constructing it (devices this machine lacks, an unknown precision
    or strategy) is a :class:`ConfigError` of one line, with the override to change."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return _instantiate(trainer_cfg, callbacks=callbacks, logger=loggers or False, **trainer_extras(trainer_cfg))
    except Exception as e:
        cause = e
        while type(cause).__name__ == "InstantiationException" and cause.__cause__ is not None:
            cause = cause.__cause__
        if not isinstance(cause, MisconfigurationException | ValueError):
            raise
        text = " ".join(str(cause).split())
        lower = text.lower()
        if "strateg" in lower:
            fix = " Choose another trainer.strategy (auto, ddp, ddp_spawn, fsdp, ...)."
        elif "device" in lower:
            fix = " Try trainer.devices=1."  # more devices than the machine has, or an id it lacks
        elif "gpu" in lower or "cuda" in lower:
            fix = " Try trainer=cpu."
        else:
            fix = ""
        raise ConfigError(f"Lightning refused the trainer settings: {text}{fix}") from None


def quiet_fresh_csv_logs(out: Path) -> None:
    """Lightning's CSV logger warns "Previous log files in this directory will be deleted" whenever its folder (the
    run folder) holds any file, which a new run's own ``train.log`` always is. Said only when there is a previous
    ``metrics.csv`` (a run with ``overwrite=true``), in our words."""
    warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
    if (out / "metrics.csv").is_file() and not is_ddp_child():
        log.info("overwrite=true: %s of the previous run is replaced.", out / "metrics.csv")


def _report(summary: dict[str, Any], out: Path) -> None:
    lines = [f"Run folder:       {out}"]
    if summary["best_checkpoint"]:
        lines.append(
            f"Best checkpoint:  {summary['best_checkpoint']} ({summary['monitor']}={summary['best_score']:.4f})"
            if summary["best_score"] is not None
            else ""
        )
    if summary["last_checkpoint"]:
        lines.append(f"Last checkpoint:  {summary['last_checkpoint']}")
    if (out / "metrics.csv").exists():
        lines.append(f"Metrics:          {out / 'metrics.csv'}")
    lines.append(f"Summary:          {out / 'summary.json'}")
    if summary["test"]:
        shown = (f"{k}={v:.4f}" if v is not None else f"{k}=nan" for k, v in sorted(summary["test"].items()))
        lines.append("Test:             " + ", ".join(shown))
    lines.append(f"Wall time:        {summary['wall_time_s']:.1f} s")
    if summary["best_checkpoint"]:
        lines.append(f"Export:           python scripts/export.py ckpt={summary['best_checkpoint']} format=onnx")
    baseline = summary.get("baseline") or {}
    name = baseline.get("name", "baseline")
    monitor = summary["monitor"]
    theirs = (baseline.get("val") or {}).get(monitor)
    if baseline.get("test"):
        shown = (f"{k}={v:.4f}" for k, v in sorted(baseline["test"].items()) if v is not None)
        lines.append(f"Baseline test:    {name}: " + ", ".join(shown))
    if baseline.get("beats_model_on_val"):
        keep = (
            f" Keep it: python scripts/export.py ckpt={summary['best_checkpoint']} model=baseline format=onnx"
            if baseline.get("artifact") and summary["best_checkpoint"]
            else ""
        )
        lines.append(
            f"Baseline wins:    the {name} beats the model on validation ({monitor} {theirs:.4f} against "
            f"{summary['best_score']:.4f}).{keep}"
        )
    elif baseline.get("beats_model_on_val") is False and theirs is not None:
        verb = "ties with" if theirs == summary["best_score"] else "beats"
        lines.append(
            f"Baseline:         the model {verb} the {name} on validation "
            f"({monitor} {summary['best_score']:.4f} against {theirs:.4f})."
        )
    log.info("\n" + "\n".join(line for line in lines if line))
