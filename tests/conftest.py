"""Shared fixtures: compose the real Hydra config exactly as train.py does, made tiny and offline."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
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
# A tiny random BERT folder (config + WordPiece vocab, no weights) for text features; built on first use by tiny().
TINY_TEXT_ENCODER = Path(tempfile.gettempdir()) / f"recipezoo-tiny-bert-{os.getpid()}"
TINY_BY_DOMAIN = {
    "vision": TINY,
    "fraud": ["data.synthetic_rows=800", "data.synthetic_positive_rate=0.1", "data.batch_size=128"],
    "recsys": [
        "data.synthetic_users=60",
        "data.synthetic_items=40",
        "data.synthetic_cold_items=5",
        "data.batch_size=64",
        f"backbone.name={TINY_TEXT_ENCODER}",
        "backbone.pretrained=false",
    ],
}


def tiny_text_encoder(path: Path = TINY_TEXT_ENCODER) -> Path:
    """Save a tiny randomly initialised BERT (config and tokenizer) to ``path`` once; return ``path``."""
    if (path / "config.json").is_file():
        return path
    from transformers import BertConfig, BertTokenizerFast

    from recipezoo.recsys.data import _CLUSTER_WORDS, _TITLE_STARTS

    words = sorted({w for _, ws in _CLUSTER_WORDS for w in ws} | {w for s in _TITLE_STARTS for w in s.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "(", ")", *map(str, range(10)), *words]
    tmp = Path(tempfile.mkdtemp(prefix="tiny-bert-"))
    (tmp / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(tmp / "vocab.txt")).save_pretrained(str(tmp))
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64,
    )  # fmt: skip
    config.save_pretrained(str(tmp))
    try:
        tmp.rename(path)
    except OSError:  # built meanwhile by another test process
        shutil.rmtree(tmp, ignore_errors=True)
    atexit.register(shutil.rmtree, path, True)
    return path


def tiny(recipe: str) -> list[str]:
    """The overrides that make ``recipe`` tiny (its domain's entry of TINY_BY_DOMAIN)."""
    domain = recipe.split("/")[0]
    if domain == "recsys":
        tiny_text_encoder()  # what the recsys overrides' backbone.name points at
    return TINY_BY_DOMAIN[domain]


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
