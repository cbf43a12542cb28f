"""Evaluate a checkpoint on any split of its data, or of other data given by overrides."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from recipezoo.core import checkpoint as ckpt_io
from recipezoo.core.errors import ConfigError, close_matches
from recipezoo.core.logs import route_lightning_logs
from recipezoo.core.outputs import new_output_file

log = logging.getLogger("recipezoo")


def is_report(path: Path) -> bool:
    """Whether ``path`` holds a report :func:`evaluate` wrote (a JSON object with its checkpoint, split and
    metrics), which ``overwrite=true`` may replace."""
    report = json.loads(path.read_text())
    return isinstance(report, dict) and {"checkpoint", "split", "metrics"} <= set(report)


def evaluate(
    ckpt: str | Path,
    split: str = "test",
    overrides: Sequence[str] = (),
    output: str | Path | None = None,
    accelerator: str = "auto",
    overwrite: bool = False,
) -> dict[str, float]:
    """Test metrics of ``ckpt`` on ``split`` (train, val or test), data configured as in training plus overrides.

    Args:
        ckpt: a checkpoint written by ``train.py``.
        split: which split to evaluate; evaluation always uses the eval transform.
        overrides: ``data.<key>=value`` overrides, e.g. ``data.root=/other/photos``.
        output: optional JSON file for the metrics.
        accelerator: Lightning accelerator.
        overwrite: replace ``output`` when it is a report evaluate wrote (any other file is never overwritten).

    Returns:
        Metrics named ``<split>/<metric>``.
    """
    import lightning.pytorch as L
    from hydra.utils import instantiate

    if split not in ("train", "val", "test"):
        raise ConfigError(f"split must be train, val or test, got '{split}'.")
    out = new_output_file(output, overwrite, recognise=is_report, default_name="metrics.json") if output else None
    module, cfg = ckpt_io.load_module(ckpt)
    data_cfg = cfg.data
    OmegaConf.set_struct(data_cfg, True)
    for ov in overrides:
        key, _, value = ov.partition("=")
        if not key.startswith("data."):
            raise ConfigError(f"evaluate takes data.<key>=value overrides only, got '{ov}'.")
        try:
            OmegaConf.update(data_cfg, key[len("data.") :], OmegaConf.from_dotlist([f"v={value}"]).v, merge=True)
        except (ConfigAttributeError, ConfigKeyError):
            raise ConfigError(
                f"unknown data key '{key}'.{close_matches(key[5:], list(data_cfg))} "
                f"Keys: {', '.join(k for k in data_cfg if not k.startswith('_'))}."
            ) from None
    OmegaConf.set_struct(data_cfg, False)
    datamodule = instantiate(data_cfg)
    # The data adopts what training fitted (label indices, preprocessing): never refitted on evaluation data.
    info = OmegaConf.to_container(cfg.data_info, resolve=True)
    datamodule.restore({**info, "files": module.files} if module.files else info)
    datamodule.prepare_data()
    datamodule.setup("test")
    loader = datamodule.eval_dataloader(split)
    route_lightning_logs()
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False, enable_model_summary=False
    )
    results = trainer.test(module, dataloaders=loader, verbose=False)[0]
    metrics = {f"{split}/{k.split('/', 1)[1]}": float(v) for k, v in results.items()}
    log.info("%s on %s: %s", Path(ckpt).name, split, ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "checkpoint": str(ckpt),
            "split": split,
            "metrics": metrics,
            **({"labels": list(module.labels)} if hasattr(module, "labels") else {}),
            **({"confusion_matrix": module.test_confusion_matrix} if hasattr(module, "test_confusion_matrix") else {}),
        }
        # Strict JSON: a metric that could not be computed (NaN) is written as null, which every reader parses.
        out.write_text(json.dumps(_finite(report), indent=2, allow_nan=False) + "\n")
    return metrics


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
