"""Shared fixtures: compose the real Hydra config exactly as train.py does, made tiny and offline."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
RECIPES = sorted(str(p.relative_to(ROOT / "recipes").with_suffix("")) for p in (ROOT / "recipes").rglob("*.yaml"))

# What every test run gets: CPU, synthetic data, no worker processes, no progress bar or rich summary.
FAST = [
    "trainer=cpu",
    "data.synthetic=true",
    "data.num_workers=0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]
# A tiny backbone for recipes whose own backbone is large or pretrained.
TINY = ["backbone.name=convnet_tiny", "backbone.pretrained=false", "data.image_size=16", "data.resize_size=16"]
# Per domain (the first part of a recipe name): what makes its recipes tiny.
TINY_BY_DOMAIN = {
    "vision": TINY,
    "fraud": ["data.synthetic_rows=800", "data.synthetic_positive_rate=0.1", "data.batch_size=128"],
    "speech": ["data.batch_size=8", "data.synthetic_size=12"],
}
# Per recipe, added after its domain's overrides: where recipes of one domain need different tiny backbones.
TINY_BY_RECIPE = {
    "speech/audio_classification": ["backbone.name=audio_resnet_tiny"],
    "speech/audio_classification_wav2vec2": ["backbone.name=wav2vec2_tiny", "backbone.pretrained=false"],
    "speech/asr_ctc": ["backbone.name=conformer_tiny"],
    "speech/asr_ctc_wav2vec2": ["backbone.name=wav2vec2_tiny", "backbone.pretrained=false"],
}


def tiny(recipe: str) -> list[str]:
    """The overrides that make ``recipe`` tiny (its domain's entry of TINY_BY_DOMAIN, then TINY_BY_RECIPE's)."""
    return TINY_BY_DOMAIN[recipe.split("/")[0]] + TINY_BY_RECIPE.get(recipe, [])


def compose_config(overrides: Sequence[str], output_dir: Path, fast: bool = True) -> DictConfig:
    """The config train.py would run with these overrides, writing into ``output_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*(FAST if fast else []), *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.trainer.default_root_dir = str(output_dir)
        del cfg.hydra
    return cfg


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """``make_cfg(*overrides, run="run")`` -> a composed, tiny, offline config writing into tmp_path/run."""

    def make(*overrides: str, run: str = "run", fast: bool = True) -> DictConfig:
        return compose_config(list(overrides), tmp_path / run, fast)

    return make


@pytest.fixture(autouse=True)
def _quiet_lightning() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
