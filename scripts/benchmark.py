"""Benchmark recipes: recipezoo against a hand-written PyTorch loop, side by side, plus start-up and inference.

usage:
    python scripts/benchmark.py +recipe=fraud/tabular_mlp [overrides ...] [steps=60] [warmup=10] [window=10]
                                [rounds=2] [infer=true] [startup=false] [out=outputs/benchmark/<time>]
                                [overwrite=false]
    python scripts/benchmark.py all [overrides ...] [nlp:backbone.pretrained=/models/minilm ...]
    python scripts/benchmark.py micro        # the micro-benchmarks behind the defaults (optimizer, logging, bar)

Each recipe runs on its synthetic twin unless the overrides say otherwise (``data.synthetic=false data.path=...``);
``<domain>:<override>`` applies an override to that domain's recipes only, ``<domain>/<name>:<override>`` to one
recipe. ``all`` benchmarks every recipe, each in
its own process (so peak memory is per recipe), and times start-up (process start to first optimizer step of
``python train.py``, beside a bare ``import lightning.pytorch``). Writes ``benchmark.json``, prints a table, and
draws ``ratios.png`` (with matplotlib installed) in the output folder. See docs/performance.md for how to read it.

The output folder is ``out=`` (or ``hydra.run.dir=``), by default ``outputs/benchmark/<time>`` under the current
folder; it must be new or empty, or hold an earlier benchmark's files (replaced with ``overwrite=true``: nothing else
there is ever touched).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from recipezoo.cli import exit_on_user_error  # noqa: E402
from recipezoo.core.options import Option  # noqa: E402

OPTIONS = {
    "steps": Option(60, int, minimum=1),
    "warmup": Option(10, int, minimum=1),
    "window": Option(10, int, minimum=1),
    "rounds": Option(2, int, minimum=1),
    "infer": Option(True, bool),
    "startup": Option(False, bool),
    "out": Option(None, example="outputs/benchmark/<time>"),
    "json": Option(None, example="<file>"),
    "overwrite": Option(False, bool),
}
RUN_DIR_KEYS = ("hydra.run.dir", "+hydra.run.dir", "++hydra.run.dir")


def _flag(value: str) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def _table(results: list[dict[str, Any]]) -> str:
    head = (
        "| recipe | plain ms/step | recipezoo ms/step | ratio | ratio (fastest windows) | ratio (CPU time) | "
        "samples/s | tokens/s or audio s/s | loader samples/s | peak RSS MB | batch-1 ms eager / TorchScript / ONNX |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['recipe']} | skipped: {r['error']} |")
            continue
        inf = r.get("inference", {})
        lat = " / ".join(f"{inf[k]['batch1_ms']:.2f}" if k in inf else "-" for k in ("eager", "torchscript", "onnx"))
        ours, plain = r.get("recipezoo", {}), r.get("plain", {})
        lines.append(
            f"| {r['recipe']} | {plain.get('step_ms', float('nan')):.2f} | {ours.get('step_ms', float('nan')):.2f} | "
            f"{r.get('ratio', float('nan')):.3f} | {r.get('ratio_min', float('nan')):.3f} | "
            f"{r.get('ratio_cpu', float('nan')):.3f} | "
            f"{ours.get('samples_per_s', float('nan')):,.0f} | "
            f"{ours.get('tokens_per_s', ours.get('audio_s_per_s', float('nan'))):,.0f} | "
            f"{r['loader'].get('samples_per_s', float('nan')):,.0f} | "
            f"{r['peak_rss_mb']:,.0f} | {lat} |"
        )
    return "\n".join(lines)


def _plot(results: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no plot: pip install matplotlib)")
        return False
    rows = [r for r in results if "ratio" in r]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    ax.barh([r["recipe"] for r in rows], [r["ratio"] for r in rows], color="#4c72b0")
    for goal, style in ((1.03, "--"), (1.2, ":")):
        ax.axvline(goal, color="grey", linestyle=style, label=f"goal {goal}")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("step time, recipezoo / plain PyTorch loop (lower is better)")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def split_arguments(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The script's own options (typed; ``hydra.run.dir=`` read as ``out=``) and the rest (recipes, overrides)."""
    from recipezoo.core.options import parse

    own, rest = [], []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if arg in ("-h", "--help") or (sep and key in OPTIONS):
            own.append(arg)
        elif sep and key in RUN_DIR_KEYS:
            own.append(f"out={value}")  # the folder a user names the way train.py takes it
        else:
            rest.append(arg)
    opts, _ = parse(own, OPTIONS, "benchmark", __doc__)
    return opts, rest


def output_folder(opts: dict[str, Any], name: str) -> Path:
    """The output folder, checked: ``out=`` or ``outputs/benchmark/<name>`` under the current folder."""
    from recipezoo.core.outputs import claim_folder

    out = Path(opts["out"] or Path("outputs") / "benchmark" / name).expanduser().resolve()
    return claim_folder(out, bool(opts["overwrite"]), option="out", default_name="benchmark")


