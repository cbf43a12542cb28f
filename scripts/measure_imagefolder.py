"""Measure an image-classification recipe on a real image folder: accuracy, wall time, export parity, latency.

usage (outputs go under the current folder unless told):
    python scripts/measure_imagefolder.py data.root=/path/to/images [recipe=vision/imagefolder_finetune]
        [target_acc=0.97] [run_dir=outputs/measure/<name>] [key=value overrides passed to train.py ...]

Trains with train.py (a subprocess, exactly as a user would), exports the best checkpoint to ONNX and TorchScript,
measures batch-1 latency of eager PyTorch vs onnxruntime / TorchScript, prints a recipes/README.md row and writes
measurement.json into the run folder. Exits 1 when the test accuracy is below target_acc.
"""

import json
import platform
import sys
import time
from pathlib import Path

from recipezoo.cli import exit_on_user_error

ROOT = Path(__file__).resolve().parents[1]


@exit_on_user_error
def main(argv: list[str]) -> int:
    opts = {"recipe": "vision/imagefolder_finetune", "target_acc": None, "run_dir": None}
    from recipezoo.cli import split_options
    from recipezoo.core.errors import ConfigError
    from recipezoo.core.options import exit_on_help
    from recipezoo.core.outputs import precious_reason, write_text

    exit_on_help(argv, __doc__)
    overrides = split_options(argv, opts)
    if not any(o.startswith("data.root=") for o in overrides):
        raise ConfigError("pass data.root=/path/to/images (see --help).")
    run_dir = Path(opts["run_dir"] or Path("outputs") / "measure" / time.strftime("%Y-%m-%d_%H-%M-%S")).resolve()
    if precious_reason(run_dir):
        raise ConfigError(f"refusing to train into {run_dir} ({precious_reason(run_dir)}). Pass run_dir=measure.")
    from recipezoo.cli import train_in_subprocess
    from recipezoo.export import export

    summary, wall = train_in_subprocess(ROOT, opts["recipe"], overrides, run_dir)

    exports = {
        fmt: export(summary["best_checkpoint"], fmt, run_dir / "export" / fmt)["parity"]
        for fmt in ("onnx", "torchscript")
    }
    import torch

    result = {
        "recipe": opts["recipe"],
        "command": " ".join(["python train.py", f"+recipe={opts['recipe']}", *overrides]),
        "test": summary["test"],
        "epochs": summary["epochs"],
        "train_wall_time_s": round(wall, 1),
        "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", CPU only"),
        "export": exports,
    }
    write_text(run_dir / "measurement.json", json.dumps(result, indent=2) + "\n", option="run_dir")
    print(json.dumps(result, indent=2))
    acc = summary["test"].get("test/acc", 0.0)
    print(
        f"\n| {opts['recipe']} | test acc {acc:.4f} | {result['train_wall_time_s']:.0f} s | {result['hardware']} | "
        f"onnx diff {exports['onnx']['max_abs_diff']:.1e}, "
        f"torchscript diff {exports['torchscript']['max_abs_diff']:.1e} |"
    )
    if opts["target_acc"] is not None and acc < float(opts["target_acc"]):
        print(f"FAILED: test accuracy {acc:.4f} < target {opts['target_acc']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
