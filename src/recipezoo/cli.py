"""Command-line plumbing shared by train.py and scripts/: recipe discovery, argument checks, error reporting.

Checks that must happen before Hydra starts live here: an unknown recipe should be one line naming the close
matches, not a Hydra traceback, and a run folder that already holds a run must be refused before Hydra writes its
config files into it.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recipezoo.core.errors import ConfigError, UserError, close_matches

log = logging.getLogger("recipezoo")


def available_recipes(recipes_dir: Path) -> list[str]:
    """Recipe names (``<domain>/<name>``) found under ``recipes_dir``."""
    return sorted(str(p.relative_to(recipes_dir).with_suffix("")) for p in recipes_dir.rglob("*.yaml"))


def recipe_header(path: Path) -> str:
    """The first comment line after ``# @package``: what the recipe does."""
    for line in path.read_text().splitlines():
        if line.startswith("#") and "@package" not in line:
            return line.lstrip("# ").strip()
    return ""


def print_recipes(recipes_dir: Path) -> None:
    names = available_recipes(recipes_dir)
    width = max(map(len, names), default=0)
    print("Recipes (python train.py +recipe=<name> [key=value ...]):")
    for name in names:
        print(f"  {name:<{width}}  {recipe_header(recipes_dir / (name + '.yaml'))}")


def check_recipe_args(argv: Sequence[str], recipes_dir: Path) -> None:
    """Raise ConfigError for ``recipe=...`` arguments that name no recipe (with close matches)."""
    names = available_recipes(recipes_dir)
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+~") != "recipe" or not value:
            continue
        if key == "recipe":
            raise ConfigError(f"write +recipe={value} (with a '+'): recipes are added on top of the defaults.")
        for one in value.split(","):  # multirun sweeps over recipes: +recipe=a,b
            one = one.strip().removesuffix(".yaml").removeprefix("recipes/")
            if one not in names:
                raise ConfigError(
                    f"unknown recipe '{one}'.{close_matches(one, names)} List them with: python train.py list"
                )


def explicit_run_dir(argv: Sequence[str]) -> Path | None:
    for arg in argv:
        if arg.startswith("hydra.run.dir="):
            return Path(arg.split("=", 1)[1].strip("'\"")).expanduser()
    return None


def exit_on_user_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print a :class:`UserError` as one ``error:`` line and exit with status 2; other errors keep their traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def parse_key_values(argv: Sequence[str], allowed: dict[str, Any], script: str) -> tuple[dict[str, Any], list[str]]:
    """Split ``key=value`` arguments into the script's own options and config overrides (``data.root=...``).

    Args:
        argv: the arguments.
        allowed: the script's own options with their defaults.
        script: the script name for messages.

    Returns:
        The options (defaults filled in) and the dotted config overrides.
    """
    from omegaconf import OmegaConf

    options = dict(allowed)
    overrides = []
    for arg in argv:
        if arg in ("-h", "--help"):
            raise ConfigError(
                f"usage: python scripts/{script}.py "
                + " ".join(f"{k}={v}" for k, v in allowed.items())
                + " [data.<key>=value ...]"
            )
        if "=" not in arg:
            raise ConfigError(f"expected key=value, got '{arg}' (e.g. ckpt=outputs/.../checkpoints/best.ckpt).")
        key, value = arg.split("=", 1)
        if "." in key:
            overrides.append(arg)
        elif key in options:
            options[key] = OmegaConf.from_dotlist([f"v={value}"]).v if value != "" else None
        else:
            raise ConfigError(
                f"unknown option '{key}' for {script}.{close_matches(key, options)} "
                f"Options: {', '.join(options)}; config overrides look like data.root=..."
            )
    return options, overrides


def split_options(argv: Sequence[str], options: dict[str, Any]) -> list[str]:
    """For the measurement scripts: fill ``options`` (``key=value`` with a known key) in place, return the rest
    (overrides passed on to train.py)."""
    rest = []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in options:
            options[key] = value
        else:
            rest.append(arg)
    return rest


def train_in_subprocess(root: Path, recipe: str, overrides: Sequence[str], run_dir: Path) -> tuple[dict, float]:
    """Run ``python train.py +recipe=... overrides`` exactly as a user would; return its summary and wall time (s).

    The measurement scripts use this, so their figures include everything a user's run pays for.
    """
    import json
    import subprocess
    import time

    cmd = [
        sys.executable,
        "train.py",
        f"+recipe={recipe}",
        *overrides,
        f"hydra.run.dir={run_dir}",
        "trainer.enable_progress_bar=false",
    ]
    print("$", " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=root, check=True)
    wall = time.perf_counter() - start
    return json.loads((Path(run_dir) / "summary.json").read_text()), wall


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(levelname)s] %(message)s", datefmt="%H:%M:%S")
