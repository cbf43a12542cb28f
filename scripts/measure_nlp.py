"""Measure the NLP recipes on real data sets: accuracy / F1, wall time, export parity, onnxruntime vs eager latency.

usage (outputs go under the current folder unless told):
    python scripts/measure_nlp.py data_root=/path/to/nlp encoder=/path/to/all-MiniLM-L6-v2 \\
        [tasks=sst2,sst2_scratch,sms_spam,conll2003,goemotions,latency] [out=outputs/measure_nlp/<time>] \\
        [key=value overrides passed to every train.py run, e.g. trainer.max_epochs=1]

``data_root`` holds the data sets (``sst2/``, ``sms_spam_collection/``, ``conll2003/``, ``goemotions/``) laid out as
their public releases are; ``encoder`` is a Hugging Face folder (offline). Each task trains with train.py in a
subprocess, exactly as a user would (its command is printed and saved), exports the best checkpoint to ONNX and
TorchScript (parity-checked), and is written to ``measurement.json`` with a recipes/README.md row printed at the end.
``latency`` times batch 1 x 64 tokens of the encoder classifier, eager PyTorch vs onnxruntime vs TorchScript.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from recipezoo.cli import exit_on_user_error

ROOT = Path(__file__).resolve().parents[1]


def tasks(data: Path, encoder: str) -> dict[str, tuple[str, list[str], list[str]]]:
    """task -> (recipe, train.py overrides, the metrics to report)."""
    sst2 = [
        f"data.path={data / 'sst2' / 'train.tsv'}",
        f"data.test_path={data / 'sst2' / 'dev.tsv'}",  # reported: dev accuracy; validation is carved from train
        "data.text_column=[sentence,content]",
        "data.val_fraction=0.05",
        "data.max_length=66",
    ]
    return {
        "sst2": (
            "nlp/text_classification",
            [*sst2, f"backbone.pretrained={encoder}", "trainer.max_epochs=1", "trainer.val_check_interval=0.25"],
            ["test/acc", "test/f1"],
        ),
        "sst2_scratch": (
            "nlp/text_classification_scratch",
            [*sst2, "trainer.max_epochs=6"],
            ["test/acc", "test/f1"],
        ),
        "sms_spam": (
            "nlp/text_classification",
            [
                f"data.path={data / 'sms_spam_collection' / 'SMSSpamCollection'}",
                "data.sep=\\t",
                "data.header=false",
                "data.columns=[label,text]",
                "data.val_fraction=0.15",
                "data.test_fraction=0.15",
                f"backbone.pretrained={encoder}",
                "trainer.max_epochs=3",
            ],
            ["test/acc", "test/f1_spam", "test/f1"],
        ),
        "conll2003": (
            "nlp/token_classification",
            [
                f"data.path={data / 'conll2003' / 'eng.train'}",
                f"data.test_path={data / 'conll2003' / 'eng.testa'}",  # reported: F1 on eng.testa (dev)
                "data.val_fraction=0.05",
                f"backbone.pretrained={encoder}",
                "trainer.max_epochs=3",
            ],
            ["test/f1", "test/precision", "test/recall"],
        ),
        "goemotions": (
            "nlp/text_classification_multilabel",
            [
                f"data.path={data / 'goemotions'}",  # train.tsv, dev.tsv (threshold chosen here), test.tsv
                "data.header=false",
                "data.columns=[text,labels,id]",
                "data.label_column=labels",
                f"data.label_names={data / 'goemotions' / 'labels.txt'}",
                f"backbone.pretrained={encoder}",
                "trainer.max_epochs=3",
            ],
            ["test/f1_macro", "test/f1_micro", "test/f1_macro_at_0.5"],
        ),
    }


def latency(ckpt: str, out: Path) -> dict[str, Any]:
    """Batch 1 x 64 tokens: eager PyTorch vs onnxruntime vs TorchScript, median of 50 (ms)."""
    import numpy as np
    import torch

    from recipezoo.core.checkpoint import load_module
    from recipezoo.core.export import Runner, latency_ms
    from recipezoo.export import export

    module, _ = load_module(ckpt)
    spec = module.export_spec(1)
    gen = torch.Generator().manual_seed(0)
    vocab = int(module.net.vocab_size)
    inputs = {
        "input_ids": torch.randint(1000, vocab, (1, 64), generator=gen),
        "attention_mask": torch.ones(1, 64, dtype=torch.long),
    }
    if "token_type_ids" in spec.inputs:
        inputs["token_type_ids"] = torch.zeros(1, 64, dtype=torch.long)
    result: dict[str, Any] = {"threads": torch.get_num_threads()}
    with torch.no_grad():
        result["eager_ms"] = latency_ms(lambda: spec.model(*inputs.values()), repeats=50, warmup=10)
    for fmt in ("onnx", "torchscript"):
        bundle = out / f"latency_{fmt}"
        if not bundle.exists():
            export(ckpt, fmt, bundle, measure_latency=False)
        runner = Runner(fmt, bundle / ("model.onnx" if fmt == "onnx" else "model.pt"), torch.get_num_threads())
        result[f"{fmt}_ms"] = latency_ms(lambda r=runner: r(inputs), repeats=50, warmup=10)
        with torch.no_grad():
            eager_out = spec.model(*inputs.values()).numpy()
        result[f"{fmt}_max_abs_diff"] = float(np.abs(runner(inputs)[0] - eager_out).max())
    return result


@exit_on_user_error
def main(argv: list[str]) -> int:
    opts = {
        "data_root": None,
        "encoder": None,
        "tasks": "sst2,sst2_scratch,sms_spam,conll2003,goemotions,latency",
        "out": str(Path("outputs") / "measure_nlp" / time.strftime("%Y-%m-%d_%H-%M-%S")),
    }
    from recipezoo.cli import split_options
    from recipezoo.core.errors import ConfigError
    from recipezoo.core.options import exit_on_help
    from recipezoo.core.outputs import report_folder, write_text

    exit_on_help(argv, __doc__)
    overrides = split_options(argv, opts)
    if not opts["data_root"] or not opts["encoder"]:
        raise ConfigError("pass data_root=/path/to/nlp encoder=/path/to/hf_folder (see --help).")
    import torch

    from recipezoo.cli import train_in_subprocess
    from recipezoo.export import export

    data = Path(opts["data_root"]).expanduser().resolve()
    out = report_folder(Path(opts["out"]).resolve(), default_name="measure_nlp")
    hardware = f"{platform.machine()}, {torch.get_num_threads()} threads" + (
        f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", CPU only"
    )
    table = tasks(data, str(Path(opts["encoder"]).expanduser().resolve()))
    results: dict[str, Any] = {}
    results_file = out / "measurement.json"
    if results_file.exists():
        results = json.loads(results_file.read_text())
    for name in opts["tasks"].split(","):
        if name == "latency":
            source = results.get("sst2", {}).get("best_checkpoint")
            if source:
                results["latency"] = latency(source, out)
                print("latency:", results["latency"], flush=True)
            continue
        recipe, task_overrides, keys = table[name]
        run_dir = out / name
        summary, wall = train_in_subprocess(ROOT, recipe, [*task_overrides, *overrides], run_dir)
        parity = {}
        for fmt in ("onnx", "torchscript"):
            meta = export(summary["best_checkpoint"], fmt, run_dir / "export" / fmt, measure_latency=False)
            parity[fmt] = meta["parity"]["max_abs_diff"]
        results[name] = {
            "recipe": recipe,
            "command": " ".join(["python train.py", f"+recipe={recipe}", *task_overrides, *overrides]),
            "metrics": {k: summary["test"].get(k) for k in keys},
            "test": summary["test"],
            "epochs": summary["epochs"],
            "fit_time_s": summary["fit_time_s"],
            "wall_time_s": round(wall, 1),
            "hardware": hardware,
            "export_max_abs_diff": parity,
            "best_checkpoint": summary["best_checkpoint"],
        }
        write_text(results_file, json.dumps(results, indent=2) + "\n")
        print(f"{name}: {results[name]['metrics']} in {wall:.0f} s", flush=True)
    write_text(results_file, json.dumps(results, indent=2) + "\n")
    print("\n| task | recipe | metrics | wall time | export diff (onnx / torchscript) |")
    for name, r in results.items():
        if name == "latency":
            continue
        metrics = ", ".join(f"{k.split('/', 1)[1]} {v:.4f}" for k, v in r["metrics"].items() if v is not None)
        diff = r["export_max_abs_diff"]
        print(f"| {name} | {r['recipe']} | {metrics} | {r['wall_time_s'] / 60:.1f} min | "
              f"{diff['onnx']:.1e} / {diff['torchscript']:.1e} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
