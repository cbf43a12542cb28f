"""Shared fixtures: compose the real Hydra config exactly as train.py does, made tiny and offline."""

from __future__ import annotations

import atexit
import functools
import logging
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
_TMP = Path(tempfile.mkdtemp(prefix="recipezoo-tests-"))
atexit.register(shutil.rmtree, _TMP, True)


@functools.cache
def tiny_bert() -> str:
    """A tiny randomly initialised BERT with a WordPiece vocabulary covering the NLP synthetic twins, saved as a
    Hugging Face folder (what ``backbone.pretrained=/path/to/folder`` loads)."""
    return str(make_tiny_bert(_TMP / "tiny-bert"))


def make_tiny_bert(folder: Path, extra_words: Sequence[str] = (), seed: int = 0) -> Path:
    import string

    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    from recipezoo.nlp.data import SYNTHETIC_WORDS

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    words = [w for w in dict.fromkeys([*SYNTHETIC_WORDS, *extra_words]) if w not in chars]
    vocab = specials + chars + words + ["##" + c for c in string.ascii_lowercase + string.digits]
    folder.mkdir(parents=True, exist_ok=True)
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    return folder


def _tiny_nlp(recipe: str) -> list[str]:
    common = ["data.synthetic_size=160", "data.batch_size=16", f"data.cache_dir={_TMP / 'nlp-cache'}"]
    if recipe.endswith("_scratch"):
        return [*common, "data.vocab_size=200"]
    return [*common, f"backbone.name={tiny_bert()}", f"backbone.pretrained={tiny_bert()}"]


# Per domain (the first part of a recipe name): what makes its recipes tiny (a list, or a function of the recipe).
TINY_BY_DOMAIN = {
    "vision": TINY,
    "fraud": ["data.synthetic_rows=800", "data.synthetic_positive_rate=0.1", "data.batch_size=128"],
    "nlp": _tiny_nlp,
    "recsys": lambda recipe: [
        "data.synthetic_users=60",
        "data.synthetic_items=40",
        "data.synthetic_cold_items=5",
        "data.batch_size=64",
        f"backbone.name={tiny_text_encoder()}",
        "backbone.pretrained=false",
    ],
    "speech": ["data.batch_size=8", "data.synthetic_size=12"],
}
# Per recipe, added after its domain's overrides: where recipes of one domain need different tiny backbones.
TINY_BY_RECIPE = {
    "speech/audio_classification": ["backbone.name=audio_resnet_tiny"],
    "speech/audio_classification_wav2vec2": ["backbone.name=wav2vec2_tiny", "backbone.pretrained=false"],
    "speech/asr_ctc": ["backbone.name=conformer_tiny"],
    "speech/asr_ctc_wav2vec2": ["backbone.name=wav2vec2_tiny", "backbone.pretrained=false"],
    # torch.compile on CPU takes a minute; the compiled path is the same network.
    "vision/cifar10_speedrun": [
        "backbone.name=speedrun_net_tiny",
        "model.compile=false",
        "data.batch_size=32",
        "data.synthetic_size=320",
    ],
}


@functools.cache
def tiny_text_encoder() -> Path:
    """A tiny randomly initialised BERT folder (config and a WordPiece vocabulary covering the recommendation twin's
    titles; no weights: recipes load it with ``backbone.pretrained=false``)."""
    from transformers import BertConfig, BertTokenizer

    from recipezoo.recsys.data import _CLUSTER_WORDS, _TITLE_STARTS

    words = sorted({w for _, ws in _CLUSTER_WORDS for w in ws} | {w for s in _TITLE_STARTS for w in s.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "(", ")", *map(str, range(10)), *words]
    path = _TMP / "tiny-text-encoder"
    path.mkdir(parents=True, exist_ok=True)
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(str(path))
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64,
    )  # fmt: skip
    config.save_pretrained(str(path))
    return path


def tiny(recipe: str) -> list[str]:
    """The overrides that make ``recipe`` tiny: its domain's entry of TINY_BY_DOMAIN (a list, or a function of the
    recipe), then TINY_BY_RECIPE's."""
    entry = TINY_BY_DOMAIN[recipe.split("/")[0]]
    return list(entry(recipe) if callable(entry) else entry) + TINY_BY_RECIPE.get(recipe, [])


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