def micro(opts: dict[str, Any]) -> int:
    """The micro-benchmarks behind recipezoo's defaults (optimizer, logging, progress bar)."""
    import logging

    from recipezoo.benchmark import lightning_overheads, optimizer_step_ms
    from recipezoo.core.outputs import record_folder

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    out = output_folder(opts, time.strftime("micro_%Y-%m-%d_%H-%M-%S"))
    import torch

    report = {
        "threads": torch.get_num_threads(),
        "adamw_step_ms_22M_params": optimizer_step_ms(),
        "mlp_64_128_10_batch64_step_ms": lightning_overheads(rounds=int(opts["rounds"]) + 1),
    }
    (out / "micro.json").write_text(json.dumps(report, indent=2) + "\n")
    record_folder(out)
    print(json.dumps(report, indent=2))
    return 0


def check_overrides(recipes: list[str], per_recipe: Any) -> None:
    """Compose each recipe's config with its overrides (no model is built), so that a typo ends in one line
    before anything runs or is written."""
    import tempfile

    from recipezoo.benchmark import compose

    with tempfile.TemporaryDirectory(prefix="recipezoo-bench-check-") as tmp:
        for recipe in recipes:
            compose(recipe, per_recipe(recipe), Path(tmp))


@exit_on_user_error
def main(argv: list[str]) -> int:
    from recipezoo.cli import available_recipes, check_recipe_args
    from recipezoo.core.errors import ConfigError
    from recipezoo.core.outputs import record_folder

    opts, rest = split_arguments(argv)
    if "micro" in rest:
        return micro(opts)
    check_recipe_args(rest, ROOT / "recipes")
    recipes = [a.split("=", 1)[1] for a in rest if a.startswith("+recipe=")]
    overrides = [a for a in rest if not a.startswith("+recipe=") and a != "all"]
    if "all" in rest:
        recipes = available_recipes(ROOT / "recipes")
    if not recipes:
        raise ConfigError(
            "name what to benchmark: +recipe=<name> (e.g. +recipe=fraud/tabular_mlp), all, or micro. "
            "Help: python scripts/benchmark.py --help"
        )
    if not any(o.startswith("data.synthetic=") or ":data.synthetic=" in o for o in overrides):
        overrides.insert(0, "data.synthetic=true")

    def for_recipe(recipe: str) -> list[str]:
        picked = []
        for o in overrides:
            scope, sep, value = o.partition(":")
            if sep and "=" not in scope:  # <domain>:key=value or <domain>/<name>:key=value
                if scope in (recipe, recipe.split("/")[0]):
                    picked.append(value)
            else:
                picked.append(o)
        return picked

    if len(recipes) == 1:
        check_overrides(recipes, for_recipe)  # (``all`` checks each recipe in its own process)
    out = output_folder(opts, time.strftime("%Y-%m-%d_%H-%M-%S"))
    try:
        return run(opts, rest, recipes, for_recipe, out)
    finally:  # everything written there is this benchmark's: a later overwrite=true may replace it
        record_folder(out)


def run(opts: dict[str, Any], rest: list[str], recipes: list[str], for_recipe: Any, out: Path) -> int:
    """Benchmark ``recipes`` into ``out`` (claimed by :func:`output_folder`)."""
    results: list[dict[str, Any]] = []
    numbers = {k: int(opts[k]) for k in ("steps", "warmup", "window", "rounds")}
    infer = "true" if opts["infer"] else "false"
    if len(recipes) == 1:
        from recipezoo.benchmark import benchmark_recipe

        results.append(
            benchmark_recipe(
                recipes[0], for_recipe(recipes[0]), infer=bool(opts["infer"]), out=out / "work", **numbers
            )  # fmt: skip
        )
    else:
        for recipe in recipes:  # one process each: peak memory per recipe, no state shared between recipes
            target = out / (recipe.replace("/", "_") + ".json")
            cmd = [sys.executable, __file__, f"+recipe={recipe}", *for_recipe(recipe), f"json={target}",
                   f"out={out / recipe.replace('/', '_')}", *(f"{k}={v}" for k, v in numbers.items()),
                   f"infer={infer}"]  # fmt: skip
            print("$", " ".join(cmd[1:]), flush=True)
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode == 0 and target.is_file():
                results.append(json.loads(target.read_text())[0])
            else:
                lines = [ln for ln in proc.stderr.strip().splitlines() if "Warning" not in ln and "warn(" not in ln]
                error = f"exit status {proc.returncode}: " + (lines or ["no message"])[-1][:160]
                print(f"  {recipe}: {error}", flush=True)
                results.append({"recipe": recipe, "error": error})
    report: dict[str, Any] = {"recipes": results}
    if opts["startup"] or "all" in rest:
        from recipezoo.benchmark import startup

        report["startup"] = startup()
    if opts["json"]:
        from recipezoo.core.outputs import new_output_file

        new_output_file(opts["json"], option="json", default_name="benchmark.json").write_text(
            json.dumps(results, indent=2) + "\n"
        )
        return 0
    (out / "benchmark.json").write_text(json.dumps(report, indent=2) + "\n")
    print(_table(results))
    if "startup" in report:
        s = report["startup"]
        print(
            f"\nstart-up ({s['recipe']} recipe): first optimizer step after {s['first_step_s']:.2f} s; "
            f"`import lightning.pytorch` alone {s['import_lightning_s']:.2f} s; ours on top {s['ours_on_top_s']:.2f} s"
        )
        for stage, seconds in s["stages_s"].items():
            print(f"  {stage}: {seconds:.2f} s")
    plotted = _plot(results, out / "ratios.png")
    print(f"\nWritten: {out / 'benchmark.json'}" + (f", {out / 'ratios.png'}" if plotted else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
