"""Checks of a composed run config, made before anything is built: a typo or a wrong value costs well under a second.

Two kinds of check live here, both torch-free so ``train.py`` can run them before importing Lightning:

* :func:`check_values`: the types and ranges of the keys every run reads (``trainer.max_epochs``,
  ``data.batch_size``, ``optimizer.lr``...), each with an example of a valid value. Keys a config does not have are
  skipped, so one table serves every domain.
* :func:`check_arguments`: the keys of each instantiated node (``data``, ``model``, ``trainer``) against the
  signature of its ``_target_``, which catches ``+trainer.max_epoch=3`` (Hydra's own advice for a typo) before it
  ends in a ``TypeError`` deep inside the Trainer.

:func:`bash_override` writes an override so that it survives bash *and* Hydra's override grammar, for messages that
suggest one.
"""

from __future__ import annotations

import difflib
import inspect
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from recipezoo.core.errors import ConfigError, close_matches

_MISSING = object()


@dataclass(frozen=True)
class Rule:
    """What one key accepts.

    Attributes:
        kind: ``int`` (a whole number), ``number`` (int or float), ``bool``, ``fraction`` (an int count or a float
            fraction, as Lightning's ``limit_*_batches``), or ``choice``.
        low: the smallest valid value (inclusive unless ``low_open``).
        high: the largest valid value (inclusive unless ``high_open``).
        nullable: ``null`` is valid.
        words: strings also accepted (``auto``), or the choices of a ``choice``.
        example: a valid value, shown in the message as a fix.
        why: what the key means, when the range needs saying.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False
    words: tuple[Any, ...] = ()
    example: str = ""
    why: str = ""

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if any(type(value) is type(w) and value == w for w in self.words):  # True is not 1 here
            return True
        if self.kind == "choice":
            return False
        if self.kind == "bool":
            return isinstance(value, bool)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.kind == "fraction" and isinstance(value, float):
            return 0.0 <= value <= 1.0
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def expected(self) -> str:
        """What the key accepts, in words."""
        if self.kind == "choice":
            return "one of " + ", ".join(dict.fromkeys(w if isinstance(w, str) else _shown(w) for w in self.words))
        if self.kind == "bool":
            return "true or false"
        what = {"int": "a whole number", "number": "a number", "fraction": "a whole number of batches"}[self.kind]
        if self.low is not None and self.high is not None:
            opening, closing = "(" if self.low_open else "[", ")" if self.high_open else "]"
            what += f" in {opening}{_num(self.low)}, {_num(self.high)}{closing}"
        elif self.low is not None:
            what += f" {'>' if self.low_open else '>='} {_num(self.low)}"
        elif self.high is not None:
            what += f" {'<' if self.high_open else '<='} {_num(self.high)}"
        if self.kind == "fraction":
            what += " or a fraction in [0.0, 1.0]"
        extras = [_shown(w) for w in self.words] + (["null"] if self.nullable else [])
        return what + (f", or {' or '.join(extras)}" if extras else "")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _int(low: float | None = None, example: str = "", **kw: Any) -> Rule:
    return Rule("int", low=low, example=example, **kw)


def _number(low: float | None = None, high: float | None = None, example: str = "", **kw: Any) -> Rule:
    return Rule("number", low=low, high=high, example=example, **kw)


def _share(example: str, **kw: Any) -> Rule:
    """A share of a split: 0 <= x < 1."""
    return Rule("number", low=0.0, high=1.0, high_open=True, example=example, **kw)


_BOOL_TRUE = Rule("bool", example="true")
_BOOL_FALSE = Rule("bool", example="false")
_LIMIT = Rule("fraction", low=0, nullable=True, example="10", why="batches per epoch (an int) or a share (a float)")
# Lightning 2.x precision names (lightning.fabric.connector._PRECISION_INPUT).
PRECISIONS = (
    "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "transformer-engine",
    "transformer-engine-float16", "32", "16", "bf16", "64", 32, 16, 64,
)  # fmt: skip
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "xla", "hpu")

# The keys every run reads, by full name; a config without one of them skips it.
RULES: dict[str, Rule] = {
    "seed": _int(0, high=2**32 - 1, example="42"),
    "train": _BOOL_TRUE,
    "test": _BOOL_TRUE,
    "overwrite": _BOOL_FALSE,
    "deterministic": Rule("bool", words=("warn",), example="false"),
    "monitor.mode": Rule("choice", words=("min", "max"), example="max"),
    "backbone.weights_only": _BOOL_TRUE,
    "trainer.max_epochs": _int(-1, nullable=True, example="10", why="-1: no limit"),
    "trainer.min_epochs": _int(0, nullable=True, example="1"),
    "trainer.max_steps": _int(-1, example="-1", why="-1: no limit"),
    "trainer.min_steps": _int(0, nullable=True, example="null"),
    "trainer.num_nodes": _int(1, example="1"),
    "trainer.check_val_every_n_epoch": _int(1, nullable=True, example="1"),
    "trainer.val_check_interval": Rule("fraction", low=1, nullable=True, example="0.25"),
    "trainer.log_every_n_steps": _int(1, example="10"),
    "trainer.accumulate_grad_batches": _int(1, example="1"),
    "trainer.gradient_clip_val": _number(0, nullable=True, example="1.0"),
    "trainer.num_sanity_val_steps": _int(-1, example="2"),
    "trainer.limit_train_batches": _LIMIT,
    "trainer.limit_val_batches": _LIMIT,
    "trainer.limit_test_batches": _LIMIT,
    "trainer.limit_predict_batches": _LIMIT,
    "trainer.fast_dev_run": Rule("int", low=0, words=(True, False), example="true"),
    "trainer.enable_progress_bar": _BOOL_TRUE,
    "trainer.enable_model_summary": _BOOL_TRUE,
    "trainer.enable_checkpointing": _BOOL_TRUE,
    "trainer.benchmark": Rule("bool", nullable=True, example="null"),
    "trainer.precision": Rule("choice", words=PRECISIONS, example="32-true"),
    "trainer.accelerator": Rule("choice", words=ACCELERATORS, example="cpu"),
    "optimizer.lr": _number(0, low_open=True, example="1e-3"),
    "optimizer.weight_decay": _number(0, example="0.01"),
    "optimizer.momentum": _number(0, 1, example="0.9"),
    "scheduler.warmup_fraction": _share("0.05"),
    "scheduler.min_lr_ratio": _number(0, 1, example="0.01"),
    "scheduler.pct_start": _number(0, 1, low_open=True, high_open=True, example="0.25"),
    "finetune.freeze_backbone_epochs": _int(0, example="0"),
    "finetune.backbone_lr_mult": _number(0, example="0.1"),
    "finetune.layer_decay": _number(0, 1, low_open=True, example="0.75"),
    "finetune.frozen_blocks": _int(0, example="0"),
    "finetune.gradual": _BOOL_FALSE,
    "finetune.freeze_bn": _BOOL_FALSE,
    "finetune.head_init": Rule("choice", words=("default", "zero", "probe"), example="zero"),
    "probe.enabled": _BOOL_FALSE,
    "probe.max_train_rows": _int(1, nullable=True, example="20000"),
    "data.batch_size": _int(1, example="32"),
    "data.eval_batch_size": _int(1, nullable=True, example="64"),
    "data.num_workers": _int(0, words=("auto",), example="0"),
    "data.val_fraction": _share("0.1"),
    "data.test_fraction": _share("0.1"),
    "data.max_bad_fraction": _number(0, 1, example="0.05"),
    "data.synthetic": _BOOL_FALSE,
    "data.download": _BOOL_FALSE,
    "data.image_size": _int(1, nullable=True, example="224"),
    "data.resize_size": _int(1, nullable=True, example="256"),
    "data.max_length": _int(2, example="128"),
    "data.vocab_size": _int(1, example="16000"),
    "data.sample_rate": _int(1, example="16000"),
    "data.clip_seconds": _number(0, low_open=True, nullable=True, example="1.0"),
    "data.min_seconds": _number(0, example="0.03"),
    "data.max_seconds": _number(0, low_open=True, example="30.0"),
    "data.preload_max_mb": _number(0, example="2048"),
    "data.cache_images": Rule("choice", words=("auto", True, False), example="auto"),
    "data.cache_max_mb": _number(0, example="2048"),
    "data.history_len": _int(0, example="0"),
    "data.negatives": _int(0, example="4"),
    "data.sampled_negatives": _int(0, example="100"),
    "data.min_user_interactions": _int(1, example="5"),
    "data.min_item_interactions": _int(1, example="5"),
    "data.synthetic_size": _int(1, nullable=True, example="400"),
    "data.synthetic_rows": _int(1, example="4000"),
    "data.synthetic_positive_rate": _number(0, 1, low_open=True, high_open=True, example="0.03"),
    "data.synthetic_users": _int(1, example="300"),
    "data.synthetic_items": _int(1, example="200"),
    "data.max_train_samples": Rule("fraction", low=1, nullable=True, example="1000"),
    "data.header": _BOOL_TRUE,
    "data.multi_label": _BOOL_FALSE,
    "data.lowercase": _BOOL_TRUE,
    "data.group_by_length": _BOOL_TRUE,
    "model.compile": _BOOL_FALSE,
}


def _select(cfg: DictConfig, key: str) -> Any:
    """The resolved value at ``key``; ``_MISSING`` when the config has no such key or it cannot be resolved yet
    (``${data_info...}`` before the data is read, ``${hydra:...}`` outside a run)."""
    try:
        return OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False)
    except OmegaConfBaseException:
        return _MISSING


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def check_values(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first key of :data:`RULES` whose value is of the wrong type or range,
    and for settings that would train or test nothing.

    The message names the key, what it accepts and a valid override to type instead.
    """
    for key, rule in RULES.items():
        value = _select(cfg, key)
        if value is _MISSING or isinstance(value, DictConfig | ListConfig) and rule.kind != "choice":
            continue
        if isinstance(value, DictConfig | ListConfig) or not rule.accepts(value):
            why = f" ({rule.why})" if rule.why else ""
            hint = close_matches(str(value), map(str, rule.words)) if rule.kind == "choice" else ""
            raise ConfigError(
                f"{key}={_shown(value)} is not valid: expected {rule.expected()}{why}.{hint} e.g. {key}={rule.example}"
            )
    _check_devices(_select(cfg, "trainer.devices"))
    fractions = [_select(cfg, f"data.{k}") for k in ("val_fraction", "test_fraction")]
    if all(isinstance(f, int | float) for f in fractions) and sum(fractions) >= 1:
        raise ConfigError(
            f"data.val_fraction={fractions[0]} and data.test_fraction={fractions[1]} leave nothing to train on; "
            "e.g. data.val_fraction=0.1 data.test_fraction=0.1"
        )
    if _select(cfg, "train") is True:
        if _select(cfg, "trainer.max_epochs") == 0:
            raise ConfigError(
                "trainer.max_epochs=0 would test an untrained model; train at least one epoch "
                "(e.g. trainer.max_epochs=1), or score a trained checkpoint with scripts/evaluate.py."
            )
        if _select(cfg, "trainer.limit_train_batches") in (0, 0.0):
            raise ConfigError(
                "trainer.limit_train_batches=0 trains on no batch at all; e.g. trainer.limit_train_batches=1.0"
            )
    if _select(cfg, "test") is True and _select(cfg, "trainer.limit_test_batches") in (0, 0.0):
        raise ConfigError(
            "trainer.limit_test_batches=0 tests on no batch at all; e.g. trainer.limit_test_batches=1.0, or test=false"
        )


