"""Benchmark a recipe: recipezoo (Lightning) against a plain PyTorch loop, side by side, in one process.

For one recipe, :func:`benchmark_recipe` builds the data and the model exactly as ``train.py`` does, then measures:

- ``loader``: the training DataLoader alone (samples/s): is the input pipeline or the model the bottleneck?
- ``plain``: the same model, data and optimizer (and schedule, gradient clipping, fine-tuning freeze) driven by a
  hand-written loop: ``loss = module.loss(batch); loss.backward(); optimizer.step()``;
- ``recipezoo``: the recipe's own Trainer, callbacks, logger and progress bar (validation and checkpoints, which
  happen between epochs, are left out of both);
- ``ratio``: recipezoo's step time over the plain loop's (1.0 = no overhead). The two loops alternate (plain,
  recipezoo, plain, recipezoo) from the same initial weights, and each reports the median of several timed windows
  after a warm-up, so machine noise hits both alike;
- ``inference``: eager PyTorch vs TorchScript vs onnxruntime latency at batch 1 and throughput at batch 64.

:func:`startup` times a fresh ``python train.py`` from process start to its first optimizer step, beside a bare
``import lightning.pytorch``, with the run's own breakdown (imports, Hydra, data, model, Trainer).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from omegaconf import DictConfig, open_dict

from recipezoo.core.lean import LeanHookName, NullProfiler, trainer_extras
from recipezoo.core.logs import route_lightning_logs

log = logging.getLogger("recipezoo")

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------------------------
# What a batch holds


def batch_units(batch: Any, sample_rate: int | None = None) -> dict[str, float]:
    """``samples`` in a batch, and ``tokens`` (text: real tokens) or ``audio_s`` (speech: seconds of real audio,
    from ``lengths`` at ``sample_rate``) where they apply."""
    if isinstance(batch, dict):
        units: dict[str, float] = {}
        first = next(v for v in batch.values() if isinstance(v, torch.Tensor))
        units["samples"] = float(first.shape[0])
        if "attention_mask" in batch:
            units["tokens"] = float(batch["attention_mask"].sum())
        if sample_rate and "audio" in batch and "lengths" in batch:
            units["audio_s"] = float(batch["lengths"].sum()) / sample_rate
        return units
    if isinstance(batch, (list, tuple)):
        first = next(v for v in batch if isinstance(v, torch.Tensor))
        return {"samples": float(first.shape[0])}
    return {"samples": float(batch.shape[0])}


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch) if not hasattr(batch, "_fields") else batch
    return batch


def _cycle(make: Callable[[], Any]) -> Iterator[Any]:
    """Batches forever: the loader re-iterated at each epoch end, as training does."""
    while True:
        yield from make()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Windows:
    """Per-step timestamps and units of one loop, cut into windows after a warm-up.

    Each step records wall time and the process's CPU time. On a shared virtual machine the wall clock also counts
    the moments the host runs someone else (steal time), which come in bursts and can swing a millisecond step by
    half; CPU time counts only this process's work, so on CPU it gives a steadier ratio.
    """

    def __init__(self, warmup: int, window: int, sample_rate: int | None = None) -> None:
        self.warmup, self.window, self.sample_rate = warmup, window, sample_rate
        self.times: list[float] = []
        self.cpu_times: list[float] = []
        self.units: list[dict[str, float]] = []

    def add(self, units: dict[str, float]) -> None:
        self.times.append(time.perf_counter())
        self.cpu_times.append(time.process_time())
        self.units.append(units)

    def measurements(self) -> list[dict[str, float]]:
        """Per timed window: step time (ms), CPU time per step (ms) and throughput of each unit (per second)."""
        t, u = self.times[self.warmup - 1 :], self.units[self.warmup :]
        cpu = self.cpu_times[self.warmup - 1 :] if len(self.cpu_times) == len(self.times) else None
        out = []
        for start in range(0, len(u) - self.window + 1, self.window):
            dt = t[start + self.window] - t[start]
            m = {"step_ms": 1e3 * dt / self.window}
            if cpu is not None:
                m["cpu_ms"] = 1e3 * (cpu[start + self.window] - cpu[start]) / self.window
            for key in u[start]:
                m[f"{key}_per_s"] = sum(x[key] for x in u[start : start + self.window]) / dt
            out.append(m)
        return out


def medians(windows: Sequence[Windows]) -> dict[str, float]:
    """The median window (by step time) over every timed window of every round, with the fastest window's step.

    Every figure comes from that one window (the lower median when the count is even), so step time and throughput
    agree even when a busy machine makes the windows bimodal; ``step_ms_min`` is what the loop does undisturbed.
    """
    ms = sorted((m for w in windows for m in w.measurements()), key=lambda m: m["step_ms"])
    if not ms:
        return {}
    out = {k: round(v, 3) for k, v in ms[(len(ms) - 1) // 2].items() if k != "cpu_ms"}
    out["step_ms_min"] = round(ms[0]["step_ms"], 3)
    if all("cpu_ms" in m for m in ms):  # the median CPU time per step, over the same windows
        out["cpu_ms"] = round(sorted(m["cpu_ms"] for m in ms)[(len(ms) - 1) // 2], 3)
    out["windows"] = len(ms)
    return out


# --------------------------------------------------------------------------------------------------------------
# Building a recipe as train.py does


def compose(recipe: str, overrides: Sequence[str], output_dir: Path) -> DictConfig:
    """The config ``python train.py +recipe=<recipe> <overrides>`` would run, writing into ``output_dir``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from recipezoo.core.options import config_keys, hydra_error

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        try:
            cfg = hydra_compose("train", overrides=[f"+recipe={recipe}", *overrides], return_hydra_config=True)
        except (HydraException, OmegaConfBaseException) as e:
            # One line naming the close matches among the real keys (of the config without the dotted overrides).
            try:
                groups = [o for o in overrides if "." not in o.partition("=")[0]]
                keys = config_keys(hydra_compose("train", overrides=[f"+recipe={recipe}", *groups]))
            except Exception:  # the group choices are wrong too: the message alone says which
                keys = []
            raise hydra_error(e, keys) from None
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.trainer.default_root_dir = str(output_dir)
        del cfg.hydra
    return cfg


