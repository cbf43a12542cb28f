"""Measure what pretrained weights buy on a data set: fine-tuning with each head initialisation, the linear probe,
and the same network trained from scratch, all on one split.

usage (outputs go under the current folder unless told):
    python scripts/measure_transfer.py recipe=vision/imagefolder_finetune data.root=/path/to/images \
        backbone.name=timm:efficientnet_lite0 backbone.pretrained=/path/to/weights.pth \
        [inits=zero,probe,default] [scratch=true] [run_dir=outputs/transfer/<time>] [key=value overrides ...]

Trains with train.py (subprocesses, exactly as a user would): one fine-tuning run per ``finetune.head_init`` in
``inits`` (the linear probe is fitted in each and reported as its baseline), then, with ``scratch=true``, the same
recipe with ``backbone.pretrained=false``. Prints a table (best validation score, test metrics, epochs, wall time),
names the head initialisation that scored best on validation (the one to choose: never the test split) and writes
measurement.json into the run folder.
"""

import json
import sys
import time
from pathlib import Path

from recipezoo.cli import exit_on_user_error

ROOT = Path(__file__).resolve().parents[1]


@exit_on_user_error
def main(argv: list[str]) -> int:
    opts = {"recipe": "vision/imagefolder_finetune", "inits": "zero,probe,default", "scratch": "true", "run_dir": None}
    from recipezoo.cli import split_options, train_in_subprocess
    from recipezoo.core.errors import ConfigError
    from recipezoo.core.options import exit_on_help
    from recipezoo.core.outputs import precious_reason, write_text

    exit_on_help(argv, __doc__)
    overrides = split_options(argv, opts)
    inits = [i.strip() for i in str(opts["inits"]).split(",") if i.strip()]
    unknown = [i for i in inits if i not in ("zero", "probe", "default")]
    if unknown:
        raise ConfigError(f"inits: unknown head initialisation {', '.join(unknown)}; e.g. inits=zero,probe,default.")
    scratch = str(opts["scratch"]).lower() in ("1", "true", "yes")
    run_dir = Path(opts["run_dir"] or Path("outputs") / "transfer" / time.strftime("%Y-%m-%d_%H-%M-%S")).resolve()
    if precious_reason(run_dir):
        raise ConfigError(f"refusing to train into {run_dir} ({precious_reason(run_dir)}). Pass run_dir=transfer.")

    rows: list[dict] = []
    for init in inits:
        summary, wall = train_in_subprocess(
            ROOT, opts["recipe"], [*overrides, f"finetune.head_init={init}", "probe.enabled=true"], run_dir / init
        )
        rows.append({"setting": f"fine-tune, head_init={init}", "summary": summary, "wall_s": round(wall, 1)})
    probe = next((r["summary"].get("baseline") for r in rows if r["summary"].get("baseline")), None)
    if scratch:
        summary, wall = train_in_subprocess(
            ROOT, opts["recipe"], [*overrides, "backbone.pretrained=false", "probe.enabled=false"], run_dir / "scratch"
        )
        rows.append({"setting": "from scratch", "summary": summary, "wall_s": round(wall, 1)})

    monitor = rows[0]["summary"]["monitor"] if rows else "val/acc"
    lines = [f"| setting | best {monitor} | test | epochs | wall time |", "|---|---|---|---|---|"]
    for r in rows:
        s = r["summary"]
        test = ", ".join(f"{k}={v:.4f}" for k, v in sorted(s["test"].items()) if v is not None and "loss" not in k)
        lines.append(f"| {r['setting']} | {s['best_score']:.4f} | {test} | {s['epochs']} | {r['wall_s']:.0f} s |")
    if probe:
        test = ", ".join(f"{k}={v:.4f}" for k, v in sorted(probe["test"].items()) if "loss" not in k)
        lines.append(f"| linear probe (C={probe['params']['C']:g}) | {probe['val'].get(monitor, float('nan')):.4f} "
                     f"| {test} | — | {probe['fit_time_s']:.0f} s |")  # fmt: skip
    finetuned = [r for r in rows if r["setting"].startswith("fine-tune") and r["summary"]["best_score"] is not None]
    best = None
    if finetuned:
        pick = min if "loss" in monitor else max
        best = pick(finetuned, key=lambda r: r["summary"]["best_score"])["setting"]
        lines.append(f"\nBest on validation: {best}")
    result = {
        "recipe": opts["recipe"],
        "overrides": overrides,
        "runs": [{"setting": r["setting"], "wall_s": r["wall_s"], **r["summary"]} for r in rows],
        "best_on_validation": best,
    }
    write_text(run_dir / "measurement.json", json.dumps(result, indent=2) + "\n", option="run_dir")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
