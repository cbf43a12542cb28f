"""Predict with a checkpoint or an exported bundle: image labels, fraud scores, or top-k recommendations.

python scripts/predict.py ckpt=<.ckpt | export folder | model.onnx | model.pt> input=<image | folder | list.txt>
                          [output=predictions.csv] [batch_size=64] [overwrite=false]
python scripts/predict.py ckpt=<recommendation .ckpt or bundle> input=<users.csv | users.txt | pairs.csv> [k=10]
"""

import sys

from recipezoo.cli import exit_on_user_error, parse_key_values, setup_logging
from recipezoo.core.errors import ConfigError


@exit_on_user_error
def main(argv: list[str]) -> None:
    opts, overrides = parse_key_values(
        argv,
        {"ckpt": None, "input": None, "output": "predictions.csv", "batch_size": 64, "overwrite": False, "k": 10},
        "predict",
    )
    if overrides:
        raise ConfigError(
            f"predict takes no config overrides (got {overrides[0]}); preprocessing comes from the model."
        )
    if not opts["ckpt"] or not opts["input"]:
        raise ConfigError("pass ckpt=<checkpoint or export folder> and input=<image, folder or list>.")
    from recipezoo.predict import predict

    predict(
        opts["ckpt"], opts["input"], opts["output"], int(opts["batch_size"]), bool(opts["overwrite"]), k=int(opts["k"])
    )


if __name__ == "__main__":
    setup_logging()
    main(sys.argv[1:])
