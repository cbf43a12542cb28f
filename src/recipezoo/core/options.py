"""The ``key=value`` options of the scripts in ``scripts/``: typed, range-checked, with ``--help``.

A wrong value ends in one :class:`~recipezoo.core.errors.ConfigError` line naming the option, what it takes and a
value that works when pasted (``batch_size must be a whole number >= 1, got '0'; e.g. batch_size=64``), before
anything is loaded. ``-h`` / ``--help`` prints the script's usage and exits 0.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipezoo.core.errors import CheckpointError, ConfigError, DataError, close_matches

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class Option:
    """One ``key=value`` option.

    Attributes:
        default: the value when the option is not given (None: not set).
        kind: ``str``, ``int``, ``float`` or ``bool``.
        minimum: the smallest accepted number (``int`` and ``float``).
        choices: the accepted values (``str``).
        example: a value shown in messages (default: ``default``).
    """

    default: Any = None
    kind: type = str
    minimum: float | None = None
    choices: tuple[str, ...] | None = None
    example: Any = None

    def convert(self, key: str, value: str) -> Any:
        """``value`` as this option's type; :class:`ConfigError` naming a value that works otherwise."""
        example = self.example if self.example is not None else self.default
        if self.kind is bool:
            if value.lower() in _TRUE:
                return True
            if value.lower() in _FALSE:
                return False
            raise ConfigError(f"{key} must be true or false, got '{value}'; e.g. {key}=true.")
        if self.kind in (int, float):
            try:
                number = int(value) if self.kind is int else float(value)
            except ValueError:
                what = "a whole number" if self.kind is int else "a number"
                raise ConfigError(f"{key} must be {what}, got '{value}'; e.g. {key}={example}.") from None
            if self.minimum is not None and number < self.minimum:
                what = "a whole number" if self.kind is int else "a number"
                raise ConfigError(f"{key} must be {what} >= {self.minimum:g}, got '{value}'; e.g. {key}={example}.")
            if self.kind is float and number != number:  # NaN passes every comparison
                raise ConfigError(f"{key} must be a number, got '{value}'; e.g. {key}={example}.")
            return number
        if self.choices is not None and value not in self.choices:
            raise ConfigError(
                f"{key} must be one of {', '.join(self.choices)}, got '{value}'.{close_matches(value, self.choices)}"
                f" E.g. {key}={self.choices[0]}."
            )
        return value


def exit_on_help(argv: Sequence[str], usage: str) -> None:
    """Print ``usage`` and exit 0 when the arguments ask for help (``-h`` / ``--help``)."""
    if any(a in ("-h", "--help") for a in argv):
        print_usage(usage)
        sys.exit(0)


def print_usage(usage: str) -> None:
    """Print a script's usage (its module docstring) on stdout."""
    try:
        print(usage.strip("\n"), flush=True)
    except BrokenPipeError:  # ``--help | head``: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def parse(
    argv: Sequence[str], options: dict[str, Option], script: str, usage: str = "", overrides: bool = True
) -> tuple[dict[str, Any], list[str]]:
    """Split ``key=value`` arguments into the script's own options (typed) and config overrides (``data.x=...``).

    Args:
        argv: the arguments.
        options: the script's options.
        script: the script name for messages (``export`` for ``scripts/export.py``).
        usage: printed for ``-h`` / ``--help`` (then the process exits 0).
        overrides: whether dotted ``data.<key>=value`` overrides are accepted.

    Returns:
        The options (defaults filled in) and the dotted overrides.
    """
    values = {k: o.default for k, o in options.items()}
    rest: list[str] = []
    for arg in argv:
        if arg in ("-h", "--help"):
            print_usage(usage or f"usage: python scripts/{script}.py " + _synopsis(options))
            sys.exit(0)
        if "=" not in arg:
            hint = f" Did you mean ckpt={shlex.quote(arg)}?" if "ckpt" in options and arg.endswith(".ckpt") else ""
            raise ConfigError(
                f"expected key=value, got '{arg}'.{hint} Usage: python scripts/{script}.py {_synopsis(options)}"
            )
        key, value = arg.split("=", 1)
        if "." in key:
            if not overrides:
                raise ConfigError(f"{script} takes no config overrides (got {arg}). Options: {', '.join(options)}.")
            rest.append(arg)
        elif key in options:
            values[key] = options[key].convert(key, value) if value != "" else None
        else:
            raise ConfigError(
                f"unknown option '{key}' for {script}.{close_matches(key, options)} Options: {', '.join(options)}"
                + ("; config overrides look like data.root=..." if overrides else ".")
            )
    return values, rest


def _synopsis(options: dict[str, Option]) -> str:
    return " ".join(f"{k}={_shown(o.example if o.example is not None else o.default)}" for k, o in options.items())


def _shown(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _nearby(p: Path, option: str) -> str:
    """A pasteable ``option=<close name>`` for a path that does not exist, from the names in its folder."""
    import difflib

    folder = p.parent
    if not folder.is_dir():
        return f" ({folder} does not exist either.)" if str(folder) not in ("", ".") else ""
    names = sorted(x.name for x in folder.iterdir() if not x.name.startswith("."))
    matches = difflib.get_close_matches(p.name, names, n=3, cutoff=0.5)
    if not matches:
        return ""
    return f" Did you mean {shlex.quote(f'{option}={folder / matches[0]}')}?"


def existing_checkpoint(value: str, option: str = "ckpt") -> Path:
    """The path of a checkpoint or export bundle that exists; :class:`CheckpointError` naming a close name else."""
    p = Path(os.path.expanduser(value))
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}.{_nearby(p, option)}")
    return p


def existing_input(value: str, option: str = "input") -> Path:
    """The path of an input file or folder that exists; :class:`DataError` naming a close name else."""
    p = Path(os.path.expanduser(value))
    if not p.exists():
        raise DataError(f"input not found: {p}.{_nearby(p, option)}")
    return p


def hydra_error(e: Exception, known_keys: Sequence[str] = ()) -> ConfigError:
    """A Hydra composition or override-parsing error as one line, with close matches among ``known_keys``.

    Hydra's own advice for an unknown key (``+key=value``) adds a key nothing reads, so it is replaced by the
    close matches among the config's real keys.
    """
    import re

    text = str(e).strip()
    unknown = re.search(r"Could not override '([^']+)'", text) or re.search(r"Key '([^']+)' is not in struct", text)
    if unknown and ("not in struct" in text or "Could not override" in text):
        key = unknown.group(1)
        hint = close_matches(key, known_keys) if known_keys else ""
        return ConfigError(f"unknown config key '{key}'.{hint or ' Check its spelling against the recipe.'}")
    first = next((line for line in text.splitlines() if line.strip()), type(e).__name__)
    return ConfigError(f"cannot compose the config: {first.strip()}")


def config_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every dotted key of an OmegaConf config (leaves and nodes)."""
    from omegaconf import DictConfig

    keys = []
    if isinstance(cfg, DictConfig):
        for k in cfg.keys():
            full = f"{prefix}{k}"
            keys.append(full)
            try:
                child = cfg._get_node(k)
            except Exception:
                continue
            keys.extend(config_keys(child, full + "."))
    return keys
