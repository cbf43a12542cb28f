"""Bad-input catalogue: unreadable checkpoints, weights and bundles.

Every case hands a command a file of the wrong kind (truncated, random bytes, empty, a folder, a zip that is not a
checkpoint, a text file, a pickled payload, another program's checkpoint, an export bundle where a checkpoint is
needed, a model file copied without its bundle, another task's bundle) and checks the README's promise: exit status
2, one ``error:`` line naming the file and what it is, no traceback, no torch text cut mid-sentence, every file
intact; where the message names a path to pass instead, the command accepts it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from recipezoo.core import bundle as core_bundle
from recipezoo.core.checkpoint import read
from recipezoo.core.errors import CheckpointError, ConfigError, PretrainedError, UserError
from recipezoo.core.pretrained import load_state_dict
from recipezoo.export import export
from recipezoo.train import run
from tests.cli_harness import assert_intact, assert_user_error, cli, snapshot
from tests.conftest import compose_config, tiny

SHORT = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
]
# One recipe per domain whose tiny run takes seconds; the bundles of three or more domains are checked.
RECIPES = {
    "fraud": "fraud/tabular_mlp",
    "vision": "vision/digits_cnn",
    "nlp": "nlp/text_classification_scratch",
    "recsys": "recsys/matrix_factorization",
}
# Torch's own texts that must never reach the user (cut mid-sentence, or inviting weights_only=False).
TORCH_TEXT = ("PytorchStreamReader", "miniz", "Weights only load failed", "weights_only=False", "WeightsUnpickler")


class Payload:
    """Pickles as a call to ``os.mkdir(marker)``: if a loader ever ran the payload, the marker folder would appear."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (os.mkdir, (self.marker,))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Per domain: a tiny trained run (``run``, ``ckpt``) and its ONNX bundle (``onnx``)."""
    base = tmp_path_factory.mktemp("models")
    out: dict[str, dict[str, Path]] = {}
    for domain, recipe in RECIPES.items():
        run_dir = base / domain / "run"
        run(compose_config([f"+recipe={recipe}", *tiny(recipe), *SHORT], run_dir))
        ckpt = run_dir / "checkpoints" / "best.ckpt"
        export(ckpt, "onnx", base / domain / "onnx", measure_latency=False)
        out[domain] = {"run": run_dir, "ckpt": ckpt, "onnx": base / domain / "onnx"}
    return out


