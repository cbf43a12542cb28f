"""The benchmark harness (correctness, not timing), torch.compile parity on CPU, and the lazy-import guarantee."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from recipezoo.benchmark import Windows, batch_units, benchmark_recipe, compose, medians, plain_loop, recipezoo_loop
from recipezoo.train import build
from tests.conftest import ROOT, tiny

FRAUD = ["data.synthetic=true", *tiny("fraud"), "trainer=cpu", "data.num_workers=0"]


def test_windows_give_medians_after_the_warmup() -> None:
    w = Windows(warmup=2, window=2)
    w.times = [0.0, 1.0, 2.0, 2.5, 3.0, 4.0, 5.0]  # steps 0..6 end at these times
    w.units = [{"samples": 10.0}] * 7
    ms = w.measurements()
    # timed steps start after step 1 (t=1.0): windows (1.0 -> 2.5) and (2.5 -> 4.0), 2 steps each
    assert [m["step_ms"] for m in ms] == [750.0, 750.0]
    assert [m["samples_per_s"] for m in ms] == pytest.approx([20 / 1.5, 20 / 1.5])


def test_medians_take_one_window_so_step_and_throughput_agree() -> None:
    # A busy machine makes windows bimodal: half at 10 ms a step, half at 1 s. The report must be one real window
    # (not the mean of the two middle ones, 505 ms, which no window ran at), with its own throughput.
    w = Windows(warmup=1, window=1)
    steps = [0.01, 1.0, 0.01, 1.0, 0.01, 1.0]
    w.times = [0.0]
    for dt in steps:
        w.times.append(w.times[-1] + dt)
    w.units = [{"samples": 100.0}] * len(w.times)
    w.cpu_times = [t / 2 for t in w.times]  # half of the wall time was this process's
    m = medians([w])
    assert m["windows"] == 6 and m["step_ms"] == 10.0 and m["step_ms_min"] == 10.0
    assert m["cpu_ms"] == pytest.approx(5.0)
    assert m["samples_per_s"] == pytest.approx(100 / m["step_ms"] * 1e3)


def test_batch_units_count_seconds_of_real_audio() -> None:
    batch = {"audio": torch.zeros(2, 16000), "lengths": torch.tensor([16000, 8000]), "label": torch.tensor([0, 1])}
    assert batch_units(batch, sample_rate=16000) == {"samples": 2.0, "audio_s": 1.5}
    assert batch_units(batch) == {"samples": 2.0}  # no rate known: no seconds


def test_batch_units_count_samples_and_real_tokens() -> None:
    batch = {
        "input_ids": torch.zeros(3, 5, dtype=torch.long),
        "attention_mask": torch.tensor([[1] * 5, [1] * 2 + [0] * 3, [1] * 4 + [0]]),
    }
    assert batch_units(batch) == {"samples": 3.0, "tokens": 11.0}
    assert batch_units((torch.zeros(7, 2), torch.zeros(7))) == {"samples": 7.0}


def test_plain_loop_and_recipezoo_train_the_same_model_the_same_way(tmp_path: Path) -> None:
    """Same weights, batches, loss and optimizer: after the same steps both loops reach the same weights."""
    cfg = compose("fraud/tabular_mlp", [*FRAUD, "model.net.dropout=0.0"], tmp_path / "run")
    datamodule, module = build(cfg)
    start = copy.deepcopy(module.state_dict())
    results = {}
    for name, loop in (("plain", plain_loop), ("recipezoo", recipezoo_loop)):
        fresh = instantiate(cfg.model, _convert_="all")
        fresh.load_state_dict(start)
        torch.manual_seed(0)  # the same shuffling for both
        windows = Windows(1, 1)
        loop(cfg, fresh, datamodule, 5, windows)
        assert len(windows.times) == 5
        results[name] = {k: v.detach().clone() for k, v in fresh.net.state_dict().items()}
    moved = [k for k, v in results["plain"].items() if not torch.equal(start[f"net.{k}"], v)]
    assert moved, "the plain loop did not train"
    for k, v in results["plain"].items():
        torch.testing.assert_close(results["recipezoo"][k], v, rtol=1e-5, atol=1e-6)


def test_plain_loop_follows_the_fine_tuning_schedule_across_epochs(tmp_path: Path) -> None:
    """A backbone frozen for the first epoch: both loops train only the head in epoch 0, then everything."""
    overrides = ["trainer=cpu", "data.num_workers=0", "data.batch_size=512", "finetune.freeze_backbone_epochs=1"]
    cfg = compose("vision/digits_cnn", overrides, tmp_path / "run")
    datamodule, module = build(cfg)
    start = copy.deepcopy(module.state_dict())
    per_epoch = len(datamodule.train_dataloader())
    results = {}
    for name, loop in (("plain", plain_loop), ("recipezoo", recipezoo_loop)):
        fresh = instantiate(cfg.model, _convert_="all")
        fresh.load_state_dict(start)
        torch.manual_seed(0)
        loop(cfg, fresh, datamodule, per_epoch + 2, Windows(1, 1))  # all of epoch 0, two steps of epoch 1
        results[name] = {k: v.detach().clone() for k, v in fresh.state_dict().items()}
    body = [k for k in start if k.startswith("net.") and "head" not in k and start[k].is_floating_point()]
    assert any(not torch.equal(start[k], results["plain"][k]) for k in body), "the backbone never unfroze"
    for k, v in results["plain"].items():
        torch.testing.assert_close(results["recipezoo"][k], v, rtol=1e-4, atol=1e-5)


def test_benchmark_recipe_reports_every_measurement(tmp_path: Path) -> None:
    r = benchmark_recipe("fraud/tabular_mlp", FRAUD, steps=4, warmup=1, window=1, rounds=1, out=tmp_path)
    for part in ("loader", "plain", "recipezoo"):
        assert r[part]["step_ms"] > 0 and r[part]["samples_per_s"] > 0 and r[part]["windows"] == 3
    assert r["ratio"] == pytest.approx(r["recipezoo"]["step_ms"] / r["plain"]["step_ms"], rel=1e-2)
    assert r["ratio_cpu"] == pytest.approx(r["recipezoo"]["cpu_ms"] / r["plain"]["cpu_ms"], rel=1e-2)
    assert 0 < r["plain"]["cpu_ms"] < 10 * r["plain"]["step_ms"]
    assert r["peak_rss_mb"] > 0
    assert set(r["inference"]) == {"eager", "torchscript", "onnx"}
    for fmt in r["inference"].values():
        assert fmt["batch1_ms"] > 0 and fmt["batch64_samples_per_s"] > 0


def test_benchmark_script_writes_json_and_table(tmp_path: Path) -> None:
    cmd = [sys.executable, "scripts/benchmark.py", "+recipe=fraud/tabular_mlp", *FRAUD[1:], "steps=3", "warmup=1",
           "window=1", "rounds=1", "infer=false", f"out={tmp_path}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| fraud/tabular_mlp |" in proc.stdout
    report = json.loads((tmp_path / "benchmark.json").read_text())
    assert report["recipes"][0]["recipe"] == "fraud/tabular_mlp" and report["recipes"][0]["ratio"] > 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "ratios.png").stat().st_size > 0


def test_torch_compile_gives_the_same_loss_on_cpu(tmp_path: Path) -> None:
    cfg = compose("fraud/tabular_mlp", [*FRAUD, "model.compile=true"], tmp_path / "run")
    datamodule, module = build(cfg)
    module.eval()
    batch = next(iter(datamodule.train_dataloader()))
    with torch.no_grad():
        eager = module.loss(batch)
        module.setup("fit")  # what the Trainer calls: compiles the network, off the module tree
        assert "_compiled" in module.__dict__ and not any("_orig_mod" in k for k in module.state_dict())
        compiled = module.loss(batch)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_importing_the_fraud_domain_and_lightning_leaves_heavy_libraries_out() -> None:
    # recipezoo keeps torchmetrics from importing its optional backends (core/imports.py): Lightning itself then
    # loads none of them either, so a fraud run never pays for transformers.
    code = (
        "import sys; import recipezoo.fraud, recipezoo.fraud.task, recipezoo.train; "
        "print(sorted(m for m in ('transformers', 'torchaudio', 'timm', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
