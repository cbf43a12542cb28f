"""Exact resume: a run killed after its first epoch and resumed from last.ckpt ends as an uninterrupted one.

The default recipe (vision/digits_cnn) on the real bundled digits: 19 shuffled batches of 64 per epoch, each
image randomly cropped, so a resumed run only matches when the RNGs that shuffle and augment are restored too.

Three runs with the same seed: (A) uninterrupted, 3 epochs; (B) the same, killed at the start of its second
epoch (after epoch 0's last.ckpt was written); (C) B resumed from its last.ckpt into a new run folder.
"""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import RandomSampler
from torchvision.transforms import v2

from recipezoo.core.errors import CheckpointError, DataError
from recipezoo.train import run
from tests.conftest import compose_config
from tests.helpers import Killed

EPOCHS = 3
# FAST (conftest) chose the synthetic twin; the scenarios below rely on validation accuracy rising every epoch
REAL = ["data.synthetic=false", f"trainer.max_epochs={EPOCHS}", "monitor.metric=val/acc"]
KILL = "+callbacks.killer._target_=tests.helpers.KillAfterEpoch"  # kills at the start of epoch 1 (0-based)
NO_RNG = "~callbacks.rng_state"


# -- helpers -------------------------------------------------------------------------------------------------
def train(out: Path, *overrides: str) -> dict[str, Any]:
    """One run of the real config into ``out``; its final weights go to ``out/final_weights.pt``."""
    cfg = compose_config(
        [
            *REAL,
            *overrides,
            "+callbacks.final_weights._target_=tests.helpers.SaveFinalWeights",
            f"+callbacks.final_weights.path='{out / 'final_weights.pt'}'",
        ],
        out,
    )
    return run(cfg)


def crash(out: Path, *overrides: str) -> None:
    with pytest.raises(Killed, match="start of epoch 1"):
        train(out, *overrides, KILL)


def resume_from(run_dir: Path) -> str:
    return f"ckpt_path='{run_dir / 'checkpoints' / 'last.ckpt'}'"


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "final_weights.pt", weights_only=True)


def ckpt(run_dir: Path, name: str) -> dict[str, Any]:
    return torch.load(run_dir / "checkpoints" / f"{name}.ckpt", map_location="cpu", weights_only=True)


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str) -> None:
    assert a.keys() == b.keys(), what
    differ = [k for k in a if not torch.allclose(a[k].double(), b[k].double(), rtol=0, atol=1e-6)]
    assert not differ, (
        f"{what}: {len(differ)} of {len(a)} tensors differ (max |diff| {max_difference(a, b):.3g}), e.g. {differ[:3]}"
    )


def epoch_rows(run_dir: Path) -> dict[int, dict[str, str]]:
    """metrics.csv per training epoch: its validation and train-epoch rows merged (the test row left out)."""
    out: dict[int, dict[str, str]] = {}
    for row in csv.DictReader((run_dir / "metrics.csv").open()):
        if row.get("epoch") and (row.get("val/acc") or row.get("train/loss_epoch")):
            out.setdefault(int(row["epoch"]), {}).update({k: v for k, v in row.items() if v})
    return out


# -- the three runs ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("resume")
    a = train(base / "A")
    crash(base / "B")
    c = train(base / "C", resume_from(base / "B"))
    return SimpleNamespace(base=base, A=base / "A", B=base / "B", C=base / "C", a=a, c=c)


def test_shuffling_and_augmentation_are_on() -> None:
    """The premise: the recipe's training data is drawn in random order and randomly cropped."""
    cfg = compose_config(REAL, Path("unused"))
    dm = instantiate(cfg.data)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, RandomSampler)
    assert len(loader) > 1
    crops = [t for t in dm.datasets["train"].transform.transforms if isinstance(t, v2.RandomResizedCrop)]
    assert crops and crops[0].scale[0] < 1.0


def test_killed_run_left_its_first_epoch_checkpoint(runs: SimpleNamespace) -> None:
    last = ckpt(runs.B, "last")
    steps_per_epoch = runs.a["global_steps_per_rank"][0] // EPOCHS
    assert last["epoch"] == 0 and last["global_step"] == steps_per_epoch
    assert "RNGStateCallback" in last["callbacks"]
    assert not (runs.B / "summary.json").exists()


def test_resumed_run_ends_with_the_uninterrupted_weights(runs: SimpleNamespace) -> None:
    assert runs.c["epochs"] == runs.a["epochs"] == EPOCHS
    assert runs.c["global_steps_per_rank"] == runs.a["global_steps_per_rank"]
    assert_same_weights(final_weights(runs.C), final_weights(runs.A), "final weights")
    for name in ("last", "best"):
        a, c = ckpt(runs.A, name), ckpt(runs.C, name)
        assert (c["epoch"], c["global_step"]) == (a["epoch"], a["global_step"]), name
        assert_same_weights(c["state_dict"], a["state_dict"], f"{name}.ckpt")


def test_resumed_run_has_the_uninterrupted_test_metrics(runs: SimpleNamespace) -> None:
    assert runs.a["test"] and runs.a["test"]["test/acc"] > 0.5  # it learned: the comparison means something
    assert runs.c["test"] == pytest.approx(runs.a["test"], abs=1e-6)
    assert runs.c["best_score"] == pytest.approx(runs.a["best_score"], abs=1e-6)