class StepTimer(L.Callback):
    """Records the time and the units of every training batch (recipezoo's side of the comparison)."""

    def __init__(self, windows: Windows) -> None:
        self.windows = windows

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        _sync(pl_module.device)
        self.windows.add(batch_units(batch, self.windows.sample_rate))


class _Epoch:
    """The ``trainer`` the fine-tuning callback reads in the plain loop (only its epoch)."""

    def __init__(self, epoch: int) -> None:
        self.current_epoch = epoch


def _epochs(make: Callable[[], Any]) -> Iterator[tuple[int, Any]]:
    """``(epoch, batch)`` forever: the loader re-iterated at each epoch end, as training does."""
    epoch = 0
    while True:
        for batch in make():
            yield epoch, batch
        epoch += 1


def plain_loop(cfg: DictConfig, module: L.LightningModule, datamodule: Any, steps: int, windows: Windows) -> None:
    """The hand-written loop: same batches, loss, optimizer, schedule and clipping; nothing else."""
    device = torch.device("cuda" if cfg.trainer.get("accelerator") in ("gpu", "cuda", "auto") and
                          torch.cuda.is_available() else "cpu")  # fmt: skip
    module.to(device).train()
    policy = getattr(module, "policy", None)
    finetune = None
    if policy is not None:  # the fine-tuning schedule (freeze, unfreeze), epoch by epoch as the Trainer applies it
        from recipezoo.core.finetune import FineTuningCallback

        finetune = FineTuningCallback(policy)
    # The module's own optimizer and parameter groups; its schedule is built here, as there is no Trainer to ask
    # for the step count.
    make_scheduler, module.scheduler_factory = getattr(module, "scheduler_factory", None), None
    opt = module.configure_optimizers()
    module.scheduler_factory = make_scheduler
    optimizer = opt["optimizer"] if isinstance(opt, dict) else opt
    scheduler = make_scheduler(optimizer, total_steps=steps) if make_scheduler else None
    clip = cfg.trainer.get("gradient_clip_val")
    precision = str(cfg.trainer.get("precision", "32-true"))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision.startswith("bf16-mixed") else None
    batches, current = _epochs(datamodule.train_dataloader), -1
    for _ in range(steps):
        epoch, batch = next(batches)
        if finetune is not None and epoch != current:
            finetune.on_train_epoch_start(_Epoch(epoch), module)  # type: ignore[arg-type]
        current = epoch
        batch = _to_device(batch, device)
        if autocast is not None:
            with autocast:
                loss = module.loss(batch)
        else:
            loss = module.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(module.parameters(), float(clip))
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        _sync(device)
        windows.add(batch_units(batch, windows.sample_rate))


