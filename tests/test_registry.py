"""The task registry: every domain's tasks are found without a central list, and a task added through the registry
alone trains, predicts and exports (``tests/toy_task.py``, which nothing in ``src/`` names)."""

from __future__ import annotations

import csv
import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from omegaconf import OmegaConf, open_dict

import recipezoo
from recipezoo.core import registry
from recipezoo.core.bundle import Loaded, load, task_of
from recipezoo.core.errors import ConfigError
from recipezoo.core.registry import get_task, register_task, task_for_module, tasks, unregister_task
from tests.conftest import compose_config
from tests.toy_task import TASK, NamedToyClassifier, ToyClassifier, blobs, read_points, write_points

BUILT_IN = {
    "image_classification": "recipezoo.vision.task:ImageClassifier",
    "fraud_detection": "recipezoo.fraud.task:FraudDetector",
    "text_classification": "recipezoo.nlp.task:TextClassifier",
    "token_classification": "recipezoo.nlp.task:TokenClassifier",
    "recommendation": "recipezoo.recsys.task:Recommender",
    "audio_classification": "recipezoo.speech.task:AudioClassifier",
    "speech_recognition": "recipezoo.speech.task:SpeechRecognizer",
}


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, registry.TaskSpec]:
    """A registry the test may change freely: restored (tasks and discovery state) afterwards."""
    registry.discover()
    saved = dict(registry._TASKS)
    monkeypatch.setattr(registry, "_TASKS", saved)
    return saved


@pytest.fixture
def toy_task() -> Any:
    """The toy task, registered for the test and forgotten after it."""
    spec = register_task(
        TASK,
        module="tests.toy_task:ToyClassifier",
        runtime="tests.toy_runtime",
        predictor="tests.toy_task:predict_points",
        inputs=("table",),
        metadata={"toy": True},
    )
    yield spec
    unregister_task(TASK)


# --------------------------------------------------------------------------------------------------------------
# The registry


def test_every_domain_registers_its_tasks_and_their_import_strings_resolve() -> None:
    found = tasks()
    assert {name: found[name].module for name in BUILT_IN} == BUILT_IN
    for spec in (found[name] for name in BUILT_IN):
        assert spec.runtime and spec.predictor and spec.inputs
        assert importlib.import_module(spec.runtime).__file__.endswith(".py")
        assert callable(spec.predictor_fn())
        assert spec.module_class().__name__ == spec.module.split(":")[1]
        assert task_for_module(spec.module_class()) is spec
    assert callable(get_task("image_classification").function("predict_paths"))


