"""Measure the recommendation recipes on a real interaction log, beside the classical baselines of the same split.

usage (outputs go under the current folder unless told):
    python scripts/measure_recsys.py data.path=/path/to/ratings.csv \\
        [item_features=/path/to/movies.csv] [text_encoder=/path/to/all-MiniLM-L6-v2] \\
        [recipes=recsys/matrix_factorization,recsys/ncf,recsys/two_tower,recsys/sasrec] [out=outputs/measure_recsys] \\
        [threads=1] [scale_items=100000] [key=value overrides passed to every train.py run]

For every recipe: trains it with train.py (a subprocess, as a user would), reads the test metrics of the model and of
its baselines from summary.json, exports the best checkpoint to ONNX (parity), and measures full-catalogue scoring
throughput (users per second): the LightningModule's ranking of the test users (eager PyTorch, the evaluation code
path: all items scored, seen items masked, ranks and top-k computed), and top-10 lists for every known user through
the ONNX bundle (the torch-free serving path). ``item_features`` and ``text_encoder`` go to the two-tower run only
(``data.item_features`` and ``backbone.pretrained``). ``threads`` sets OMP_NUM_THREADS / torch's intra-op threads
for every run (on a shared machine one thread avoids spin-waiting against other jobs). ``scale_items`` also times
full-catalogue ranking over that many items (a random MF: throughput and memory at scale; 0 skips it). Prints a
table and writes measurement.json.
"""

import json
import os
import sys
import time
from pathlib import Path

from recipezoo.cli import exit_on_user_error

ROOT = Path(__file__).resolve().parents[1]
RECIPES = "recsys/matrix_factorization,recsys/ncf,recsys/two_tower,recsys/sasrec"


def ranking_throughput(ckpt: str, threads: int) -> dict:
    """Users/s of the module's full-catalogue ranking over the test users (eager PyTorch)."""
    import torch
    from hydra.utils import instantiate

    from recipezoo.core.checkpoint import load_module, read, restore_info

    torch.set_num_threads(threads)
    module, cfg = load_module(ckpt)
    dm = instantiate(cfg.data)
    dm.restore(restore_info(read(ckpt)))
    dm.setup("test")
    if module.objective == "rating":
        return {}
    loader = dm.eval_dataloader("test")
    n = 0
    with torch.no_grad():
        start = time.perf_counter()
        module._start_ranking("test")
        for batch in loader:
            module.rank_batch(batch)
            n += len(batch["user"])
        elapsed = time.perf_counter() - start
    return {"ranked_users": n, "eager_users_per_s": round(n / elapsed, 1), "n_items": module.n_items}


def scale_throughput(n_items: int, threads: int, users: int = 2048, batch: int = 256, dim: int = 64) -> dict:
    """Users/s and peak memory of full-catalogue ranking at ``n_items`` items (a random MF, random targets): the
    chunked evaluation keeps memory flat however large the catalogue."""
    import resource
    from functools import partial

    import torch

    from recipezoo.recsys.models import BiasedMF
    from recipezoo.recsys.task import Recommender

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    module = Recommender(
        BiasedMF(users, n_items, dim), partial(torch.optim.Adam), objective="softmax", n_items=n_items
    ).eval()
    module.item_count.copy_(torch.rand(n_items + 1) * 100 + 1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = 0
    with torch.no_grad():
        start = time.perf_counter()
        module._start_ranking("test")
        for first in range(1, users + 1, batch):
            user = torch.arange(first, min(users + 1, first + batch))
            b = {
                "user": user,
                "targets": torch.randint(1, n_items + 1, (len(user), 1)),
                "seen": torch.randint(1, n_items + 1, (len(user), 100)),
            }
            ranks, top, _ = module.rank_batch(b)
            module.test_ranking.update(ranks, b["targets"], top)
            n += len(user)
        elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "n_items": n_items,
        "users": n,
        "eager_users_per_s": round(n / elapsed, 1),
        "peak_rss_growth_mb": round(max(0, peak - before) / 1024, 1),
    }


def bundle_throughput(bundle: Path, k: int = 10) -> dict:
    """Users/s of top-k lists for every known user through the ONNX bundle (numpy + onnxruntime)."""
    from recipezoo.runtime.recsys import BundleRecommender

    rec = BundleRecommender(bundle)
    users = rec.user_ids
    start = time.perf_counter()
    lists = rec.recommend(users, k)
    elapsed = time.perf_counter() - start
    assert all(len(x) == k for x in lists)
    return {"served_users": len(users), "onnx_users_per_s": round(len(users) / elapsed, 1)}


