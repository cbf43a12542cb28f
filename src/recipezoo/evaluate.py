"""Evaluate a checkpoint on any split of its data, or of other data given by overrides."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from recipezoo.core import checkpoint as ckpt_io
from recipezoo.core.errors import ConfigError, close_matches, new_output_file
from recipezoo.core.logs import route_lightning_logs

log = logging.getLogger("recipezoo")


def evaluate(
    ckpt: str | Path,
    split: str = "test",
    overrides: Sequence[str] = (),
    output: str | Path | None = None,
    accelerator: str = "auto",
) -> dict[str, float]:
    """Test metrics of ``ckpt`` on ``split`` (train, val or test), data configured as in training plus overrides.

    Args:
        ckpt: a checkpoint written by ``train.py``.
        split: which split to evaluate; evaluation always uses the eval transform.
        overrides: ``data.<key>=value`` overrides, e.g. ``data.root=/other/photos``.
        output: optional JSON file for the metrics (never overwritten).
        accelerator: Lightning accelerator.

    Returns:
        Metrics named ``<split>/<metric>``.
    """
    import lightning.pytorch as L
    from hydra.utils import instantiate

    if split not in ("train", "val", "test"):
        raise ConfigError(f"split must be train, val or test, got '{split}'.")
    out = new_output_file(output) if output else None
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
        out.write_text(
            json.dumps(
                {
                    "checkpoint": str(ckpt),
                    "split": split,
                    "metrics": metrics,
                    **({"labels": list(module.labels)} if hasattr(module, "labels") else {}),
                    **(
                        {"confusion_matrix": module.test_confusion_matrix}
                        if hasattr(module, "test_confusion_matrix")
                        else {}
                    ),
                },
                indent=2,
            )
            + "\n"
        )
    return metrics