@pytest.fixture(scope="module")
def bad(models: dict[str, dict[str, Path]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files of every wrong kind, each alone in its own folder (so no message lists a neighbour)."""
    base = tmp_path_factory.mktemp("bad")

    def place(kind: str, name: str) -> Path:
        (base / kind).mkdir()
        return base / kind / name

    good = models["fraud"]["ckpt"].read_bytes()
    files = {
        "truncated": place("truncated", "best.ckpt"),
        "random": place("random", "best.ckpt"),
        "empty": place("empty", "best.ckpt"),
        "zip": place("zip", "best.ckpt"),
        "text": place("text", "best.ckpt"),
        "pickled": place("pickled", "best.ckpt"),
        "lightning": place("lightning", "best.ckpt"),
        "state_dict": place("state_dict", "weights.ckpt"),
        "folder": place("folder", "sub"),
        "lonely_onnx": place("lonely_onnx", "model.onnx"),
    }
    files["truncated"].write_bytes(good[: len(good) // 2])
    files["random"].write_bytes(bytes(range(7, 256)) * 40)
    files["empty"].write_bytes(b"")
    with zipfile.ZipFile(files["zip"], "w") as z:
        z.writestr("notes/readme.txt", "holiday photos")
    files["text"].write_text("epoch=3 step=120 val/acc=0.91\n")
    marker = base / "pickled" / "PAYLOAD_RAN"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "recipezoo": {"config": {}}, "extra": Payload(marker)},
               files["pickled"])  # fmt: skip
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, files["lightning"])
    torch.save({"w": torch.zeros(2)}, files["state_dict"])
    files["folder"].mkdir()
    shutil.copy(models["vision"]["onnx"] / "model.onnx", files["lonely_onnx"])
    files["marker"] = marker
    return files


@pytest.fixture
def intact(models: dict[str, dict[str, Path]], bad: dict[str, Path]):
    """Every file of the trained runs, bundles and bad files, checked unchanged after the case."""
    before = snapshot(*(m["run"].parent for m in models.values()), bad["truncated"].parent.parent)
    yield
    assert_intact(before)
    assert not bad["marker"].exists(), "a pickled payload ran"


def _no_torch_text(line: str) -> None:
    for text in TORCH_TEXT:
        assert text not in line, (text, line)


def _suggested_path(line: str) -> str:
    """The path an error line ends with (what a user pastes after ``ckpt=``)."""
    return line.rsplit(": ", 1)[1].strip()


# -- the four commands on files of the wrong kind ----------------------------------------------------------------

# kind -> what the line must say about the file
DESCRIBES = {
    "truncated": "cut short",
    "random": "not a PyTorch file",
    "empty": "empty file",
    "zip": "zip archive",
    "text": "text file",
    "pickled": "Python objects",
    "lightning": "another program",
    "state_dict": "plain state dict",
    "folder": "folder",
}


def _command(command: str, ckpt: Path, cwd: Path) -> tuple[str, list[str]]:
    """(script, args) running ``command`` on ``ckpt``, writing (if it got that far) under ``cwd``."""
    if command == "evaluate":
        return "scripts/evaluate.py", [f"ckpt={ckpt}", f"output={cwd / 'metrics.json'}"]
    if command == "predict":
        (cwd / "rows.csv").write_text("amount,merchant_category\n12.5,grocery\n")
        return "scripts/predict.py", [f"ckpt={ckpt}", f"input={cwd / 'rows.csv'}", f"output={cwd / 'out.csv'}"]
    if command == "export":
        return "scripts/export.py", [f"ckpt={ckpt}", f"output={cwd / 'bundle'}"]
    return "train.py", [
        "+recipe=fraud/tabular_mlp",
        *tiny("fraud/tabular_mlp"),
        f"ckpt_path={ckpt}",
        f"hydra.run.dir={cwd / 'resumed'}",
        "trainer=cpu",
    ]


# Every kind on evaluate; the commonest kinds on the other commands in the default run, the rest in the slow tier
# (the same reader answers them all: the default run keeps the catalogue cheap).
FAST_KINDS = {"evaluate": {"truncated", "text", "pickled", "state_dict"}, "predict": {"zip", "pickled", "folder"}}
FAST_KINDS |= {"export": {"random", "empty", "lightning"}, "train": {"truncated"}}
CASES = [
    pytest.param(kind, command, id=f"{command}-{kind}", marks=() if kind in FAST_KINDS[command] else pytest.mark.slow)
    for command in ("evaluate", "predict", "export", "train")
    for kind in (DESCRIBES if command != "train" else ("truncated", "pickled", "folder", "text"))
]


@pytest.mark.parametrize(("kind", "command"), CASES)
def test_wrong_kind_of_checkpoint_is_one_line(
    kind: str, command: str, bad: dict[str, Path], intact: None, tmp_path: Path
) -> None:
    script, args = _command(command, bad[kind], tmp_path)
    line = assert_user_error(cli(args, cwd=tmp_path, script=script), str(bad[kind]), DESCRIBES[kind])
    _no_torch_text(line)
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "bundle").exists()
    assert not (tmp_path / "metrics.json").exists()
    if kind == "pickled":  # refused, and never an invitation to load it anyway
        assert "weights_only" not in line and "not loaded, for safety" in line
    elif kind in ("lightning", "state_dict"):  # the way to use such weights, pasteable
        assert f"backbone.pretrained={bad[kind]}" in line
    elif kind != "folder":
        assert "best.ckpt or last.ckpt" in line


# -- folders and bundles where a checkpoint is needed: the line names the file to pass, and that file works ---------


def test_evaluate_a_run_folder_names_its_checkpoint_and_that_works(
    models: dict[str, dict[str, Path]], intact: None, tmp_path: Path
) -> None:
    run_dir = models["fraud"]["run"]
    line = assert_user_error(cli([f"ckpt={run_dir}"], cwd=tmp_path, script="scripts/evaluate.py"), "run folder")
    assert _suggested_path(line) == str(models["fraud"]["ckpt"])
    fixed = cli([f"ckpt={_suggested_path(line)}"], cwd=tmp_path, script="scripts/evaluate.py")
    assert fixed.returncode == 0, fixed.stderr[-2000:]


@pytest.mark.parametrize("domain", ["fraud", pytest.param("nlp", marks=pytest.mark.slow), "recsys"])
def test_export_of_a_bundle_names_the_checkpoint_it_came_from(
    domain: str, models: dict[str, dict[str, Path]], intact: None, tmp_path: Path
) -> None:
    onnx = models[domain]["onnx"]
    proc = cli([f"ckpt={onnx}", f"output={tmp_path / 'again'}"], cwd=tmp_path, script="scripts/export.py")
    line = assert_user_error(proc, str(onnx), "export bundle", "not a checkpoint")
    assert _suggested_path(line) == str(models[domain]["ckpt"])
    assert not (tmp_path / "again").exists()


def test_export_fix_from_the_bundle_message_works(
    models: dict[str, dict[str, Path]], intact: None, tmp_path: Path
) -> None:
    line = assert_user_error(
        cli([f"ckpt={models['vision']['onnx']}"], cwd=tmp_path, script="scripts/export.py"), "export bundle"
    )
    fixed = cli(
        [f"ckpt={_suggested_path(line)}", f"output={tmp_path / 'new'}"], cwd=tmp_path, script="scripts/export.py"
    )
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert (tmp_path / "new" / "model.onnx").is_file()


@pytest.mark.parametrize("domain", ["nlp", pytest.param("recsys", marks=pytest.mark.slow)])
def test_evaluate_the_model_file_inside_a_bundle(
    domain: str, models: dict[str, dict[str, Path]], intact: None, tmp_path: Path
) -> None:
    model = models[domain]["onnx"] / "model.onnx"
    line = assert_user_error(cli([f"ckpt={model}"], cwd=tmp_path, script="scripts/evaluate.py"), str(model))
    assert "model file of an onnx export bundle" in line
    assert _suggested_path(line) == str(models[domain]["ckpt"])


def test_train_resume_from_a_run_folder_names_its_checkpoint_and_that_composes(
    models: dict[str, dict[str, Path]], intact: None, tmp_path: Path
) -> None:
    recipe = ["+recipe=fraud/tabular_mlp", *tiny("fraud/tabular_mlp"), "trainer=cpu"]
    run_dir = models["fraud"]["run"]
    proc = cli([*recipe, f"ckpt_path={run_dir}", f"hydra.run.dir={tmp_path / 'r'}"], cwd=tmp_path)
    line = assert_user_error(proc, str(run_dir), "run folder")
    fixed = cli([*recipe, f"ckpt_path={_suggested_path(line)}", "--cfg", "job"], cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert str(models["fraud"]["ckpt"]) in fixed.stdout


def test_predict_from_a_run_folder_names_its_checkpoint_and_that_works(
    models: dict[str, dict[str, Path]], intact: None, tmp_path: Path
) -> None:
    Image.new("L", (8, 8), 128).save(tmp_path / "digit.png")
    args = [f"input={tmp_path / 'digit.png'}", f"output={tmp_path / 'out.csv'}"]
    line = assert_user_error(
        cli([f"ckpt={models['vision']['run']}", *args], cwd=tmp_path, script="scripts/predict.py"), "run folder"
    )
    fixed = cli([f"ckpt={_suggested_path(line)}", *args], cwd=tmp_path, script="scripts/predict.py")
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert (tmp_path / "out.csv").is_file()


def test_predict_with_a_model_file_copied_without_its_bundle(
    bad: dict[str, Path], intact: None, tmp_path: Path
) -> None:
    (tmp_path / "digit.png").write_bytes(b"")
    proc = cli(
        [f"ckpt={bad['lonely_onnx']}", f"input={tmp_path / 'digit.png'}", f"output={tmp_path / 'o.csv'}"],
        cwd=tmp_path,
        script="scripts/predict.py",
    )
    assert_user_error(proc, str(bad["lonely_onnx"]), "copied without its bundle", "metadata.json")


def test_predict_with_a_folder_that_is_no_model(bad: dict[str, Path], intact: None, tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("a\n1\n")
    proc = cli(
        [f"ckpt={bad['folder']}", f"input={tmp_path / 'rows.csv'}", f"output={tmp_path / 'o.csv'}"],
        cwd=tmp_path,
        script="scripts/predict.py",
    )
    assert_user_error(proc, str(bad["folder"]), "without checkpoints or metadata.json")


@pytest.mark.parametrize(("domain", "input_name"), [("vision", "rows.csv"), ("fraud", "notes.txt")])
def test_predict_with_another_tasks_input(
    domain: str, input_name: str, models: dict[str, dict[str, Path]], intact: None, tmp_path: Path
) -> None:
    """A bundle of one task given another task's input: one line, nothing written."""
    (tmp_path / input_name).write_text(
        "amount,merchant_category\n12.5,grocery\n" if input_name.endswith("csv") else "hi\n"
    )
    proc = cli(
        [f"ckpt={models[domain]['onnx']}", f"input={tmp_path / input_name}", f"output={tmp_path / 'o.csv'}"],
        cwd=tmp_path,
        script="scripts/predict.py",
    )
    assert_user_error(proc)
    assert not (tmp_path / "o.csv").exists()


# -- a bundle's loader.py (the torch-free runtime) given a file of the wrong kind -------------------------------------


def _loader(bundle: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(bundle / "loader.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


LOADER_CASES = [
    (domain, kind) for domain in ("fraud", "vision", "nlp", "recsys") for kind in ("ckpt", "text", "folder", "other")
]
LOADER_SAYS = {
    "ckpt": "is a checkpoint, not an export bundle",
    "text": "is a file, not a bundle folder",
    "folder": "holds no metadata.json",
    "other": "use that bundle's own loader",
}


@pytest.mark.parametrize(("domain", "kind"), LOADER_CASES, ids=[f"{d}-{k}" for d, k in LOADER_CASES])
def test_bundle_loader_given_the_wrong_kind_of_path(
    domain: str, kind: str, models: dict[str, dict[str, Path]], bad: dict[str, Path], intact: None, tmp_path: Path
) -> None:
    other = "vision" if domain != "vision" else "fraud"
    given = {
        "ckpt": models[domain]["ckpt"],
        "text": tmp_path / "notes.txt",
        "folder": models[domain]["run"],  # a run folder: no metadata.json
        "other": models[other]["onnx"],
    }[kind]
    (tmp_path / "in.csv").write_text("user\n1\n")
    (tmp_path / "notes.txt").write_text("not a bundle\n")
    proc = _loader(models[domain]["onnx"], str(given), str(tmp_path / "in.csv"), cwd=tmp_path)
    assert_user_error(proc, str(given), LOADER_SAYS[kind])
    if kind == "other":
        assert str(models[other]["onnx"] / "loader.py") in proc.stderr


@pytest.mark.parametrize("domain", ["fraud", "vision", "nlp", "recsys"])
def test_bundle_loader_help_and_missing_model_file(
    domain: str, models: dict[str, dict[str, Path]], intact: None, tmp_path: Path
) -> None:
    shown = _loader(models[domain]["onnx"], "--help", cwd=tmp_path)
    assert shown.returncode == 0 and shown.stdout.startswith("usage: python loader.py"), shown.stderr
    partial = tmp_path / "partial"
    shutil.copytree(models[domain]["onnx"], partial)
    (partial / "model.onnx").unlink()
    (tmp_path / "in.csv").write_text("user\n1\n")
    proc = _loader(partial, str(partial), str(tmp_path / "in.csv"), cwd=tmp_path)
    assert_user_error(proc, str(partial), "lacks model.onnx", "copy the whole folder")


def test_runtime_errors_are_value_errors_and_the_bundle_door_turns_them_into_user_errors(
    models: dict[str, dict[str, Path]], tmp_path: Path
) -> None:
    from recipezoo.runtime import tabular, vision

    with pytest.raises(ValueError, match="holds a model for 'image_classification'"):
        tabular.OnnxFraudScorer(models["vision"]["onnx"])
    with pytest.raises(vision.BundleError, match="holds no metadata.json"):
        vision.OnnxImageClassifier(tmp_path)
    damaged = tmp_path / "damaged"
    shutil.copytree(models["fraud"]["onnx"], damaged)
    (damaged / "metadata.json").write_text('{"task": "fraud_detection", ')
    with pytest.raises(ValueError, match="is damaged"):
        tabular.read_metadata(damaged)
    with pytest.raises(CheckpointError, match="is damaged"):
        core_bundle.load(damaged)
    (damaged / "metadata.json").write_text((models["fraud"]["onnx"] / "metadata.json").read_text())
    (damaged / "model.onnx").unlink()
    with pytest.raises(CheckpointError, match="lacks model.onnx"):
        core_bundle.load(damaged)
    with pytest.raises(ConfigError, match="is a 'fraud_detection' bundle; this predictor handles image"):
        core_bundle.load(models["fraud"]["onnx"], ("image_classification",))
    (damaged / "model.onnx").write_bytes(b"not a protobuf at all")
    loaded = core_bundle.load(tmp_path / "damaged" / "metadata.json")  # a file inside the bundle names it too
    with pytest.raises(UserError, match="cannot open"):
        loaded.model  # noqa: B018  (opening the session is what fails)


# -- in-process: the checkpoint reader and the weights door --------------------------------------------------------


def test_read_never_passes_torch_text_through(bad: dict[str, Path]) -> None:
    for kind in ("truncated", "random", "empty", "zip", "text", "pickled"):
        with pytest.raises(CheckpointError) as e:
            read(bad[kind])
        message = str(e.value)
        assert str(bad[kind]) in message and DESCRIBES[kind] in message, message
        assert "\n" not in message
        _no_torch_text(message)
        # Every sentence ends: no text cut off at a length limit.
        assert re.search(r"[.)\w]$", message), message
    assert not bad["marker"].exists()


def test_weights_file_with_a_pickled_payload_offers_the_trusted_switch_only(tmp_path: Path) -> None:
    marker = tmp_path / "PAYLOAD_RAN"
    path = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(2), "extra": Payload(marker)}, path)
    with pytest.raises(PretrainedError) as e:
        load_state_dict(path)
    message = str(e.value)
    assert "cannot read weights" in message and "not loaded, for safety" in message
    assert "If you trust where the file came from, pass backbone.weights_only=false" in message
    assert "weights_only=False" not in message and not marker.exists()


@pytest.mark.parametrize(
    ("content", "says"),
    [(b"", "empty file"), (b"PK\x03\x04" + b"\x00" * 64, "cut short"), (b"hello weights\n", "text file")],
)
def test_unreadable_weights_file_says_what_it_is(content: bytes, says: str, tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(PretrainedError) as e:
        load_state_dict(path)
    assert says in str(e.value) and "weights_only" not in str(e.value)
    _no_torch_text(str(e.value))


def test_bundle_metadata_written_by_export_is_what_the_runtime_checks(models: dict[str, dict[str, Path]]) -> None:
    """The runtimes' checks accept every real bundle (no false refusals)."""
    from recipezoo.runtime import recsys, tabular, text, vision

    for domain, module in (("fraud", tabular), ("vision", vision), ("nlp", text), ("recsys", recsys)):
        meta = module.read_metadata(models[domain]["onnx"])
        assert meta == json.loads((models[domain]["onnx"] / "metadata.json").read_text())