def test_listing_the_tasks_imports_neither_torch_nor_a_domain_module() -> None:
    code = (
        "import sys; from recipezoo.core.registry import tasks; names = tasks(); "
        "print(len(names), sorted(m for m in sys.modules if m in ('torch', 'lightning', 'transformers') "
        "or (m.startswith('recipezoo.') and m.count('.') == 2 and not m.endswith('.tasks') "
        "and not m.startswith('recipezoo.core.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert int(out[0]) >= len(BUILT_IN)
    assert out[1].strip() == "[]"


def test_task_for_module_by_target_class_instance_subclass_and_own_name(toy_task: registry.TaskSpec) -> None:
    assert task_for_module("recipezoo.fraud.task.FraudDetector") is get_task("fraud_detection")
    assert task_for_module("recipezoo.fraud.task:FraudDetector") is get_task("fraud_detection")
    assert task_for_module(ToyClassifier) is toy_task
    assert task_for_module("tests.toy_task.ToyClassifier") is toy_task
    assert task_for_module(NamedToyClassifier) is toy_task  # its own task_name
    assert task_for_module(ToyClassifier(["a", "b"], {"features": 4})) is toy_task  # an instance

    class Sub(ToyClassifier):
        pass

    assert task_for_module(Sub) is toy_task  # the nearest registered base class
    assert task_for_module(int) is None
    assert task_for_module("no.such.module.Class") is None


def test_registering_twice_the_same_is_harmless_and_a_conflict_is_refused(isolated_registry: dict) -> None:
    a = register_task("toy_x", module="tests.toy_task:ToyClassifier", inputs=["table"])
    assert register_task("toy_x", module="tests.toy_task:ToyClassifier", inputs=("table",)) == a
    with pytest.raises(ValueError, match="already registered"):
        register_task("toy_x", module="tests.toy_task:NamedToyClassifier")
    b = register_task("toy_x", module="tests.toy_task:NamedToyClassifier", replace=True)
    assert get_task("toy_x") is b
    with pytest.raises(ValueError, match="package.module:Class"):
        register_task("toy_y", module="tests.toy_task.ToyClassifier")
    with pytest.raises(AttributeError):
        b.name = "other"  # type: ignore[misc]  # frozen


def test_unknown_task_names_the_known_ones(isolated_registry: dict) -> None:
    with pytest.raises(ConfigError, match="no registered task 'nope'; known tasks: .*image_classification"):
        get_task("nope")
    with pytest.raises(ConfigError, match="no predictor"):
        register_task("toy_no_predictor", module="tests.toy_task:ToyClassifier").predictor_fn()


def test_a_new_domain_package_is_discovered_without_a_central_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_registry: dict
) -> None:
    domain = tmp_path / "toydomain"
    domain.mkdir()
    (domain / "__init__.py").write_text("")
    (domain / "tasks.py").write_text(
        "from recipezoo.core.registry import register_task\n"
        "register_task('toy_domain_task', module='tests.toy_task:ToyClassifier', inputs=('table',))\n"
    )
    (tmp_path / "notasks").mkdir()
    (tmp_path / "notasks" / "__init__.py").write_text("raise RuntimeError('a package without tasks is not imported')")
    monkeypatch.setattr(recipezoo, "__path__", [*recipezoo.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_discovered", False)
    for name in ("recipezoo.toydomain", "recipezoo.toydomain.tasks"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        assert tasks()["toy_domain_task"].module == "tests.toy_task:ToyClassifier"
    finally:
        for name in ("recipezoo.toydomain.tasks", "recipezoo.toydomain"):
            sys.modules.pop(name, None)


def test_entry_points_register_third_party_tasks(monkeypatch: pytest.MonkeyPatch, isolated_registry: dict) -> None:
    import importlib.metadata

    class EntryPoint:
        value = "thirdparty.tasks:register"

        def load(self) -> Any:
            return lambda: register_task("toy_plugin_task", module="tests.toy_task:ToyClassifier")

    class Broken(EntryPoint):
        value = "broken.tasks"

        def load(self) -> Any:
            raise ImportError("not installed")

    def entry_points(group: str) -> list[Any]:
        return [EntryPoint(), Broken()] if group == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(registry, "_discovered", False)
    assert "toy_plugin_task" in tasks()  # the broken one is warned about, not fatal
    assert "image_classification" in tasks()


def test_load_refuses_what_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ConfigError, match="neither a .ckpt nor an export folder"):
        load(tmp_path / "notes.txt")
    (tmp_path / "metadata.json").write_text(json.dumps({"task": "juggling", "format": "onnx"}))
    with pytest.raises(ConfigError, match="no registered task 'juggling'; known tasks"):
        load(tmp_path)
    (tmp_path / "metadata.json").write_text(json.dumps({"task": "fraud_detection", "model_file": "model.pt"}))
    loaded = load(tmp_path / "model.pt")
    assert (loaded.task.name, loaded.format, loaded.bundle) == ("fraud_detection", "torchscript", tmp_path)
    with pytest.raises(ConfigError, match="is a 'fraud_detection' bundle; this predictor handles image"):
        load(tmp_path, ("image_classification",))
    assert task_of(tmp_path) is get_task("fraud_detection")


# --------------------------------------------------------------------------------------------------------------
# A task added through the registry alone: trained, predicted and exported by recipezoo's own entry functions


def toy_config(out: Path) -> Any:
    """The default config with the toy task's data and model composed in (what a recipe would override)."""
    cfg = compose_config(["trainer.max_epochs=4"], out)
    with open_dict(cfg):
        cfg.recipe_name = "toy/toy_classification"
        cfg.data = OmegaConf.create({"_target_": "tests.toy_task.ToyDataModule", "size": 256, "batch_size": 32})
        cfg.model = OmegaConf.create(
            {
                "_target_": "tests.toy_task.ToyClassifier",
                "labels": "${data_info.labels}",
                "preprocessing": "${data_info.preprocessing}",
                "lr": 0.2,
            }
        )
        cfg.monitor = OmegaConf.create({"metric": "val/acc", "mode": "max"})
    return cfg


@pytest.mark.export
def test_a_task_registered_alone_trains_predicts_and_exports(toy_task: registry.TaskSpec, tmp_path: Path) -> None:
    from recipezoo.export import export
    from recipezoo.predict import predict, task_of
    from recipezoo.train import run

    summary = run(toy_config(tmp_path / "run"))
    ckpt = Path(summary["best_checkpoint"])
    assert summary["test"]["test/acc"] > 0.95  # two blobs two standard deviations apart: it learned them

    x, y = blobs(40, seed=11)
    write_points(tmp_path / "points.csv", x)
    assert task_of(ckpt) == TASK
    rows = predict(ckpt, tmp_path / "points.csv", tmp_path / "ckpt.csv")
    assert [r["row"] for r in rows] == list(range(40))
    assert np.mean([r["prediction"] == ("left", "right")[t] for r, t in zip(rows, y)]) > 0.9
    with open(tmp_path / "ckpt.csv", newline="") as f:
        assert next(csv.reader(f)) == ["row", "prediction", "confidence"]

    meta = export(ckpt, "onnx", tmp_path / "onnx")
    assert meta["task"] == TASK and meta["toy"] is True and meta["parity"]["passed"]
    runtime = Path(importlib.import_module(toy_task.runtime).__file__)
    assert (tmp_path / "onnx" / "loader.py").read_text() == runtime.read_text()
    export(ckpt, "torchscript", tmp_path / "ts")
    for name in ("onnx", "ts"):
        assert task_of(tmp_path / name) == TASK
        other = predict(tmp_path / name, tmp_path / "points.csv", tmp_path / f"{name}.csv")
        assert [r["prediction"] for r in other] == [r["prediction"] for r in rows]
        np.testing.assert_allclose([r["confidence"] for r in other], [r["confidence"] for r in rows], atol=1e-5)

    # What load() hands a predictor, for each kind of source.
    opened = {name: load(source) for name, source in (("ckpt", ckpt), ("onnx", tmp_path / "onnx"),
                                                     ("ts", tmp_path / "ts" / "model.pt"))}  # fmt: skip
    assert {k: (v.task.name, v.format) for k, v in opened.items()} == {
        "ckpt": (TASK, "ckpt"),
        "onnx": (TASK, "onnx"),
        "ts": (TASK, "torchscript"),
    }
    assert opened["ckpt"].metadata["labels"] == ["left", "right"] and opened["ckpt"].config.recipe_name
    assert opened["onnx"].model.get_inputs()[0].name == "features"  # an onnxruntime session
    assert load(opened["ts"]) is opened["ts"]  # an opened source passes through
    assert isinstance(opened["ts"], Loaded) and opened["ts"].model_file == tmp_path / "ts" / "model.pt"
    np.testing.assert_allclose(read_points(tmp_path / "points.csv"), x, rtol=1e-6)
