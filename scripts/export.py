"""Export a checkpoint to ONNX or TorchScript and verify it against eager PyTorch (non-zero exit on mismatch).

usage: python scripts/export.py ckpt=outputs/.../checkpoints/best.ckpt [format=onnx|torchscript|torch_export]
                                [model=deep|baseline] [output=DIR] [tolerance=1e-4] [batch_size=8] [overwrite=false]

model=baseline exports the classical baseline the run trained beside the checkpoint (its summary.json names it;
train.py says when it beat the model on validation) in the same bundle format, so predict.py, the bundle's
loader.py and serving take whichever model won: e.g. the fraud recipes' gradient-boosted trees (format=onnx only),
or a fine-tuning recipe's linear probe.

output defaults to <run folder>/export/<format> (export/baseline_<format> for model=baseline); it must be a new or
empty folder, or one holding a bundle written before (replaced with overwrite=true: only the files export wrote
there are replaced).
"""

import sys

from recipezoo.cli import exit_on_user_error, setup_logging
from recipezoo.core.errors import ConfigError
from recipezoo.core.options import Option, existing_checkpoint, parse

OPTIONS = {
    "ckpt": Option(None, example="outputs/.../checkpoints/best.ckpt"),
    "format": Option("onnx", choices=("onnx", "torchscript", "torch_export")),  # core.export.FORMATS, without torch
    "model": Option("deep", choices=("deep", "baseline")),  # recipezoo.export.MODELS, without torch
    "output": Option(None, example="DIR"),
    "tolerance": Option(1e-4, float, minimum=0),
    "batch_size": Option(8, int, minimum=1),
    "overwrite": Option(False, bool),
}


@exit_on_user_error
def main(argv: list[str]) -> None:
    opts, _ = parse(argv, OPTIONS, "export", __doc__, overrides=False)
    if not opts["ckpt"]:
        raise ConfigError(
            "pass ckpt=<path to a .ckpt written by train.py>, e.g. ckpt=outputs/<run>/checkpoints/best.ckpt"
        )
    existing_checkpoint(opts["ckpt"])
    from recipezoo.export import export

    meta = export(
        opts["ckpt"],
        opts["format"] or "onnx",
        opts["output"],
        opts["tolerance"] if opts["tolerance"] is not None else 1e-4,
        opts["batch_size"] or 8,
        bool(opts["overwrite"]),
        model=opts["model"] or "deep",
    )
    print(f"max_abs_diff\t{meta['parity']['max_abs_diff']:.3g}")


if __name__ == "__main__":
    setup_logging()
    main(sys.argv[1:])
