"""Measure what the decoded-image cache saves: epoch time of the training loader (decode + transforms, no model).

usage (outputs go under the current folder unless told):
    python scripts/measure_image_cache.py data.root=/path/to/images [recipe=vision/imagefolder_finetune] [epochs=3]
        [out=outputs/measure_image_cache/<time>] [config overrides, e.g. data.image_size=64 data.batch_size=32]

Reads every image file once (so that both runs find them in the OS file cache), then builds the recipe's DataModule
twice, with ``data.cache_images=false`` and ``data.cache_images=true`` (everything else as configured:
``data.num_workers=auto`` is 0 on a CPU-only machine), and times its set-up and ``epochs`` passes over its training
loader, then checks that the eval batches of the val split agree with the cache on and off. Prints a table
and writes measurement.json in the output folder. Set OMP_NUM_THREADS (e.g. 1) to measure a given thread count.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from recipezoo.cli import exit_on_user_error
from recipezoo.core.options import Option

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = {
    "recipe": Option("vision/imagefolder_finetune"),
    "epochs": Option(3, int, minimum=1),
    "out": Option(None, example="outputs/measure_image_cache/<time>"),
}


def timed_epochs(dm: Any, epochs: int) -> dict[str, Any]:
    """Set the DataModule up and pass over its training loader ``epochs`` times; seconds for each."""
    start = time.perf_counter()
    dm.setup("fit")
    setup_s = time.perf_counter() - start
    loader, seconds, images = dm.train_dataloader(), [], 0
    for _ in range(epochs):
        start, images = time.perf_counter(), 0
        for x, _ in loader:
            images += len(x)
        seconds.append(time.perf_counter() - start)
    return {"setup_s": round(setup_s, 2), "epoch_s": [round(s, 2) for s in seconds], "images_per_epoch": images}


def eval_agreement(on: Any, off: Any, split: str = "val") -> dict[str, Any]:
    """How far the eval batches of ``split`` with the cache are from those without, in 8-bit pixel levels."""
    import torch

    std = torch.tensor(on.preprocessing.std).view(1, -1, 1, 1)
    worst, total, same, n = 0.0, 0.0, 0, 0
    for (x, _), (x0, _) in zip(on.eval_dataloader(split), off.eval_dataloader(split)):
        levels = ((x - x0).abs() * std * 255).round()  # undo the normalisation: 0..255 levels
        worst, total = max(worst, float(levels.max())), total + float(levels.sum())
        same += int((levels == 0).flatten(1).all(1).sum())
        n += len(x)
    return {
        "split": split,
        "images": n,
        "identical_images": same,
        "max_diff_levels": worst,
        "mean_diff_levels": round(total / max(1, n * x.shape[1] * x.shape[2] * x.shape[3]), 4),
    }


@exit_on_user_error
def main(argv: list[str]) -> int:
    from recipezoo.cli import compose_checked, setup_logging
    from recipezoo.core.errors import ConfigError
    from recipezoo.core.options import parse
    from recipezoo.core.outputs import report_folder, write_text

    opts, overrides = parse(argv, OPTIONS, "measure_image_cache", __doc__)
    if not any(o.startswith("data.root=") for o in overrides):
        raise ConfigError("pass data.root=/path/to/images (see --help).")
    out = Path(opts["out"] or Path("outputs") / "measure_image_cache" / time.strftime("%Y-%m-%d_%H-%M-%S"))
    out = report_folder(out.resolve(), default_name="measure_image_cache")
    cfg = compose_checked([f"+recipe={opts['recipe']}", *overrides], ROOT / "conf")
    setup_logging()
    import torch
    from hydra.utils import instantiate

    # Read every file once first, so that both timed runs find them in the OS file cache (the first run would
    # otherwise pay for the disk alone).
    cfg.data.cache_images = False
    warm = instantiate(cfg.data)
    warm.setup()
    for ds in warm.datasets.values():
        for item in ds.items:
            Path(item).read_bytes()
    runs, modules = {}, {}
    for cache in (False, True):
        cfg.data.cache_images = cache
        modules[cache] = instantiate(cfg.data)
        runs["on" if cache else "off"] = timed_epochs(modules[cache], opts["epochs"])
    pp = modules[True].preprocessing
    result = {
        "command": " ".join(["python scripts/measure_image_cache.py", *argv]),
        "recipe": opts["recipe"],
        "preprocessing": {"mode": pp.mode, "image_size": pp.crop_size, "resize_size": pp.resize_size},
        "batch_size": modules[True].batch_size,
        "num_workers": modules[True].loader_kwargs["num_workers"],
        "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "cache": {
            "images": len(modules[True].cache or ()),
            "mb": round((modules[True].cache.nbytes if modules[True].cache else 0) / 2**20, 1),
        },
        "runs": runs,
        "eval_agreement": eval_agreement(modules[True], modules[False]),
    }
    write_text(out / "measurement.json", json.dumps(result, indent=2) + "\n", option="out")
    epochs = range(1, opts["epochs"] + 1)
    print(f"\n{result['command']}\n{result['hardware']}, num_workers={result['num_workers']}, {pp}")
    print("| cache | setup s | " + " | ".join(f"epoch {e} s" for e in epochs) + " |")
    print("|---|---|" + "---|" * len(epochs))
    for name, r in runs.items():
        print(f"| {name} | {r['setup_s']:.2f} | " + " | ".join(f"{s:.2f}" for s in r["epoch_s"]) + " |")
    agree = result["eval_agreement"]
    print(
        f"cache: {result['cache']['images']} images, {result['cache']['mb']} MB; eval ({agree['split']}): "
        f"{agree['identical_images']}/{agree['images']} images identical, max diff {agree['max_diff_levels']:g} "
        f"levels (of 255), mean {agree['mean_diff_levels']:g}"
    )
    print(f"written: {out / 'measurement.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
