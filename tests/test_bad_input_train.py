"""The bad-input catalogue for ``train.py``: each case is one mistake a user makes on the command line.

Every case asserts the README's promise (``tests/cli_harness.py``): exit status 2, one ``error:`` line naming the
problem, no traceback, no Hydra wrapper, every file that existed before intact; and where the line suggests a fix,
the fix pasted into bash is accepted (``--cfg job``: Hydra composes and prints the config without training), or,
where it is cheap, trains for real.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import pytest
import torch

from recipezoo.core.errors import ConfigError
from recipezoo.core.validate import bash_override, check_arguments, check_values
from recipezoo.train import _evaluated_nothing, strict_json
from tests.cli_harness import assert_intact, assert_user_error, cli, snapshot
from tests.conftest import RECIPES, compose_config

FAST = "trainer=cpu trainer.enable_progress_bar=false trainer.enable_model_summary=false data.num_workers=0"
SHORT = "trainer.max_epochs=1 trainer.limit_train_batches=2 trainer.limit_val_batches=1 trainer.limit_test_batches=1"


def fix_accepted(args: str, cwd: Path) -> None:
    """``python train.py <args> --cfg job`` typed in bash composes the config (exit 0, no error line)."""
    proc = cli(f"{args} --cfg job", cwd=cwd)
    assert proc.returncode == 0, (args, proc.stderr[-2000:])
    assert "error:" not in proc.stderr


# (case id, the arguments as typed in bash, what the error line must name, the fix it must suggest, the fixed
# arguments as typed in bash). The fix is checked by composing the fixed command.
CASES = [
    # -- unknown keys: the close matches among the real keys of the composed config
    ("vision-typo-trainer", "trainer.max_epoch=3", ["'trainer.max_epoch'"], "trainer.max_epochs",
     "trainer.max_epochs=3"),
    ("vision-typo-parent", "trainr.max_epochs=3", ["'trainr.max_epochs'"], "trainer.max_epochs",
     "trainer.max_epochs=3"),
    ("vision-data-root-without-recipe", "data.root=photos", ["'data.root'", "vision/digits_cnn"],
     "+recipe=vision/imagefolder_finetune", "+recipe=vision/imagefolder_finetune data.root=photos"),
    ("vision-typo-nested", "data.augment.scal=[0.5,1.0]", ["data.augment.scal"], "data.augment.scale",
     "data.augment.scale=[0.5,1.0]"),
    ("fraud-typo", "+recipe=fraud/tabular_mlp data.val_fractoin=0.2", ["data.val_fractoin"], "data.val_fraction",
     "+recipe=fraud/tabular_mlp data.val_fraction=0.2"),
    ("nlp-typo", "+recipe=nlp/text_classification data.max_lenght=64", ["data.max_lenght"], "data.max_length",
     "+recipe=nlp/text_classification data.max_length=64"),
    ("nlp-key-of-another-recipe", "data.label_delimiter=x", ["'data.label_delimiter'"],
     "+recipe=nlp/text_classification", "+recipe=nlp/text_classification data.label_delimiter=x"),
    ("recsys-typo", "+recipe=recsys/sasrec data.histroy_len=5", ["data.histroy_len"], "data.history_len",
     "+recipe=recsys/sasrec data.history_len=5"),
    ("speech-typo", "+recipe=speech/asr_ctc data.manfest=train.tsv", ["data.manfest"], "data.manifest",
     "+recipe=speech/asr_ctc data.manifest=train.tsv"),
    ("remove-unknown", "~trainer.foo", ["trainer.foo"], "", ""),
    ("trainer-argument-the-config-does-not-set", "trainer.detect_anomaly=true", ["'trainer.detect_anomaly'"],
     "+trainer.detect_anomaly=true", "+trainer.detect_anomaly=true"),
    ("unknown-trainer-option", "trainer=gpux", ["unknown trainer 'gpux'"], "cpu", "trainer=cpu"),
    # -- wrong types and ranges: what the key accepts, and a valid override
    ("vision-epochs-not-a-number", "trainer.max_epochs=abc", ["trainer.max_epochs='abc'", "whole number"],
     "e.g. trainer.max_epochs=10", "trainer.max_epochs=10"),
    ("vision-negative-batch", "data.batch_size=-4", ["data.batch_size=-4", ">= 1"], "e.g. data.batch_size=32",
     "data.batch_size=32"),
    ("vision-negative-lr", "optimizer.lr=-1", ["optimizer.lr=-1", "> 0"], "e.g. optimizer.lr=1e-3",
     "optimizer.lr=1e-3"),
    ("vision-zero-devices", "trainer.devices=0", ["trainer.devices=0"], "e.g. trainer.devices=1", "trainer.devices=1"),
    ("vision-zero-epochs", "trainer.max_epochs=0", ["untrained model"], "trainer.max_epochs=1",
     "trainer.max_epochs=1"),
    ("vision-precision", "trainer.precision=16mixed", ["trainer.precision='16mixed'", "16-mixed"],
     "e.g. trainer.precision=32-true", "trainer.precision=16-mixed"),
    ("overwrite-not-a-bool", "overwrite=yes", ["overwrite='yes'", "true or false"], "e.g. overwrite=false",
     "overwrite=false"),
    ("negative-seed", "seed=-1", ["seed=-1"], "e.g. seed=42", "seed=42"),
    ("warmup-over-one", "scheduler.warmup_fraction=1.5", ["scheduler.warmup_fraction=1.5"],
     "e.g. scheduler.warmup_fraction=0.05", "scheduler.warmup_fraction=0.05"),
    ("zero-layer-decay", "finetune.layer_decay=0", ["finetune.layer_decay=0"], "e.g. finetune.layer_decay=0.75",
     "finetune.layer_decay=0.75"),
    ("fraud-fractions-leave-nothing", "+recipe=fraud/tabular_mlp data.val_fraction=0.6 data.test_fraction=0.5",
     ["nothing to train on"], "e.g. data.val_fraction=0.1 data.test_fraction=0.1",
     "+recipe=fraud/tabular_mlp data.val_fraction=0.1 data.test_fraction=0.1"),
    ("fraud-positive-rate", "+recipe=fraud/tabular_mlp data.synthetic_positive_rate=2",
     ["data.synthetic_positive_rate=2"], "e.g. data.synthetic_positive_rate=0.03",
     "+recipe=fraud/tabular_mlp data.synthetic_positive_rate=0.03"),
    ("nlp-max-length-one", "+recipe=nlp/token_classification data.max_length=1", ["data.max_length=1"],
     "e.g. data.max_length=128", "+recipe=nlp/token_classification data.max_length=128"),
    ("recsys-negative-negatives", "+recipe=recsys/ncf data.negatives=-1", ["data.negatives=-1"],
     "e.g. data.negatives=4", "+recipe=recsys/ncf data.negatives=4"),
    ("speech-rate-not-a-number", "+recipe=speech/audio_classification data.sample_rate=abc",
     ["data.sample_rate='abc'"], "e.g. data.sample_rate=16000",
     "+recipe=speech/audio_classification data.sample_rate=16000"),
    # -- values Hydra reads as syntax: the message prints the quoting that works in bash
    ("fraud-sep-semicolon", "+recipe=fraud/tabular_mlp 'data.sep=;'", ["data.sep=;"], """'data.sep=";"'""",
     """+recipe=fraud/tabular_mlp 'data.sep=";"'"""),
    ("nlp-delimiter-comma", "+recipe=nlp/text_classification_multilabel data.label_delimiter=,",
     ["data.label_delimiter=,"], """'data.label_delimiter=","'""",
     """+recipe=nlp/text_classification_multilabel 'data.label_delimiter=","'"""),
    ("speech-pattern-braces", "+recipe=speech/audio_classification data.pattern='{label}_{index}.wav'",
     ["data.pattern"], """'data.pattern="{label}_{index}.wav"'""",
     """+recipe=speech/audio_classification 'data.pattern="{label}_{index}.wav"'"""),
]  # fmt: skip


@pytest.mark.parametrize(("args", "names", "fix", "fixed"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_override(tmp_path: Path, args: str, names: list[str], fix: str, fixed: str) -> None:
    run_dir = tmp_path / "run"
    mine = tmp_path / "mine.txt"
    mine.write_text("keep me\n")
    before = snapshot(tmp_path)
    proc = cli(f"{args} hydra.run.dir={run_dir}", cwd=tmp_path, timeout=120)
    line = assert_user_error(proc, *names)
    assert fix in line, (fix, line)
    assert not run_dir.exists()  # refused before Hydra made the run folder
    assert_intact(before)
    if fixed:
        fix_accepted(fixed, tmp_path)


# -- mistakes found once the run starts (still before any data or model is built) --------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real run of the default recipe, into a folder that already held a user's file (overwrite=true)."""
    base = tmp_path_factory.mktemp("digits")
    run = base / "run"
    run.mkdir()
    (run / "notes.txt").write_text("my notes\n")
    proc = cli(f"{FAST} {SHORT} hydra.run.dir={run} overwrite=true", cwd=base)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "notes.txt").read_text() == "my notes\n"  # overwrite=true never touches a file it does not own
    assert "Previous log files" not in proc.stdout + proc.stderr
    return run


