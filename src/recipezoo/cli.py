"""Command-line plumbing shared by train.py and scripts/: recipe discovery, argument checks, error reporting.

Checks that must happen before Hydra starts live here: an unknown recipe should be one line naming the close
matches, not a Hydra traceback, and a run folder that already holds a run must be refused before Hydra writes its
config files into it.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recipezoo.core.errors import CheckpointError, ConfigError, OutputExistsError, UserError, close_matches

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


def expand_home(argv: Sequence[str]) -> list[str]:
    """``key=~/photos`` with ``~`` expanded to the home folder: bash leaves a ``~`` after ``=`` in an argument alone,
    and Hydra's override grammar cannot read it, so the README's ``data.root=~/photos`` would otherwise fail."""
    out = []
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and not key.startswith("-") and (value == "~" or value.startswith("~/")):
            arg = f"{key}={os.path.expanduser(value)}"
        out.append(arg)
    return out


def explicit_run_dir(argv: Sequence[str]) -> Path | None:
    """The run folder named on the command line (``hydra.run.dir=``, ``+hydra.run.dir=`` or ``++hydra.run.dir=``)."""
    for arg in reversed(argv):  # Hydra applies the last one
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") == "hydra.run.dir":
            return Path(value.strip("'\"")).expanduser()
    return None


# What a run that failed before writing anything leaves behind: Hydra's own config files and the run's log.
# (config.yaml, the resolved config, is written once the data is read: a run may fail after it, before training.)
_FAILED_RUN_FILES = {"train.log", "config.yaml", ".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"}


def reusable_run_dir(run_dir: Path) -> bool:
    """True when ``run_dir`` is missing, empty, or holds only what a run that failed before training left there
    (``train.log``, ``config.yaml`` and Hydra's ``.hydra/``): the corrected command may run there; it appends to
    the log and rewrites the configs."""
    if not run_dir.is_dir():
        return True
    files = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if not p.is_dir()}
    dirs = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_dir()}
    return files <= _FAILED_RUN_FILES and dirs <= {".hydra"}


def check_run_dir(argv: Sequence[str]) -> None:
    """Refuse a ``hydra.run.dir`` that already holds a run, before Hydra writes its ``.hydra/`` files into it."""
    import os

    run_dir = explicit_run_dir(argv)
    if run_dir is None or "LOCAL_RANK" in os.environ or reusable_run_dir(run_dir):
        return
    if any(arg.partition("=")[0].lstrip("+") == "overwrite" and arg.endswith("=true") for arg in argv):
        return
    raise OutputExistsError(
        f"{run_dir} already holds files; nothing was overwritten. Choose another hydra.run.dir, or pass "
        "overwrite=true to write into it (it replaces only the run's own files: checkpoints, metrics, summary)."
    )


# Hydra command-line flags after which the config is not the one train.yaml composes (or nothing runs at all).
_OTHER_CONFIG_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun")
_NO_RUN_FLAGS = ("--help", "-h", "--hydra-help", "--info", "-i", "--version", "--shell-completion", "-sc")
_MULTIRUN_FLAGS = ("--multirun", "-m")


def hydra_overrides(argv: Sequence[str]) -> list[str] | None:
    """The overrides of ``argv`` (its Hydra flags left out), or ``None`` when the flags make a check pointless:
    help, another config, or a multirun sweep (whose values are lists, checked per job by the run itself)."""
    out: list[str] = []
    skip_next = False
    for arg in argv:
        if skip_next:
            skip_next = False
            continue
        flag = arg.split("=", 1)[0]
        if flag in _OTHER_CONFIG_FLAGS + _NO_RUN_FLAGS + _MULTIRUN_FLAGS:
            return None
        if flag in ("--cfg", "-c", "--package", "-p"):
            skip_next = "=" not in arg
            continue
        if arg.startswith("-"):
            continue
        out.append(arg)
    return out


def _override_error(e: Exception, override: str | None, cfg: Any, recipe: str | None, conf: Path) -> ConfigError:
    """One line for Hydra's composition error ``e`` about ``override``."""
    from recipezoo.core.validate import bash_override, unknown_key_message

    text = str(e)
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    if override is None:
        return ConfigError(f"cannot compose the config: {first}")
    key, _, value = override.partition("=")
    bare = key.lstrip("+~")
    if type(e).__name__ == "OverrideParseException":
        if value and any(c in value for c in ",;|&()[]{}<> \t'\"") and not value.startswith(("[", "{", "'", '"')):
            return ConfigError(
                f"cannot read the override '{override}': Hydra reads {value!r} as syntax, not text. Quote the value "
                f"for Hydra inside quotes for bash: {bash_override(bare, value)}"
            )
        return ConfigError(
            f"cannot read the override '{override}' (expected key=value; quote values holding , ; [ ] {{ }} or "
            f"spaces, e.g. {bash_override(bare or 'data.sep', value or ';')})"
        )
    if "Could not find" in text:  # a config group option that does not exist: trainer=gpux, data=vision/foo
        group = bare
        options = _group_options(conf, group)
        hint = close_matches(value, options) if options else ""
        listed = f" Options for {group}: {', '.join(options)}." if options else ""
        return ConfigError(f"unknown {group} '{value}'.{hint}{listed}")
    if "Could not delete" in text:
        return ConfigError(f"cannot remove '{bare}': {unknown_key_message(bare, cfg, recipe)}")
    if "Could not append" in text or "already" in text:
        return ConfigError(
            f"'{bare}' is already in the config: set it without '+', e.g. {bare}={value or '...'} "
            f"({first.rstrip('.')})."
        )
    if "Could not override" in text or "not in struct" in text:
        owners = (
            _data_key_owners(conf, bare.split(".")[1], (recipe or "").split("/")[0])
            if bare.startswith("data.") and bare.count(".") == 1
            else ""
        )
        return ConfigError(unknown_key_message(bare, cfg, recipe, owners, value or "..."))
    return ConfigError(f"cannot apply the override '{override}': {first}")


def _group_options(conf: Path, group: str) -> list[str]:
    base = conf / group
    if not base.is_dir():
        return []
    return sorted(str(p.relative_to(base).with_suffix("")) for p in base.rglob("*.yaml"))


def _data_key_owners(conf: Path, leaf: str, domain: str) -> str:
    """`` data.<leaf> belongs to ...: +recipe=...`` (scans the data and recipe files; no composition)."""
    import yaml

    with_key = set()
    for p in (conf / "data").rglob("*.yaml"):
        try:
            node = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError:
            continue
        if isinstance(node, dict) and leaf in node:
            with_key.add(str(p.relative_to(conf / "data").with_suffix("")))
    owners = []
    for p in sorted((conf / "recipe").rglob("*.yaml"), key=lambda p: (p.parent.name != domain, str(p))):
        text = p.read_text()
        if any(f"override /data: {d}" in text for d in with_key):
            owners.append(str(p.relative_to(conf / "recipe").with_suffix("")))
    if not owners:
        return ""
    return f" data.{leaf} belongs to the data of other recipes; pick one first: " + ", ".join(
        f"+recipe={o}" for o in owners[:6]
    )


def compose_checked(argv: Sequence[str], conf_dir: Path, config_name: str = "train") -> Any:
    """Compose the config ``argv`` asks for, as Hydra will, and check its values (:mod:`recipezoo.core.validate`).

    A bad override (an unknown key, an unknown config option, a value Hydra cannot parse) raises one
    :class:`ConfigError` naming the close matches among the real keys of the composed config; a value of the wrong
    type or range raises one too. Costs a composition (a fraction of a second), nothing is built.

    Returns:
        The composed config (without ``hydra``), or ``None`` when the flags ask for no run of this config.
    """
    overrides = hydra_overrides(argv)
    if overrides is None:
        return None
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from recipezoo.core.validate import check_values

    def attempt(ovs: list[str]) -> Any:
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
                return compose(config_name, overrides=ovs)
        finally:
            GlobalHydra.instance().clear()

    try:
        cfg = attempt(overrides)
    except HydraException as e:
        bad = _find_bad_override(e, overrides)
        rest = [o for o in overrides if o != bad]
        base = None
        for _ in range(len(rest) + 1):  # the config without the bad override(s): the keys it really has
            try:
                base = attempt(rest)
                break
            except HydraException as again:
                worse = _find_bad_override(again, rest)
                if worse is None:
                    break
                rest.remove(worse)
        recipe = base.get("recipe_name") if base is not None else None
        raise _override_error(e, bad, base, recipe, conf_dir) from None
    check_values(cfg)
    return cfg


def _find_bad_override(e: Exception, overrides: list[str]) -> str | None:
    if type(e).__name__ == "OverrideParseException":  # parse them one by one: the message may not quote it
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create()
        for o in overrides:
            try:
                parser.parse_overrides([o])
            except Exception:
                return o
    text = str(e)
    for o in overrides:  # Hydra quotes the override or its key in its message
        if f"'{o}'" in text or f": {o}\n" in text or text.rstrip().endswith(f": {o}"):
            return o
    for o in overrides:
        key, _, value = o.partition("=")
        bare = key.lstrip("+~")
        if f"'{bare}'" in text or f"{bare}'" in text or (value and f"/{value}'" in text and f"'{bare}/" in text):
            return o
    return None


def user_error_in(exc: BaseException) -> UserError | None:
    """The :class:`UserError` behind ``exc``: itself, or the one Hydra's ``InstantiationException`` (``Error in call
    to target ...``) wraps, however deeply nested; ``None`` when there is none."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, UserError):
            return exc
        if type(exc).__name__ == "BundleError":
            # The torch-free bundle runtimes (copied into bundles as loader.py, so they cannot import recipezoo's
            # errors) raise their own ValueError subclass for a bundle that is damaged or of another kind.
            return CheckpointError(str(exc))
        if type(exc).__name__ != "InstantiationException":
            return None
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def exit_on_user_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print a :class:`UserError` as one ``error:`` line and exit with status 2; other errors keep their traceback.

    A UserError raised while Hydra instantiates a config node arrives wrapped in Hydra's ``InstantiationException``:
    it is unwrapped and printed as itself.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            user = user_error_in(e)
            if user is None:
                raise
            print(f"error: {' '.join(str(user).split())}", file=sys.stderr)
            sys.exit(2)

    return wrapper


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
