"""Train, then test, one recipe: the function behind ``python train.py``."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from recipezoo.core import checkpoint as ckpt_io
from recipezoo.core.errors import CheckpointError, OutputExistsError
from recipezoo.core.lean import trainer_extras
from recipezoo.core.logs import route_lightning_logs
from recipezoo.core.marks import mark
from recipezoo.core.seed import seed_everything

log = logging.getLogger("recipezoo")


def _instantiate_all(node: DictConfig | dict | None) -> list[Any]:
    """Instantiate every non-null entry of a ``name: {_target_: ...}`` mapping (callbacks, loggers)."""
    return [instantiate(v) for v in (node or {}).values() if v]


def is_ddp_child() -> bool:
    """True in the processes Lightning's DDP launcher starts for ranks other than 0."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 or int(os.environ.get("NODE_RANK", "0")) > 0


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


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """Instantiate the DataModule, fill ``cfg.data_info`` from it, then instantiate the LightningModule."""
    datamodule = instantiate(cfg.data)
    saved: dict[str, Any] = {}
    if cfg.get("ckpt_path"):
        # Resuming: the data adopts what the checkpoint's data fitted (labels, preprocessing); the DataModule
        # raises a clear error when the data does not fit it.
        saved = ckpt_io.restore_info(ckpt_io.read(cfg.ckpt_path))
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
    module = instantiate(cfg.model, _convert_="all")
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
    out = Path(cfg.paths.output_dir)
    if cfg.get("train", True):
        check_output_dir(out, cfg.get("overwrite", False))
    if cfg.trainer.get("sync_batchnorm") and (cfg.trainer.get("accelerator") == "cpu" or not torch.cuda.is_available()):
        log.info("sync_batchnorm is a GPU feature: turned off for this CPU run.")
        with open_dict(cfg):
            cfg.trainer.sync_batchnorm = False
    seed_everything(cfg.seed, cfg.get("deterministic", False))
    datamodule, module = build(cfg)
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
    trainer: L.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, **trainer_extras(cfg.trainer)
    )
    mark("trainer built")

    fit_time = 0.0
    if cfg.get("train", True):
        fit_start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
        fit_time = time.perf_counter() - fit_start

    ckpt_cb = trainer.checkpoint_callback
    best = ckpt_cb.best_model_path if ckpt_cb is not None and ckpt_cb.best_model_path else None
    test_metrics: dict[str, float] = {}
    baseline: dict[str, Any] | None = None
    if cfg.get("test", True):
        results = trainer.test(
            module, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=trainer.is_global_zero
        )
        test_metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
        if cfg.get("baseline") and trainer.is_global_zero:
            # A classical baseline trained on the same split and scored with the same metrics, reported beside the
            # run (e.g. gradient-boosted trees for tabular data): is deep learning worth it here?
            baseline = instantiate(cfg.baseline)(datamodule)
            log.info("Baseline: %s", ", ".join(f"{k}={v:.4f}" for k, v in sorted(baseline["test"].items())))

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
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        _report(summary, out)
    return summary


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
        lines.append("Test:             " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(summary["test"].items())))
    lines.append(f"Wall time:        {summary['wall_time_s']:.1f} s")
    if summary["best_checkpoint"]:
        lines.append(f"Export:           python scripts/export.py ckpt={summary['best_checkpoint']} format=onnx")
    log.info("\n" + "\n".join(line for line in lines if line))
