"""Predict with a checkpoint or an exported bundle; the model's task decides what the input is.

python scripts/predict.py ckpt=<.ckpt | export folder | model.onnx | model.pt> input=<...>
                          [output=predictions.csv] [batch_size=64] [overwrite=false] [column=<text column>] [k=10]

input: images (an image, a folder, or a .txt list of paths); a table of transactions (fraud); texts (a .txt file
with one example per line, or a CSV/TSV/JSON-lines table: its text column, or column=...); sentences to tag (a .txt
file with one sentence per line, a CoNLL-style file, or JSON lines with "tokens"); users (users.csv / users.txt:
their top-k items) or (user, item) pairs (pairs.csv: a score each) for a recommender.
"""

import sys

from recipezoo.cli import exit_on_user_error, parse_key_values, setup_logging
from recipezoo.core.errors import ConfigError


@exit_on_user_error
def main(argv: list[str]) -> None:
    opts, overrides = parse_key_values(
        argv,
        {
            "ckpt": None,
            "input": None,
            "output": "predictions.csv",
            "batch_size": 64,
            "overwrite": False,
            "column": None,
            "k": 10,
        },
        "predict",
    )
    if overrides:
        raise ConfigError(
            f"predict takes no config overrides (got {overrides[0]}); preprocessing comes from the model."
        )
    if not opts["ckpt"] or not opts["input"]:
        raise ConfigError("pass ckpt=<checkpoint or export folder> and input=<file or folder to predict>.")
    from recipezoo.predict import predict

    predict(
        opts["ckpt"],
        opts["input"],
        opts["output"],
        int(opts["batch_size"]),
        bool(opts["overwrite"]),
        opts["column"],
        int(opts["k"]),
    )


if __name__ == "__main__":
    setup_logging()
    main(sys.argv[1:])
