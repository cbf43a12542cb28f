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

from recipezoo.cli import check_recipe_args, exit_on_user_error, explicit_run_dir, print_recipes  # noqa: E402
from recipezoo.core.errors import OutputExistsError  # noqa: E402

ROOT = Path(__file__).resolve().parent


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    mark("config composed")
    from recipezoo.train import run  # imported here so `list` and --help stay fast

    run(cfg)


@exit_on_user_error
def preflight(argv: list[str]) -> None:
    check_recipe_args(argv, ROOT / "recipes")
    run_dir = explicit_run_dir(argv)
    # Hydra writes .hydra/ into the run folder before our code runs: refuse a used folder before that.
    if (
        run_dir is not None
        and run_dir.is_dir()
        and any(run_dir.iterdir())
        and "overwrite=true" not in argv
        and "LOCAL_RANK" not in os.environ
    ):
        raise OutputExistsError(
            f"{run_dir} already holds files; nothing was overwritten. Choose another "
            "hydra.run.dir, or pass overwrite=true to write into it."
        )


if __name__ == "__main__":
    if sys.argv[1:] in (["list"], ["--list"]):
        print_recipes(ROOT / "recipes")
        sys.exit(0)
    preflight(sys.argv[1:])
    main()
