"""Predict with a checkpoint or an exported bundle; the model's task decides what the input is.

usage: python scripts/predict.py ckpt=<.ckpt | export folder | model.onnx | model.pt> input=<...>
                                 [output=predictions.csv] [batch_size=64] [overwrite=false] [column=<text column>]
                                 [k=10] [encoding=utf-8]

input: images (an image, a folder, or a .txt list of paths); a table of transactions (fraud); texts (a .txt file
with one example per line, or a CSV/TSV/JSON-lines table: its text column, or column=...); sentences to tag (a .txt
file with one sentence per line, a CoNLL-style file, or JSON lines with "tokens"); users (users.csv / users.txt:
their top-k items) or (user, item) pairs (pairs.csv: a score each) for a recommender. encoding: of a text or table
input that is not UTF-8 (e.g. encoding=latin-1).

output is never overwritten unless overwrite=true and an earlier predict wrote it.
"""

import sys

from recipezoo.cli import exit_on_user_error, setup_logging
from recipezoo.core.errors import ConfigError
from recipezoo.core.options import Option, existing_checkpoint, existing_input, parse

OPTIONS = {
    "ckpt": Option(None, example="outputs/.../checkpoints/best.ckpt"),
    "input": Option(None, example="<file or folder>"),
    "output": Option("predictions.csv"),
    "batch_size": Option(64, int, minimum=1),
    "overwrite": Option(False, bool),
    "column": Option(None, example="<text column>"),
    "k": Option(10, int, minimum=1),
    "encoding": Option(None, example="utf-8"),
}


@exit_on_user_error
def main(argv: list[str]) -> None:
    opts, overrides = parse(argv, OPTIONS, "predict", __doc__)
    if overrides:
        raise ConfigError(
            f"predict takes no config overrides (got {overrides[0]}); preprocessing comes from the model."
        )
    if not opts["ckpt"] or not opts["input"]:
        raise ConfigError("pass ckpt=<checkpoint or export folder> and input=<file or folder to predict>.")
    existing_checkpoint(opts["ckpt"])
    existing_input(opts["input"])
    from recipezoo.predict import predict

    predict(
        opts["ckpt"],
        opts["input"],
        opts["output"] or "predictions.csv",
        opts["batch_size"] or 64,
        bool(opts["overwrite"]),
        opts["column"],
        opts["k"] or 10,
        encoding=opts["encoding"],
    )


if __name__ == "__main__":
    setup_logging()
    main(sys.argv[1:])