def recipezoo_loop(cfg: DictConfig, module: L.LightningModule, datamodule: Any, steps: int, windows: Windows) -> None:
    """The recipe's own Trainer, callbacks, logger and progress bar, for ``steps`` optimizer steps (no validation)."""
    route_lightning_logs()
    from hydra.utils import instantiate

    callbacks_cfg = dict(cfg.get("callbacks") or {})
    for name in ("model_checkpoint", "last_checkpoint", "early_stopping"):  # they act between epochs
        callbacks_cfg.pop(name, None)
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks_cfg.pop("progress_bar", None)
    callbacks = [instantiate(v) for v in callbacks_cfg.values() if v] + [StepTimer(windows)]
    loggers = [instantiate(v) for v in (cfg.get("logger") or {}).values() if v]
    trainer_cfg = dict(cfg.trainer)
    trainer_cfg.update(max_steps=steps, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0,
                       enable_checkpointing=False, fast_dev_run=False)  # fmt: skip
    trainer = instantiate(trainer_cfg, callbacks=callbacks, logger=loggers or False, **trainer_extras(cfg.trainer))
    trainer.fit(module, datamodule=datamodule)


def loader_throughput(datamodule: Any, steps: int, windows: Windows) -> None:
    batches = _cycle(datamodule.train_dataloader)
    for _ in range(steps):
        windows.add(batch_units(next(batches), windows.sample_rate))