def _check_devices(devices: Any) -> None:
    """``trainer.devices``: ``auto``, -1 (all), a count >= 1, a list of device ids, or ``"0,1"``."""
    if devices is _MISSING or devices is None or devices == "auto":
        return
    ok = False
    if isinstance(devices, int) and not isinstance(devices, bool):
        ok = devices == -1 or devices >= 1
    elif isinstance(devices, ListConfig | list):
        ok = len(devices) > 0 and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in devices)
    elif isinstance(devices, str):
        ok = re.fullmatch(r"-1|\d+|(\d+\s*,\s*)+\d*", devices.strip()) is not None and devices.strip() != "0"
    if not ok:
        raise ConfigError(
            f"trainer.devices={_shown(devices)} is not valid: expected auto, -1 (every device), a count >= 1 or a "
            "list of device ids such as [0,1]; e.g. trainer.devices=1"
        )


# -- keys against the signature of the node's target -----------------------------------------------------------
_HYDRA_KEYS = {"_target_", "_partial_", "_convert_", "_recursive_", "_args_"}
NODES = ("data", "model", "trainer")


def _locate(target: str) -> Callable[..., Any] | None:
    from hydra.utils import get_object

    try:
        return get_object(target)
    except Exception:  # an unimportable target is reported by instantiate itself, with its own message
        return None


