"""Export a checkpoint to ONNX or TorchScript and verify it against eager PyTorch (non-zero exit on mismatch).

python scripts/export.py ckpt=outputs/.../checkpoints/best.ckpt format=onnx|torchscript|torch_export [output=DIR]
                         [tolerance=1e-4] [batch_size=8] [overwrite=false]
"""

import sys

from recipezoo.cli import exit_on_user_error, parse_key_values, setup_logging
from recipezoo.core.errors import ConfigError


@exit_on_user_error
def main(argv: list[str]) -> None:
    opts, overrides = parse_key_values(
        argv,
        {"ckpt": None, "format": "onnx", "output": None, "tolerance": 1e-4, "batch_size": 8, "overwrite": False},
        "export",
    )
    if overrides:
        raise ConfigError(f"export takes no config overrides (got {overrides[0]}).")
    if not opts["ckpt"]:
        raise ConfigError("pass ckpt=<path to a .ckpt written by train.py>.")
    from recipezoo.export import export

    meta = export(
        opts["ckpt"],
        opts["format"],
        opts["output"],
        float(opts["tolerance"]),
        int(opts["batch_size"]),
        bool(opts["overwrite"]),
    )
    print(f"max_abs_diff\t{meta['parity']['max_abs_diff']:.3g}")


if __name__ == "__main__":
    setup_logging()
    main(sys.argv[1:])
