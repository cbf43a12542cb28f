"""Measure the fraud recipes on a real transactions table, beside the GBDT baseline, on the same split.

usage (outputs go under the current folder unless told):
    python scripts/measure_fraud.py data.path=/path/to/transactions.csv data.target=Class \\
        [recipes=fraud/tabular_mlp,fraud/ft_transformer,fraud/autoencoder] [out=outputs/measure_fraud] \\
        [key=value overrides passed to every train.py run, e.g. data.time_column=Time model.prevalence=0.00172]

For every recipe: trains it with train.py (a subprocess, as a user would), reads AUPRC / ROC-AUC of the model and of
the baseline from summary.json, measures end-to-end scoring throughput of scripts/predict.py's code path on the
input table (checkpoint and ONNX bundle), and prints a table plus measurement.json.
"""

import json
import sys
import time
from pathlib import Path

import yaml

from recipezoo.cli import exit_on_user_error

ROOT = Path(__file__).resolve().parents[1]


@exit_on_user_error
def main(argv: list[str]) -> int:
    opts = {
        "recipes": "fraud/tabular_mlp,fraud/ft_transformer,fraud/autoencoder",
        "out": str(Path("outputs") / "measure_fraud" / time.strftime("%Y-%m-%d_%H-%M-%S")),
    }
    from recipezoo.cli import split_options
    from recipezoo.core.errors import ConfigError
    from recipezoo.core.options import exit_on_help
    from recipezoo.core.outputs import report_folder, write_text

    exit_on_help(argv, __doc__)
    overrides = split_options(argv, opts)
    data_path = next((o.split("=", 1)[1] for o in overrides if o.startswith("data.path=")), None)
    if not data_path:
        raise ConfigError("pass data.path=/path/to/table.csv data.target=<column> (see --help).")
    out = report_folder(Path(opts["out"]).resolve(), default_name="measure_fraud")
    import pandas as pd

    from recipezoo.cli import train_in_subprocess
    from recipezoo.export import export
    from recipezoo.fraud.data import read_table
    from recipezoo.fraud.predict import score_frame
    from recipezoo.predict import predict
    from recipezoo.runtime.tabular import OnnxFraudScorer

    frame = read_table(data_path)

    rows = []
    for recipe in opts["recipes"].split(","):
        run_dir = out / recipe.replace("/", "_")
        summary, wall = train_in_subprocess(ROOT, recipe, overrides, run_dir)
        best = summary["best_checkpoint"]
        bundle = run_dir / "export" / "onnx"
        parity = export(best, "onnx", bundle)["parity"]
        speed = {}
        for name, source in (("ckpt", best), ("onnx", bundle)):
            # End to end as scripts/predict.py runs it (read, preprocess, score, write; model load included) ...
            t = time.perf_counter()
            n = len(predict(source, data_path, run_dir / f"predictions_{name}.csv", batch_size=4096))
            speed[f"{name}_end_to_end"] = round(n / (time.perf_counter() - t))
            # ... and steady-state scoring of 10x the table, the model loaded once.
            scorer = OnnxFraudScorer(bundle) if name == "onnx" else None
            big = pd.concat([frame] * 10, ignore_index=True)
            t = time.perf_counter()
            if scorer is not None:
                scorer.score(big)
            else:
                score_frame(source, big)
            speed[f"{name}_scoring"] = round(len(big) / (time.perf_counter() - t))
        train_rows = yaml.safe_load((run_dir / "config.yaml").read_text())["data_info"]["split_counts"]["train"]["rows"]
        speed["training_rows_per_s"] = round(train_rows * summary["epochs"] / max(1e-9, summary["fit_time_s"]))
        rows.append(
            {
                "recipe": recipe,
                "test": summary["test"],
                "baseline": summary.get("baseline", {}),
                "epochs": summary["epochs"],
                "train_wall_time_s": round(wall, 1),
                "speed": speed,
                "onnx_max_abs_diff": parity["max_abs_diff"],
            }
        )

    write_text(out / "measurement.json", json.dumps(rows, indent=2) + "\n")
    keys = ["test/auprc", "test/roc_auc", "test/auprc_at_prevalence"]
    print("\n| recipe | " + " | ".join(keys) + " | GBDT " + " | GBDT ".join(keys) + " | time | rows/s |")
    for r in rows:
        model = " | ".join(f"{r['test'].get(k, float('nan')):.4f}" for k in keys)
        base = " | ".join(f"{r['baseline'].get('test', {}).get(k, float('nan')):.4f}" for k in keys)
        print(f"| {r['recipe']} | {model} | {base} | {r['train_wall_time_s']:.0f} s | {r['speed']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