def test_resumed_metrics_continue_from_epoch_1(runs: SimpleNamespace) -> None:
    a, c = epoch_rows(runs.A), epoch_rows(runs.C)
    assert sorted(a) == list(range(EPOCHS))
    assert sorted(c) == list(range(1, EPOCHS)), "the resumed run must log epochs 1.., not start again at 0"
    for epoch in c:
        assert int(c[epoch]["step"]) == int(a[epoch]["step"])
        for key in ("train/loss_epoch", "train/acc", "val/loss", "val/acc"):
            resumed, uninterrupted = float(c[epoch][key]), float(a[epoch][key])
            assert resumed == pytest.approx(uninterrupted, abs=1e-6), (
                f"epoch {epoch} {key}: resumed {resumed}, uninterrupted {uninterrupted}"
            )


def test_resume_without_rng_state_draws_other_batches(runs: SimpleNamespace, tmp_path: Path) -> None:
    """Without RNGStateCallback the resumed run shuffles and crops differently: the test above would fail."""
    crash(tmp_path / "B", NO_RNG)
    assert "RNGStateCallback" not in ckpt(tmp_path / "B", "last")["callbacks"]
    train(tmp_path / "C", NO_RNG, resume_from(tmp_path / "B"))
    # The same epoch 0 (B == A up to the kill); only the RNG streams of the resumed epochs differ.
    assert_same_weights(
        ckpt(tmp_path / "B", "last")["state_dict"], ckpt(runs.B, "last")["state_dict"], "epoch-0 checkpoint"
    )
    assert max_difference(final_weights(tmp_path / "C"), final_weights(runs.A)) > 1e-4


# -- checkpoints written around the interruption ------------------------------------------------------------
@pytest.fixture(scope="module")
def min_runs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A, B, C again with ``monitor.mode=min``: validation accuracy rises every epoch, so this makes epoch 0
    the best one and no later epoch an improvement, deterministically (standing in for a run whose best epoch
    came before the interruption, or for a plateau)."""
    base = tmp_path_factory.mktemp("resume_min")
    a = train(base / "A", "monitor.mode=min")
    crash(base / "B", "monitor.mode=min")
    c = train(base / "C", "monitor.mode=min", resume_from(base / "B"))
    val = [float(epoch_rows(base / "A")[e]["val/acc"]) for e in range(EPOCHS)]
    assert val[0] < min(val[1:]), f"scenario needs epoch 0 to have the lowest val/acc: {val}"
    return SimpleNamespace(A=base / "A", B=base / "B", C=base / "C", a=a, c=c, val=val)


def test_last_checkpoint_is_the_final_epoch_even_without_improvement(min_runs: SimpleNamespace) -> None:
    """last.ckpt is what a resume starts from: it must hold the latest epoch, not the latest improvement."""
    last = ckpt(min_runs.A, "last")
    assert (last["epoch"], last["global_step"]) == (EPOCHS - 1, min_runs.a["global_steps_per_rank"][0])
    assert_same_weights(last["state_dict"], final_weights(min_runs.A), "last.ckpt vs the final weights")
    best = ckpt(min_runs.A, "best")
    assert best["epoch"] == 0 and min_runs.a["best_score"] == pytest.approx(min_runs.val[0])


def test_resume_into_a_new_folder_keeps_the_best_checkpoint(min_runs: SimpleNamespace) -> None:
    """The best epoch (0) was before the interruption: the resumed run must still report and test it."""
    assert min_runs.c["best_score"] == pytest.approx(min_runs.a["best_score"], abs=1e-6)
    assert min_runs.c["test"] == pytest.approx(min_runs.a["test"], abs=1e-6)
    best_c = torch.load(min_runs.c["best_checkpoint"], map_location="cpu", weights_only=True)
    assert_same_weights(best_c["state_dict"], ckpt(min_runs.A, "best")["state_dict"], "best checkpoint")


# -- resuming from the wrong checkpoint ---------------------------------------------------------------------
def test_resume_from_a_missing_checkpoint_is_a_checkpoint_error(make_cfg: Any, tmp_path: Path) -> None:
    missing = tmp_path / "old" / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError, match="checkpoint not found") as err:
        run(make_cfg(f"ckpt_path='{missing}'", run="resumed"))
    assert str(missing) in str(err.value)
    assert not (tmp_path / "resumed" / "checkpoints").exists()


def test_resume_with_more_classes_in_the_data_than_in_the_checkpoint(make_cfg: Any, tmp_path: Path) -> None:
    run(make_cfg("+data.synthetic_classes=3", "trainer.max_epochs=1", run="three"))
    three = tmp_path / "three" / "checkpoints" / "last.ckpt"
    assert ckpt(tmp_path / "three", "last")["recipezoo"]["config"]["data_info"]["num_classes"] == 3
    with pytest.raises((CheckpointError, DataError), match="label(-count)? mismatch") as err:
        run(make_cfg(f"ckpt_path='{three}'", "trainer.max_epochs=2", run="ten"))  # the twin has 10 classes
    assert "checkpoint" in str(err.value) and "class_3" in str(err.value)
    assert not (tmp_path / "ten" / "checkpoints").exists()


def test_resume_with_other_label_names_than_the_checkpoint(make_cfg: Any, tmp_path: Path) -> None:
    # The real digits are labelled '0'..'9', the synthetic twin 'class_0'..'class_9': same count, other names.
    run(make_cfg("data.synthetic=false", "trainer.max_epochs=1", "trainer.limit_train_batches=2", run="digits"))
    with pytest.raises((CheckpointError, DataError), match="checkpoint") as err:
        run(make_cfg(resume_from(tmp_path / "digits"), "trainer.max_epochs=2", run="twin"))
    assert "class_0" in str(err.value)
    assert not (tmp_path / "twin" / "checkpoints").exists()
