"""Test metrics of a checkpoint on any split.

python scripts/evaluate.py ckpt=outputs/.../checkpoints/best.ckpt [split=test|val|train] [output=metrics.json]
                           [data.root=/other/images ...]
"""

import sys

from recipezoo.cli import exit_on_user_error, parse_key_values, setup_logging
from recipezoo.core.errors import ConfigError


@exit_on_user_error
def main(argv: list[str]) -> None:
    opts, overrides = parse_key_values(
        argv, {"ckpt": None, "split": "test", "output": None, "accelerator": "auto"}, "evaluate"
    )
    if not opts["ckpt"]:
        raise ConfigError("pass ckpt=<path to a .ckpt written by train.py>.")
    from recipezoo.evaluate import evaluate

    metrics = evaluate(opts["ckpt"], opts["split"], overrides, opts["output"], opts["accelerator"])
    for k, v in sorted(metrics.items()):
        print(f"{k}\t{v:.6f}")


if __name__ == "__main__":
    setup_logging()
    main(sys.argv[1:])
