"""Bad input gives a clear error (a UserError subclass; one ``error:`` line from the CLI); nothing is lost."""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from recipezoo.cli import available_recipes, check_recipe_args
from recipezoo.core.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    OutputExistsError,
    PretrainedError,
)
from recipezoo.evaluate import evaluate
from recipezoo.export import export
from recipezoo.predict import predict
from recipezoo.train import run
from recipezoo.vision.models import create_model
from tests.conftest import RECIPES, ROOT, TINY, compose_config

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220), "yellow": (230, 220, 20)}
FOLDER = ["+recipe=vision/imagefolder_finetune", *TINY, "data.synthetic=false"]
SHORT = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
]


# -- helpers -------------------------------------------------------------------------------------------------


def png_bytes(colour: tuple[int, int, int], size: int = 20) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, "PNG")
    return buf.getvalue()


def make_folder(root: Path, classes: Sequence[str], per_class: int = 6) -> Path:
    """``root/<class>/<i>.png``: tiny solid-colour PNGs, slightly different shades within a class."""
    for name in classes:
        d = root / name
        d.mkdir(parents=True)
        r, g, b = COLOURS[name]
        for i in range(per_class):
            (d / f"{i}.png").write_bytes(png_bytes((max(0, r - 5 * i), max(0, g - 5 * i), max(0, b - 5 * i))))
    return root


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its content hash."""
    return {str(p.relative_to(folder)): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def cli(args: Sequence[str], cwd: Path = ROOT, script: str = "train.py") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def assert_user_error(proc: subprocess.CompletedProcess) -> str:
    """Exit status 2, exactly one ``error:`` line and no traceback; returns the error line."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    return errors[0]