def inference(module: L.LightningModule, out: Path, repeats: int = 20) -> dict[str, Any]:
    """Eager vs TorchScript vs onnxruntime: batch-1 latency (ms) and batch-64 throughput (samples/s)."""
    from recipezoo.core.export import Runner, eager, export_onnx, export_torchscript, latency_ms

    module = module.cpu().eval()
    spec = module.export_spec(8)
    if spec.make_inputs is None:
        return {}
    runners: dict[str, Callable[[dict[str, torch.Tensor]], Any]] = {"eager": lambda x: eager(spec, x)}
    for fmt, writer, name in (("torchscript", export_torchscript, "model.pt"), ("onnx", export_onnx, "model.onnx")):
        try:
            writer(spec, out / name)
            runners[fmt] = Runner(fmt, out / name, torch.get_num_threads())  # the same cores as eager
        except Exception as e:  # report, do not stop the benchmark
            log.warning("%s export failed: %s", fmt, str(e).splitlines()[0][:200])
    result: dict[str, Any] = {}
    for fmt, run in runners.items():
        one, big = spec.make_inputs(1), spec.make_inputs(64)
        ms64 = latency_ms(lambda r=run, b=big: r(b), repeats=max(3, repeats // 4), warmup=2)
        result[fmt] = {
            "batch1_ms": latency_ms(lambda r=run, o=one: r(o), repeats=repeats, warmup=3),
            "batch64_samples_per_s": 64 / (ms64 / 1e3),
        }
    return result


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def benchmark_recipe(
    recipe: str,
    overrides: Sequence[str] = (),
    steps: int = 60,
    warmup: int = 10,
    window: int = 10,
    rounds: int = 2,
    infer: bool = True,
    out: Path | None = None,
) -> dict[str, Any]:
    """Measure one recipe (see the module docstring). ``steps`` per loop per round, the first ``warmup`` untimed."""
    from recipezoo.train import build

    out = Path(out or tempfile.mkdtemp(prefix="recipezoo-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    cfg = compose(recipe, overrides, out / "run")
    torch.manual_seed(int(cfg.seed))
    t = time.perf_counter()
    datamodule, module = build(cfg)
    setup_s = time.perf_counter() - t
    initial = copy.deepcopy(module.state_dict())
    result: dict[str, Any] = {"recipe": recipe, "overrides": list(overrides), "setup_s": round(setup_s, 2)}

    rate = getattr(datamodule, "sample_rate", None)  # speech: audio seconds per second
    loader = Windows(warmup, window, rate)
    loader_throughput(datamodule, steps, loader)
    result["loader"] = medians([loader])

    timed: dict[str, list[Windows]] = {"plain": [], "recipezoo": []}
    cuda = torch.cuda.is_available() and cfg.trainer.get("accelerator") != "cpu"
    peaks: dict[str, float] = {}
    loops = (("plain", plain_loop), ("recipezoo", recipezoo_loop))
    for round_ in range(rounds):  # alternate, so that machine noise hits both loops alike
        for name, loop in loops if round_ % 2 == 0 else loops[::-1]:  # and neither always runs first
            fresh = copy.deepcopy(module)
            fresh.load_state_dict(initial)
            # The same seed for both loops of a round: the same shuffling, the same batches (and lengths), the same
            # dropout masks, so their windows time the same work.
            torch.manual_seed(int(cfg.seed) + round_)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            windows = Windows(warmup, window, rate)
            loop(cfg, fresh, datamodule, steps, windows)
            timed[name].append(windows)
            if cuda:
                peaks[name] = max(peaks.get(name, 0.0), torch.cuda.max_memory_allocated() / 2**20)
            del fresh
    result["plain"], result["recipezoo"] = medians(timed["plain"]), medians(timed["recipezoo"])
    if result["plain"] and result["recipezoo"]:
        result["ratio"] = round(result["recipezoo"]["step_ms"] / result["plain"]["step_ms"], 3)
        result["ratio_min"] = round(result["recipezoo"]["step_ms_min"] / result["plain"]["step_ms_min"], 3)
        if not cuda and result["plain"].get("cpu_ms") and result["recipezoo"].get("cpu_ms"):
            # CPU time (all of this process's threads): on a shared VM, the ratio least moved by the neighbours
            result["ratio_cpu"] = round(result["recipezoo"]["cpu_ms"] / result["plain"]["cpu_ms"], 3)
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    if peaks:
        result["cuda_max_allocated_mb"] = {k: round(v, 1) for k, v in peaks.items()}
    if infer:
        result["inference"] = inference(module, out)
    result["device"] = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    return result


# --------------------------------------------------------------------------------------------------------------
# Start-up: process start -> first optimizer step


class FirstStepTimer(L.Callback):
    """Writes, at the first optimizer step, the stage timestamps of this process to ``path`` (JSON, seconds since
    the epoch): used by :func:`startup` (``+callbacks.first_step._target_=recipezoo.benchmark.FirstStepTimer``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.done = False

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        if not self.done:
            self.done = True
            from recipezoo.core.marks import MARKS

            Path(self.path).write_text(json.dumps({**MARKS, "first_step": time.time()}))


def startup(recipe: str | None = None, overrides: Sequence[str] = (), repeats: int = 3) -> dict[str, Any]:
    """Seconds from process start to the first optimizer step of ``python train.py`` (median of ``repeats``), with
    the stages, beside a bare ``python -c "import lightning.pytorch"`` timed in the same run."""
    bare, runs = [], []
    with tempfile.TemporaryDirectory(prefix="recipezoo-startup-") as tmp:
        for i in range(repeats):
            t = time.time()
            subprocess.run([sys.executable, "-c", "import lightning.pytorch"], check=True)
            bare.append(time.time() - t)
            marks = Path(tmp) / f"marks{i}.json"
            cmd = [
                sys.executable,
                "train.py",
                *([f"+recipe={recipe}"] if recipe else []),
                *overrides,
                f"+callbacks.first_step._target_={__name__}.FirstStepTimer",
                f"+callbacks.first_step.path={marks}",
                "trainer.max_steps=1",
                "test=false",
                "trainer.enable_progress_bar=false",
                "trainer.enable_model_summary=false",
                f"hydra.run.dir={tmp}/run{i}",
            ]
            t = time.time()
            subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
            m = json.loads(marks.read_text())
            runs.append({k: round(v - t, 3) for k, v in sorted(m.items(), key=lambda kv: kv[1])})
    best = sorted(runs, key=lambda r: r["first_step"])[len(runs) // 2]
    stages = list(best.items())
    breakdown = {f"{a} -> {b}": round(tb - ta, 3) for (a, ta), (b, tb) in zip([("process start", 0.0), *stages],
                                                                               stages)}  # fmt: skip
    return {
        "recipe": recipe or "default",
        "first_step_s": round(statistics.median(r["first_step"] for r in runs), 2),
        "import_lightning_s": round(statistics.median(bare), 2),
        "ours_on_top_s": round(statistics.median(r["first_step"] for r in runs) - statistics.median(bare), 2),
        "stages_s": breakdown,
        "repeats": repeats,
    }


def lazy_import_report(module: str) -> list[str]:
    """Which heavy optional libraries a fresh interpreter holds after importing ``module``."""
    heavy = ("transformers", "torchaudio", "timm", "torchvision")
    code = f"import sys, {module}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ})  # fmt: skip
    return [m for m in out.stdout.strip().split(",") if m]


# --------------------------------------------------------------------------------------------------------------
# Micro-benchmarks behind the defaults (docs/performance.md): each compares two ways of doing one thing.


def optimizer_step_ms(n_params: int = 22_000_000, repeats: int = 10) -> dict[str, float]:
    """AdamW step time (ms) over ``n_params`` parameters in 384x384 tensors: fused vs foreach vs for-loop."""
    torch.manual_seed(0)
    shapes = [(384, 384)] * max(1, n_params // (384 * 384))
    params = [torch.nn.Parameter(torch.randn(*s)) for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p)
    out = {}
    for name, kwargs in (("fused", {"fused": True}), ("foreach", {"foreach": True}), ("for_loop", {"foreach": False})):
        opt = torch.optim.AdamW(params, lr=1e-4, **kwargs)
        for _ in range(2):
            opt.step()
        t = time.perf_counter()
        for _ in range(repeats):
            opt.step()
        out[name] = round(1e3 * (time.perf_counter() - t) / repeats, 2)
    return out


class _Tiny(L.LightningModule):
    """A 64 -> 128 -> 10 MLP whose training step optionally logs its loss with ``self.log`` (the issue's example)."""

    def __init__(self, log_each_step: bool) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
        self.log_each_step = log_each_step

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        if self.log_each_step:
            self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(y))
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


class _LeanTiny(LeanHookName, _Tiny):
    pass


def _tiny_plain_ms(steps: int = 400) -> float:
    """The same MLP, data and optimizer in a hand-written loop."""
    from torch.utils.data import DataLoader, TensorDataset

    data = TensorDataset(torch.randn(64 * steps, 64), torch.randint(0, 10, (64 * steps,)))
    model = _Tiny(False)
    opt = model.configure_optimizers()
    times = []
    for x, y in DataLoader(data, batch_size=64, shuffle=True):
        loss = torch.nn.functional.cross_entropy(model.net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter())
    t = times[steps // 4 :]
    return 1e3 * (t[-1] - t[0]) / (len(t) - 1)


def _tiny_fit_ms(log_each_step: bool, callbacks: list, steps: int = 400, lean: bool = False) -> float:
    route_lightning_logs()
    from torch.utils.data import DataLoader, TensorDataset

    class Clock(L.Callback):
        times: list[float] = []

        def on_train_batch_end(self, *args: Any) -> None:
            self.times.append(time.perf_counter())

    clock = Clock()
    clock.times = []
    data = TensorDataset(torch.randn(64 * steps, 64), torch.randint(0, 10, (64 * steps,)))
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_model_summary=False,
                        enable_progress_bar=any(isinstance(c, L.callbacks.ProgressBar) for c in callbacks),
                        callbacks=[*callbacks, clock], accelerator="cpu", devices=1,
                        **({"profiler": NullProfiler()} if lean else {}))  # fmt: skip
    trainer.fit((_LeanTiny if lean else _Tiny)(log_each_step), DataLoader(data, batch_size=64, shuffle=True))
    t = clock.times[steps // 4 :]
    return 1e3 * (t[-1] - t[0]) / (len(t) - 1)


def lightning_overheads(rounds: int = 3) -> dict[str, float]:
    """Step time (ms) of the issue's 64->128->10 MLP at batch 64 under a Trainer: with a ``self.log`` per step or
    not, and with Lightning's Rich progress bar, recipezoo's throttled one, or none (medians of ``rounds``)."""
    from lightning.pytorch.callbacks import RichProgressBar

    from recipezoo.core.progress import ProgressBar

    cases = {
        "self.log each step, Rich bar each step": (True, lambda: [RichProgressBar()], False),
        "self.log each step, no bar": (True, lambda: [], False),
        "no self.log, no bar": (False, lambda: [], False),
        "no self.log, throttled bar": (False, lambda: [ProgressBar()], False),
        "no self.log, throttled bar, lean hooks": (False, lambda: [ProgressBar()], True),
    }
    times: dict[str, list[float]] = {k: [] for k in [*cases, "plain PyTorch loop"]}
    for _ in range(rounds):
        for name, (log_each_step, make, lean) in cases.items():
            times[name].append(_tiny_fit_ms(log_each_step, make(), lean=lean))
        times["plain PyTorch loop"].append(_tiny_plain_ms())
    return {k: round(statistics.median(v), 3) for k, v in times.items()}
