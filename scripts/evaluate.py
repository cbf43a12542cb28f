"""Test metrics of a checkpoint on any split.

usage: python scripts/evaluate.py ckpt=outputs/.../checkpoints/best.ckpt [split=test|val|train]
                                  [output=metrics.json] [overwrite=false] [accelerator=auto]
                                  [data.root=/other/images ...]

output is never overwritten unless overwrite=true and it holds a report evaluate wrote itself.
"""

import sys

from recipezoo.cli import exit_on_user_error, setup_logging
from recipezoo.core.errors import ConfigError
from recipezoo.core.options import Option, existing_checkpoint, parse

OPTIONS = {
    "ckpt": Option(None, example="outputs/.../checkpoints/best.ckpt"),
    "split": Option("test", choices=("test", "val", "train")),
    "output": Option(None, example="metrics.json"),
    "overwrite": Option(False, bool),
    "accelerator": Option("auto"),
}


@exit_on_user_error
def main(argv: list[str]) -> None:
    opts, overrides = parse(argv, OPTIONS, "evaluate", __doc__)
    if not opts["ckpt"]:
        raise ConfigError("pass ckpt=<a .ckpt written by train.py>, e.g. ckpt=outputs/<run>/checkpoints/best.ckpt")
    existing_checkpoint(opts["ckpt"])
    from recipezoo.evaluate import evaluate

    metrics = evaluate(
        opts["ckpt"],
        opts["split"] or "test",
        overrides,
        opts["output"],
        opts["accelerator"] or "auto",
        overwrite=bool(opts["overwrite"]),
    )
    for k, v in sorted(metrics.items()):
        print(f"{k}\t{v:.6f}")


if __name__ == "__main__":
    setup_logging()
    main(sys.argv[1:])