def setup_data(cfg: Any) -> Any:
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny run on a real 3-class image folder (checkpoint, images, run folder), shared by this module."""
    base = tmp_path_factory.mktemp("trained")
    data = make_folder(base / "data3", ["red", "green", "blue"])
    out = base / "run"
    run(compose_config([*FOLDER, f"data.root={data}", *SHORT], out))
    return {"ckpt": out / "checkpoints" / "best.ckpt", "data": data, "run": out}


# -- recipes and config keys ---------------------------------------------------------------------------------


def test_unknown_recipe_lists_close_matches() -> None:
    with pytest.raises(ConfigError, match="unknown recipe 'vision/cifar10_resnt'") as e:
        check_recipe_args(["+recipe=vision/cifar10_resnt"], ROOT / "recipes")
    assert "vision/cifar10_resnet18" in str(e.value)
    assert "python train.py list" in str(e.value)
    # A known recipe passes; `recipe=` without '+' is explained.
    check_recipe_args(["+recipe=vision/digits_cnn"], ROOT / "recipes")
    with pytest.raises(ConfigError, match=r"\+recipe=vision/digits_cnn"):
        check_recipe_args(["recipe=vision/digits_cnn"], ROOT / "recipes")


def test_cli_unknown_recipe(tmp_path: Path) -> None:
    proc = cli(["+recipe=vision/cifar10_resnt", f"hydra.run.dir={tmp_path / 'run'}"])
    line = assert_user_error(proc)
    assert "vision/cifar10_resnt" in line and "vision/cifar10_resnet18" in line
    assert not (tmp_path / "run").exists()


def test_cli_list_shows_every_recipe() -> None:
    assert available_recipes(ROOT / "recipes") == RECIPES
    proc = cli(["list"])
    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[0] for line in proc.stdout.splitlines()[1:] if line.strip()]
    assert listed == RECIPES


def test_cli_unknown_config_key(tmp_path: Path) -> None:
    proc = cli(["foo=1", f"hydra.run.dir={tmp_path / 'run'}"])
    assert proc.returncode != 0
    assert "foo" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


# -- data ----------------------------------------------------------------------------------------------------


def test_missing_data_folder(make_cfg: Any, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    with pytest.raises(DataError, match="not found") as e:
        run(make_cfg(*FOLDER, f"data.root={missing}"))
    assert str(missing) in str(e.value)


def test_cli_missing_data_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_folder"
    proc = cli(
        [*FOLDER, f"data.root={missing}", "trainer=cpu", "data.num_workers=0", f"hydra.run.dir={tmp_path / 'run'}"]
    )
    line = assert_user_error(proc)
    assert str(missing) in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_no_data_folder_given(make_cfg: Any) -> None:
    with pytest.raises(ConfigError, match="data.root"):
        run(make_cfg(*FOLDER))


def test_empty_data_folder(make_cfg: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no class sub-folders") as e:
        run(make_cfg(*FOLDER, f"data.root={empty}"))
    assert str(empty) in str(e.value)


def test_class_folders_without_images(make_cfg: Any, tmp_path: Path) -> None:
    root = tmp_path / "noimages"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        (root / name / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match="no readable images"):
        run(make_cfg(*FOLDER, f"data.root={root}"))


def test_single_class_folder(make_cfg: Any, tmp_path: Path) -> None:
    root = make_folder(tmp_path / "one", ["red"])
    with pytest.raises(DataError, match="only one class") as e:
        run(make_cfg(*FOLDER, f"data.root={root}"))
    assert "red" in str(e.value)


def test_corrupt_image_is_skipped_with_warning(make_cfg: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_folder(tmp_path / "data", ["red", "green", "blue"], per_class=8)
    bad = root / "green" / "truncated.png"
    good = png_bytes((1, 2, 3))
    bad.write_bytes(good[: len(good) // 2])  # 1 of 25 images: under the default max_bad_fraction (5%)
    with caplog.at_level(logging.WARNING):
        dm = setup_data(make_cfg(*FOLDER, f"data.root={root}"))
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "unreadable" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert "Skipped 1 unreadable" in warnings[0] and str(bad) in warnings[0]
    items = [item for ds in dm.datasets.values() for item in ds.items]
    assert str(bad) not in items
    assert len(items) == 24  # every good image is kept
    x, y = next(iter(dm.train_dataloader()))  # and the remaining data loads
    assert x.shape[1:] == (3, 16, 16)


def test_mostly_corrupt_folder_is_rejected(make_cfg: Any, tmp_path: Path) -> None:
    root = make_folder(tmp_path / "data", ["red", "green", "blue"], per_class=2)
    for name in ("red", "green", "blue"):
        for i in range(3):
            (root / name / f"bad{i}.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match="max_bad_fraction") as e:
        run(make_cfg(*FOLDER, f"data.root={root}"))
    assert "9 of 15" in str(e.value)


def test_label_count_mismatch_with_checkpoint(
    trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data4 = make_folder(tmp_path / "data4", ["red", "green", "blue", "yellow"])
    with pytest.raises(DataError, match="label(-count)? mismatch") as e:
        evaluate(trained["ckpt"], "test", [f"data.root={data4}"])
    assert "yellow" in str(e.value)


def test_evaluate_unknown_data_key(trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="unknown data key 'data.rooot'") as e:
        evaluate(trained["ckpt"], "test", ["data.rooot=/x"])
    assert "root" in str(e.value)


def test_evaluate_writes_nothing_it_was_not_asked_to(
    trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """evaluate() writes only ``output``: a same-named file in the working directory is never replaced."""
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "test_confusion_matrix.csv"
    mine.write_text("my own file\n")
    metrics = evaluate(trained["ckpt"], "test")
    assert "test/acc" in metrics
    assert mine.read_text() == "my own file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test_confusion_matrix.csv"]


# -- checkpoints and outputs ---------------------------------------------------------------------------------


def test_export_missing_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"")
    missing = tmp_path / "run" / "checkpoints" / "best.ckpt"
    with pytest.raises(CheckpointError, match="checkpoint not found") as e:
        export(missing, "onnx", tmp_path / "bundle")
    assert str(missing) in str(e.value) and "last.ckpt" in str(e.value)  # names what is there instead
    assert not (tmp_path / "bundle").exists()


def test_export_not_a_checkpoint(tmp_path: Path) -> None:
    fake = tmp_path / "fake.ckpt"
    fake.write_text("hello")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        export(fake, "onnx", tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_cli_export_missing_checkpoint(tmp_path: Path) -> None:
    proc = cli(["ckpt=missing.ckpt"], cwd=tmp_path, script="scripts/export.py")
    line = assert_user_error(proc)
    assert "missing.ckpt" in line
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_refuses_used_output_dir(trained: dict[str, Path], tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "metadata.json").write_text('{"mine": true}\n')
    before = snapshot(out)
    with pytest.raises(OutputExistsError, match="already holds files"):
        export(trained["ckpt"], fmt, out)
    assert snapshot(out) == before


def test_predict_refuses_existing_csv(trained: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "predictions.csv"
    out.write_text("path,prediction\nmine.png,cat\n")
    with pytest.raises(OutputExistsError, match="already exists"):
        predict(trained["ckpt"], trained["data"], out)
    assert out.read_text() == "path,prediction\nmine.png,cat\n"


def test_evaluate_refuses_existing_output(trained: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "metrics.json"
    out.write_text("{}\n")
    with pytest.raises(OutputExistsError):
        evaluate(trained["ckpt"], "test", output=out)
    assert out.read_text() == "{}\n"


def test_train_refuses_used_run_folder(trained: dict[str, Path]) -> None:
    before = snapshot(trained["run"])
    cfg = compose_config([*FOLDER, f"data.root={trained['data']}", *SHORT], trained["run"])
    with pytest.raises(OutputExistsError, match="overwrite=true"):
        run(cfg)
    assert snapshot(trained["run"]) == before


def test_cli_train_refuses_used_run_dir(tmp_path: Path) -> None:
    used = tmp_path / "used"
    (used / "checkpoints").mkdir(parents=True)
    (used / "checkpoints" / "best.ckpt").write_bytes(b"precious")
    (used / "notes.txt").write_text("keep me")
    before = snapshot(used)
    proc = cli([f"hydra.run.dir={used}"])
    line = assert_user_error(proc)
    assert str(used) in line
    assert snapshot(used) == before
    assert not (used / ".hydra").exists()


# -- pretrained weights --------------------------------------------------------------------------------------


def test_pretrained_from_another_architecture_lists_keys(tmp_path: Path) -> None:
    path = tmp_path / "convnet_small.pth"
    torch.save(create_model("convnet_small", 5).model.state_dict(), path)
    with pytest.raises(PretrainedError, match="another architecture") as e:
        create_model("resnet18", 5, pretrained=str(path))
    msg = str(e.value)
    assert str(path) in msg
    assert "missing conv1.weight" in msg


def test_pretrained_from_deeper_resnet_is_refused(tmp_path: Path) -> None:
    """resnet34 weights hold every resnet18 key (plus extra blocks): still a file for another architecture."""
    import torchvision

    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(num_classes=5).state_dict(), path)
    with pytest.raises(PretrainedError, match="another architecture") as e:
        create_model("resnet18", 5, pretrained=str(path))
    assert "layer1.2" in str(e.value)


def test_pretrained_head_of_other_size_is_reinitialised(tmp_path: Path) -> None:
    """The happy path the errors above guard: same architecture, other label count, loads fine."""
    src = create_model("convnet_tiny", 7)
    path = tmp_path / "tiny.pth"
    torch.save(src.model.state_dict(), path)
    net = create_model("convnet_tiny", 3, pretrained=str(path))
    assert torch.equal(net.model.features[0][0].weight, src.model.features[0][0].weight)
    assert net.head.out_features == 3


@pytest.mark.parametrize("name", ["convnet_tiny", "resnet18"])
def test_missing_pretrained_file_is_named(tmp_path: Path, name: str) -> None:
    missing = tmp_path / "weights.pth"
    with pytest.raises(PretrainedError, match="not found") as e:
        create_model(name, 3, pretrained=str(missing))
    assert str(missing) in str(e.value)


def test_unknown_backbone_suggests_close_names() -> None:
    with pytest.raises(ConfigError, match="unknown backbone 'resnet81'") as e:
        create_model("resnet81", 3)
    hint = str(e.value).split("Did you mean:")[1].split("?")[0]
    names = [n.strip() for n in hint.split(",")]
    assert "resnet18" in names
    assert len(names) == len(set(names)), f"duplicate suggestions: {names}"
