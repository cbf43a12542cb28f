"""Train a recipe: ``python train.py +recipe=<domain>/<name> [key=value ...]``.

``python train.py`` alone trains the default recipe (vision/digits_cnn) on data bundled with scikit-learn;
``python train.py list`` shows every recipe. See README.md.
"""

import os
import sys
from pathlib import Path

from recipezoo.core.marks import mark

mark("interpreter started")  # before the heavy imports: start-up is measured by scripts/benchmark.py

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from recipezoo.cli import (  # noqa: E402
    check_recipe_args,
    check_run_dir,
    compose_checked,
    exit_on_user_error,
    expand_home,
    print_recipes,
)

ROOT = Path(__file__).resolve().parent


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    mark("config composed")
    from recipezoo.train import run  # imported here so `list` and --help stay fast

    run(cfg)


@exit_on_user_error
def preflight(argv: list[str]) -> None:
    """Check the command line before Hydra starts: the recipe, the run folder (Hydra writes .hydra/ into it before
    our code runs) and the composed config's keys and values, so a mistake costs a fraction of a second."""
    check_recipe_args(argv, ROOT / "recipes")
    check_run_dir(argv)
    if "LOCAL_RANK" not in os.environ:  # DDP workers re-run the command rank 0 already checked
        compose_checked(argv, ROOT / "conf")


if __name__ == "__main__":
    if sys.argv[1:] in (["list"], ["--list"]):
        print_recipes(ROOT / "recipes")
        sys.exit(0)
    sys.argv[1:] = expand_home(sys.argv[1:])  # before Hydra reads them: it cannot parse a '~' in a value
    preflight(sys.argv[1:])
    main()