def test_fresh_run_is_quiet_and_its_summary_is_strict_json(digits_run: Path) -> None:
    text = (digits_run / "summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))
    for value in summary["test"].values():
        assert value is None or len(repr(value)) <= 12, summary["test"]  # rounded: no 1.0000001192092896
    assert "Previous log files" not in (digits_run / "train.log").read_text()


def test_unknown_trainer_argument_added_with_plus(tmp_path: Path) -> None:
    """Hydra's own advice for a typo (+trainer.max_epoch=3) is caught before a TypeError inside the Trainer."""
    proc = cli(f"+trainer.max_epoch=3 {FAST} hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    line = assert_user_error(proc, "trainer.max_epoch", "trainer.max_epochs")
    assert "without '+'" in line
    assert not (tmp_path / "run" / "checkpoints").exists()
    fix_accepted("trainer.max_epochs=3", tmp_path)


def test_error_inside_instantiate_is_one_line(tmp_path: Path) -> None:
    """A UserError raised while Hydra instantiates the data or model loses Hydra's "Error in call to target"."""
    proc = cli(f"backbone.name=resnet81 {FAST} hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    line = assert_user_error(proc, "resnet81", "resnet18")
    assert "Error in call to target" not in proc.stderr and "\\n" not in line
    fix_accepted("backbone.name=resnet18", tmp_path)


def test_home_folder_in_a_value_as_the_readme_types_it(tmp_path: Path) -> None:
    """``data.root=~/photos``: bash leaves the ``~`` alone and Hydra cannot parse it; train.py expands it, so the
    mistake left is the real one (the folder does not exist), named with the expanded path."""
    missing = f"recipezoo-no-such-folder-{tmp_path.name}"
    run = tmp_path / "run"
    proc = cli(f"+recipe=vision/imagefolder_finetune data.root=~/{missing} {FAST} hydra.run.dir={run}", cwd=tmp_path)
    assert_user_error(proc, "image folder not found", str(Path.home() / missing))
    assert not (run / "checkpoints").exists()


def test_lightning_refuses_a_trainer_setting(tmp_path: Path) -> None:
    """A MisconfigurationException from the Trainer's construction is one line, not Hydra's wrapper."""
    proc = cli(f"+trainer.strategy=ddpp {FAST} hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert_user_error(proc, "ddpp", "trainer.strategy")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_resuming_a_missing_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "old" / "checkpoints").mkdir(parents=True)
    (tmp_path / "old" / "checkpoints" / "last.ckpt").write_bytes(b"not really")
    before = snapshot(tmp_path)
    proc = cli(f"ckpt_path=old/checkpoints/best.ckpt {FAST} hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert_user_error(proc, "checkpoint not found", "last.ckpt")
    assert_intact(before)


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(), reason="this machine has a GPU")
def test_gpu_without_gpu_then_the_fix_reuses_the_failed_run_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = cli(f"trainer=gpu hydra.run.dir={run}", cwd=tmp_path)
    line = assert_user_error(proc, "GPU", "trainer=cpu")
    assert not (run / "checkpoints").exists()
    # The corrected command, in the same folder (it holds only the failed run's train.log and .hydra/), trains.
    left = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    assert left <= {"train.log", ".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"}, left
    fixed = line.split("with ")[1].split()[0]
    proc = cli(f"{fixed} {FAST} {SHORT} hydra.run.dir={run}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "summary.json").is_file()
    assert "Previous log files" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("plus", ["", "+", "++"])
def test_used_run_folder_is_refused_whatever_the_override_prefix(digits_run: Path, tmp_path: Path, plus: str) -> None:
    before = snapshot(digits_run)
    proc = cli(f"{plus}hydra.run.dir={digits_run}", cwd=tmp_path)
    line = assert_user_error(proc, str(digits_run), "nothing was overwritten")
    assert_intact(before)  # .hydra/*.yaml of the existing run included
    assert snapshot(digits_run) == before
    assert "overwrite=true" in line


def test_resuming_another_recipes_checkpoint(digits_run: Path, tmp_path: Path) -> None:
    ckpt = digits_run / "checkpoints" / "last.ckpt"
    before = snapshot(digits_run)
    proc = cli(f"+recipe=fraud/tabular_mlp data.synthetic=true ckpt_path={ckpt} {FAST}", cwd=tmp_path)
    line = assert_user_error(proc, "trained by recipe vision/digits_cnn", "image_classification")
    assert "label mismatch" not in line
    assert_intact(before)
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("*.ckpt"))
    fix_accepted(line.split("own recipe: ")[1], tmp_path)


# -- the pieces behind the promises, without a subprocess --------------------------------------------------------
def test_every_recipe_passes_the_checks(tmp_path: Path) -> None:
    """The checks refuse mistakes only: every recipe's own config passes them (and its targets take its keys)."""
    for recipe in RECIPES:
        cfg = compose_config([f"+recipe={recipe}"], tmp_path / "run", fast=False)
        check_values(cfg)
        check_arguments(cfg)


def test_checks_on_a_composed_config(tmp_path: Path) -> None:
    cfg = compose_config(["trainer.limit_train_batches=0"], tmp_path / "run")
    with pytest.raises(ConfigError, match="limit_train_batches=0"):
        check_values(cfg)
    cfg = compose_config(["trainer.max_epochs=0", "train=false"], tmp_path / "run")
    check_values(cfg)  # testing only: nothing is trained, so 0 epochs is what was asked


def test_summary_is_strict_json() -> None:
    raw = {"test": {"test/f1": 1.0000001192092896, "test/ndcg": math.nan, "test/x": math.inf}, "epochs": 3}
    clean = strict_json(raw)
    assert clean == {"test": {"test/f1": 1.0, "test/ndcg": None, "test/x": None}, "epochs": 3}
    json.dumps(clean, allow_nan=False)


def test_a_test_that_measured_nothing_is_named() -> None:
    assert "no test metric" in _evaluated_nothing({})
    assert "NaN" in _evaluated_nothing({"test/hr@10": math.nan, "test/ndcg@10": math.nan})
    assert _evaluated_nothing({"test/hr@10": math.nan, "test/loss": 0.5}) == ""


@pytest.mark.parametrize("value", [";", ",", "|", "{label}_{index}.wav", "a b", "\\t", "it's"])
def test_suggested_quoting_reaches_hydra_intact(tmp_path: Path, value: str) -> None:
    """bash_override's text, typed in bash, gives Hydra the value itself (checked in the printed config)."""
    arg = bash_override("data.sep", value)
    proc = cli(f"+recipe=fraud/tabular_mlp {arg} --cfg job", cwd=tmp_path)
    assert proc.returncode == 0, (arg, proc.stderr[-1000:])
    import yaml

    assert yaml.safe_load(proc.stdout)["data"]["sep"] == value, (arg, proc.stdout)
    assert shlex.split(arg)  # and it is one shell word