@exit_on_user_error
def main(argv: list[str]) -> int:
    opts = {
        "recipes": RECIPES,
        "out": str(Path("outputs") / "measure_recsys" / time.strftime("%Y-%m-%d_%H-%M-%S")),
        "item_features": None,
        "text_encoder": None,
        "threads": "1",
        "scale_items": "100000",
    }
    from recipezoo.cli import split_options  # imports no torch: OMP_NUM_THREADS is still set below in time
    from recipezoo.core.errors import ConfigError
    from recipezoo.core.options import exit_on_help
    from recipezoo.core.outputs import report_folder, write_text

    exit_on_help(argv, __doc__)
    overrides = split_options(argv, opts)
    if not any(o.startswith(("data.path=", "data.dataset=")) for o in overrides):
        raise ConfigError("pass data.path=/path/to/ratings.csv (see --help).")
    threads = int(opts["threads"])
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the train.py subprocesses inherit it
    out = report_folder(Path(opts["out"]).resolve(), default_name="measure_recsys")

    from recipezoo.cli import train_in_subprocess
    from recipezoo.export import export

    rows = []
    for recipe in opts["recipes"].split(","):
        run_dir = out / recipe.replace("/", "_")
        extra = []
        if recipe.endswith("two_tower"):
            if opts["item_features"]:
                extra.append(f"data.item_features={opts['item_features']}")
            if opts["text_encoder"]:
                extra.append(f"backbone.pretrained={opts['text_encoder']}")
        summary, wall = train_in_subprocess(ROOT, recipe, [*overrides, *extra], run_dir)
        best = summary["best_checkpoint"]
        bundle = run_dir / "export" / "onnx"
        parity = export(best, "onnx", bundle, measure_latency=False)["parity"]
        speed = {**ranking_throughput(best, threads)}
        if "rmse" not in summary["monitor"]:
            speed.update(bundle_throughput(bundle))
        rows.append(
            {
                "recipe": recipe,
                "test": summary["test"],
                "baseline": summary.get("baseline", {}),
                "epochs": summary["epochs"],
                "fit_time_s": summary["fit_time_s"],
                "train_wall_time_s": round(wall, 1),
                "speed": speed,
                "onnx_max_abs_diff": parity["max_abs_diff"],
                "threads": threads,
            }
        )
        write_text(out / "measurement.json", json.dumps({"recipes": rows}, indent=2) + "\n")

    scale = scale_throughput(int(opts["scale_items"]), threads) if int(opts["scale_items"]) else {}
    write_text(out / "measurement.json", json.dumps({"recipes": rows, "scale": scale}, indent=2) + "\n")

    print("\n| recipe | model | popularity / bias | item-kNN | SVD | epochs | fit | wall | users/s eager / ONNX |")
    for r in rows:
        base = r["baseline"].get("test", {})
        if "test/rmse" in r["test"]:
            cells = [
                f"RMSE {r['test']['test/rmse']:.4f} MAE {r['test']['test/mae']:.4f}",
                f"{base.get('bias/test/rmse', float('nan')):.4f}",
                "",
                f"{base.get('svd/test/rmse', float('nan')):.4f}",
            ]
        else:
            cells = [f"HR@10 {r['test']['test/hr@10']:.4f} NDCG@10 {r['test']['test/ndcg@10']:.4f}"] + [
                f"{base.get(f'{m}/test/hr@10', float('nan')):.4f} / {base.get(f'{m}/test/ndcg@10', float('nan')):.4f}"
                for m in ("popularity", "itemknn", "svd")
            ]
        s = r["speed"]
        print(
            f"| {r['recipe']} | " + " | ".join(cells) + f" | {r['epochs']} | {r['fit_time_s']:.0f} s | "
            f"{r['train_wall_time_s']:.0f} s | {s.get('eager_users_per_s', '')} / {s.get('onnx_users_per_s', '')} |"
        )
    if scale:
        print(
            f"\nFull-catalogue ranking at {scale['n_items']:,} items (random MF, {scale['users']} users): "
            f"{scale['eager_users_per_s']} users/s, peak RSS growth {scale['peak_rss_growth_mb']} MB"
        )
    print(f"\nmeasurement.json: {out / 'measurement.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