def _parameters(fn: Callable[..., Any]) -> list[str] | None:
    """The keyword parameters ``fn`` accepts, or ``None`` when it takes ``**kwargs`` (anything goes)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]


def check_arguments(cfg: DictConfig, nodes: tuple[str, ...] = NODES) -> None:
    """Raise :class:`ConfigError` for a key of ``data``, ``model`` or ``trainer`` that its ``_target_`` does not
    take (e.g. ``+trainer.max_epoch=3``), naming the close matches among the arguments it does take.

    Imports each target (as instantiating it would); targets taking ``**kwargs`` are not checked.
    """
    for name in nodes:
        node = cfg.get(name)
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        fn = _locate(str(node._target_))
        params = _parameters(fn) if fn is not None else None
        if params is None:
            continue
        for key in node:
            if key in _HYDRA_KEYS or key in params:
                continue
            near = difflib.get_close_matches(str(key), params, n=3, cutoff=0.6)
            hint = (
                f" Did you mean: {', '.join(f'{name}.{n}' for n in near)}? (a key the config already has is set "
                f"without '+', e.g. {name}.{near[0]}=...)"
                if near
                else f" It takes: {', '.join(sorted(params))[:400]}."
            )
            raise ConfigError(f"unknown key '{name}.{key}': {node._target_} takes no argument '{key}'.{hint}")


# -- unknown keys in overrides -----------------------------------------------------------------------------------
def config_keys(cfg: DictConfig, prefix: str = "") -> Iterator[str]:
    """Every dotted key of ``cfg`` (nested mappings included; list items and ``hydra`` left out)."""
    for key in cfg.keys():
        if not prefix and key == "hydra":
            continue
        full = f"{prefix}{key}"
        yield full
        child = cfg._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            yield from config_keys(child, full + ".")


def target_parameters(cfg: DictConfig | None, node: str) -> list[str] | None:
    """The arguments the ``_target_`` of ``cfg.<node>`` takes (imports it), or ``None`` when unknown."""
    target = _select(cfg, f"{node}._target_") if cfg is not None and node else _MISSING
    if not isinstance(target, str):
        return None
    fn = _locate(target)
    return _parameters(fn) if fn is not None else None


def unknown_key_message(
    key: str, cfg: DictConfig | None, recipe: str | None = None, elsewhere: str = "", value: str = "..."
) -> str:
    """The one line for an override of a key ``cfg`` does not have, naming the close matches among its real keys:
    first among the keys beside it (``trainer.max_epoch`` -> ``trainer.max_epochs``), then anywhere (a misspelt
    parent). ``elsewhere`` says which other configs have the key (it replaces the list of the parent's keys)."""
    keys = list(config_keys(cfg)) if cfg is not None else []
    parent, _, leaf = key.rpartition(".")
    if leaf in (target_parameters(cfg, parent) or ()):
        return (
            f"'{key}' is an argument of {_select(cfg, f'{parent}._target_')} that the config does not set: "
            f"add it with a '+': +{key}={value}"
        )
    siblings = [k for k in keys if k.rpartition(".")[0] == parent and k != parent] if parent else []
    near = difflib.get_close_matches(leaf, [k.rpartition(".")[2] for k in siblings], n=4, cutoff=0.6)
    hint = f" Did you mean: {', '.join(f'{parent}.{n}' for n in near)}?" if near else ""
    if not hint and not siblings:
        hint = close_matches(key, keys)
    if not hint and siblings and not elsewhere:
        hint = f" Keys of {parent}: {', '.join(s.rpartition('.')[2] for s in siblings)[:500]}."
    where = f" (recipe {recipe})" if recipe else ""
    return f"unknown key '{key}': the config{where} has no such key.{hint}{elsewhere}"


# -- quoting for bash and Hydra ----------------------------------------------------------------------------------
_PLAIN = re.compile(r"[\w\-+./:*?~@%]*")


def bash_override(key: str, value: str) -> str:
    """``key=value`` written so that, typed in bash, Hydra receives ``value`` as this exact string.

    A value made only of Hydra's unquoted characters needs no quotes. Any other (``,`` ``;`` ``|`` a space, a tab
    written ``\\t``...) must reach Hydra inside quotes, which bash would strip: the whole argument goes in single
    quotes around a double-quoted value (``'data.sep=";"'``).
    """
    if _PLAIN.fullmatch(value) and value and not value[0].isdigit() and value not in ("true", "false", "null"):
        return f"{key}={value}"
    # Inside Hydra's quotes a backslash is literal (\\t stays backslash-t) except before a quote or at the end.
    if "'" not in value:
        inner = re.sub(r'(\\*)("|$)', lambda m: m.group(1) * 2 + ("\\" + m.group(2) if m.group(2) else ""), value)
        return f"'{key}=\"{inner}\"'"
    inner = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\" + m.group(2) if m.group(2) else ""), value)
    return f"\"{key}='{inner}'\""
