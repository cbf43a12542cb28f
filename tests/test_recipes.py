"""Every recipe trains, tests and exports, tiny and offline; recipe files follow the house conventions.

The recipe list comes from ``conftest.RECIPES`` (every ``recipes/**/*.yaml``), so a new recipe is covered here
without new test code.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from recipezoo.cli import recipe_header
from recipezoo.export import export
from recipezoo.train import run
from tests.conftest import RECIPES, ROOT, TINY, compose_config, tiny

SHORT = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
]


def recipe_overrides(name: str) -> list[str]:
    return [f"+recipe={name}", *tiny(name), *SHORT]


@pytest.fixture(scope="module", params=RECIPES)
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, dict]:
    """One tiny training run per recipe, shared by the train and export tests of that recipe."""
    name = request.param
    out = tmp_path_factory.mktemp(name.replace("/", "_")) / "run"
    cfg = compose_config(recipe_overrides(name), out)
    summary = run(cfg)
    return name, out, summary


def test_recipe_trains_and_tests(trained: tuple[str, Path, dict]) -> None:
    name, out, summary = trained
    for rel in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "metrics.csv", "summary.json"):
        assert (out / rel).is_file(), f"{name}: {rel} missing from the run folder"
    assert summary["recipe"] == name
    assert Path(summary["best_checkpoint"]) == out / "checkpoints" / "best.ckpt"
    assert Path(summary["last_checkpoint"]) == out / "checkpoints" / "last.ckpt"
    saved = OmegaConf.load(out / "config.yaml")  # the resolved config, with what the data fitted
    monitored = saved.monitor.metric.split("/", 1)[1]
    value = summary["test"][f"test/{monitored}"]
    # Maximised scores (accuracy, AUPRC, NDCG) are rates in [0, 1]; minimised ones are errors (RMSE, WER, CER), >= 0.
    assert 0.0 <= value <= 1.0 if saved.monitor.mode == "max" else 0.0 <= value < float("inf")
    assert summary["epochs"] == 1
    assert saved.recipe_name == name
    assert saved.data_info.preprocessing
    if "labels" in saved.data_info:
        assert saved.data_info.num_classes == len(saved.data_info.labels) >= 2
    assert "${" not in (out / "config.yaml").read_text()
    # summary.json on disk is what run() returned.
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    # metrics.csv has validation metrics for the epoch.
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert saved.monitor.metric in header


def _load_loader(bundle: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"bundle_loader_{abs(hash(bundle))}", bundle / "loader.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.export
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_recipe_exports_with_parity(trained: tuple[str, Path, dict], fmt: str, tmp_path: Path) -> None:
    name, out, summary = trained
    bundle = tmp_path / fmt
    meta = export(out / "checkpoints" / "best.ckpt", fmt, bundle, tolerance=1e-4)

    assert meta["parity"]["passed"] is True
    assert meta["parity"]["max_abs_diff"] <= 1e-4
    assert meta["recipe"] == name

    on_disk = json.loads((bundle / "metadata.json").read_text())
    assert on_disk["parity"]["max_abs_diff"] == meta["parity"]["max_abs_diff"]
    ckpt = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    config = ckpt["recipezoo"]["config"]
    assert on_disk["preprocessing"] == config["data_info"]["preprocessing"]
    assert (bundle / on_disk["model_file"]).is_file()
    assert (bundle / "loader.py").is_file() == (fmt == "onnx")
    CHECK_BUNDLE[on_disk["task"]](bundle, on_disk, config, fmt)


def _check_image_bundle(bundle: Path, on_disk: dict, config: dict, fmt: str) -> None:
    data_info = config["data_info"]
    assert on_disk["labels"] == data_info["labels"] and len(on_disk["labels"]) >= 2
    pp = on_disk["preprocessing"]
    assert pp == data_info["preprocessing"]
    assert {"mode", "resize_size", "crop_size", "mean", "std"} <= set(pp)
    assert pp["crop_size"] == 16  # TINY's data.image_size

    if fmt == "onnx":
        # The bundled loader works on its own: it reads the bundle and classifies an image.
        loader = _load_loader(bundle)
        clf = loader.OnnxImageClassifier(bundle)
        proba = clf.predict_proba([Image.new("RGB", (20, 20), (200, 30, 30))])
        assert proba.shape == (1, len(on_disk["labels"]))
        assert abs(float(proba.sum()) - 1.0) < 1e-4


def _check_fraud_bundle(bundle: Path, on_disk: dict, config: dict, fmt: str) -> None:
    from recipezoo.fraud.data import make_synthetic_frame

    assert on_disk["threshold_on"] == "score" and on_disk["threshold"] is not None
    assert on_disk["calibration"]["kind"] in {"none", "platt", "isotonic"}
    assert [i["dtype"] for i in on_disk["inputs"].values()] == ["float32", "int64"]
    if fmt == "onnx":
        # The bundled loader scores raw rows on its own: preprocessing, model, calibration, threshold.
        frame = make_synthetic_frame(50, 0.1, seed=3)
        scored = _load_loader(bundle).OnnxFraudScorer(bundle).score(frame)
        assert scored["score"].shape == scored["probability"].shape == (50,)
        assert ((scored["probability"] >= 0) & (scored["probability"] <= 1)).all()
        assert set(np.unique(scored["decision"])) <= {False, True}


def _check_text_bundle(bundle: Path, on_disk: dict, config: dict, fmt: str) -> None:
    data_info = config["data_info"]
    assert on_disk["labels"] == data_info["labels"]
    assert (bundle / "tokenizer.json").is_file() and on_disk["files"] == ["tokenizer.json"]
    names = list(on_disk["inputs"])
    assert names[:2] == ["input_ids", "attention_mask"]
    assert all(i["shape"][:2] == ["batch", "sequence"] for i in on_disk["inputs"].values())
    if fmt == "onnx":
        # The bundled loader tokenizes raw text and predicts with onnxruntime and tokenizers alone.
        model = _load_loader(bundle).load_bundle(bundle)
        if on_disk["task"] == "token_classification":
            tags = model.predict([["alice", "visited", "paris"], "bob met the acme"])
            assert [len(t) for t in tags] == [3, 4]
            assert set(tags[0]) | set(tags[1]) <= set(on_disk["labels"])
        else:
            proba = model.predict_proba(["a really good movie", "the plot was dull"])
            assert proba.shape == (2, len(on_disk["labels"]))
            if not on_disk["multi_label"]:
                assert np.allclose(proba.sum(1), 1.0, atol=1e-5)


def _check_recsys_bundle(bundle: Path, on_disk: dict, config: dict, fmt: str) -> None:
    item_ids = (bundle / "item_ids.txt").read_text().splitlines()
    assert len(item_ids) == on_disk["n_items"] == config["data_info"]["n_items"]
    assert (bundle / "user_ids.txt").is_file() and (bundle / "interactions.npz").is_file()
    if on_disk["kind"] == "dot":  # the towers export too, with parity, and the item vectors for an ANN index
        assert set(on_disk["parity"]["parts"]) == {"user_tower", "item_tower"}
        assert all((bundle / p["model_file"]).is_file() for p in on_disk["parts"].values())
        assert np.load(bundle / "item_embeddings.npy").shape[0] == len(item_ids)
    if fmt == "onnx":
        # The bundled loader recommends on its own: known items excluded, k distinct catalogue items.
        rec = _load_loader(bundle).BundleRecommender(bundle)
        user = rec.user_ids[0]
        (top,) = rec.recommend([user], k=5)
        assert len(top) == 5 and len({item for item, _, _ in top}) == 5
        assert {item for item, _, _ in top} <= set(item_ids)
        known = {rec.item_ids[i - 1] for i in rec.known_items(1)}
        assert not known & {item for item, _, _ in top}
        assert {source for _, _, source in top} == {"model"}


def _check_audio_bundle(bundle: Path, on_disk: dict, config: dict, fmt: str) -> None:
    data_info = config["data_info"]
    classifier = on_disk["task"] == "audio_classification"
    assert on_disk[("labels" if classifier else "tokens")] == data_info["labels" if classifier else "tokens"]
    assert on_disk["preprocessing"]["sample_rate"] == on_disk["frontend"]["sample_rate"] == data_info["sample_rate"]
    assert [i["dtype"] for i in on_disk["inputs"].values()] == ["float32", "int64"]
    if fmt == "onnx":
        # The bundled loader reads an audio file at another rate, resamples it and labels / transcribes it on its own.
        import soundfile as sf

        rate = 11025
        t = np.arange(int(0.6 * rate)) / rate
        sf.write(bundle.parent / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * t), rate)
        model = _load_loader(bundle).load_bundle(bundle)
        if classifier:
            proba = model.predict_proba([str(bundle.parent / "tone.wav")])
            assert proba.shape == (1, len(on_disk["labels"])) and abs(float(proba.sum()) - 1.0) < 1e-4
        else:
            (text,) = model.transcribe([str(bundle.parent / "tone.wav")])
            assert set(text) <= set(on_disk["tokens"][1:])


CHECK_BUNDLE = {
    "image_classification": _check_image_bundle,
    "fraud_detection": _check_fraud_bundle,
    "text_classification": _check_text_bundle,
    "token_classification": _check_text_bundle,
    "recommendation": _check_recsys_bundle,
    "audio_classification": _check_audio_bundle,
    "speech_recognition": _check_audio_bundle,
}


def test_fast_dev_run_smoke(make_cfg: Any, tmp_path: Path) -> None:
    summary = run(make_cfg(*TINY, "trainer.fast_dev_run=true"))
    out = tmp_path / "run"
    assert summary["best_checkpoint"] is None
    assert not (out / "checkpoints" / "best.ckpt").exists()
    assert "test/acc" in summary["test"]
    assert (out / "summary.json").is_file()


def test_fast_dev_run_writes_no_checkpoint(make_cfg: Any, tmp_path: Path) -> None:
    """conf/trainer/default.yaml documents fast_dev_run as 'no checkpoints or logs'."""
    summary = run(make_cfg(*TINY, "trainer.fast_dev_run=true"))
    out = tmp_path / "run"
    assert sorted(p.name for p in out.rglob("*.ckpt")) == []
    assert summary["last_checkpoint"] is None
    assert not (out / "metrics.csv").exists()


def _batches(loader: Any, seed: int) -> list[torch.Tensor]:
    torch.manual_seed(seed)  # a different global seed per pass: any random transform would show up
    return [x for x, _ in loader]


def test_train_augmentation_not_applied_at_eval(make_cfg: Any) -> None:
    cfg = make_cfg("+recipe=vision/imagefolder_finetune", *TINY)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")

    for name, loader_fn in (
        ("val", dm.val_dataloader),
        ("test", dm.test_dataloader),
        ("eval(train)", lambda: dm.eval_dataloader("train")),
    ):
        a, b = _batches(loader_fn(), 0), _batches(loader_fn(), 1)
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            assert torch.equal(x, y), f"{name} images differ between two passes: augmentation at eval"

    # Sanity check that the comparison can fail: the train transform is random.
    train = dm.datasets["train"]
    torch.manual_seed(0)
    first = [train[i][0] for i in range(len(train))]
    torch.manual_seed(1)
    second = [train[i][0] for i in range(len(train))]
    assert any(not torch.equal(x, y) for x, y in zip(first, second))


def _leading_comments(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_file_conventions(name: str) -> None:
    path = ROOT / "recipes" / f"{name}.yaml"
    text = path.read_text()
    assert text.splitlines()[0] == "# @package _global_", f"{path} must start with '# @package _global_'"
    assert yaml.safe_load(text)["recipe_name"] == name
    header = "\n".join(_leading_comments(text))
    # Every recipe (the default one included) shows how to run it in its header comment.
    usage = f"python train.py +recipe={name}"
    assert usage in header, f"{path}: header comment lacks '{usage}'"
    # `python train.py list` shows the first header line: it must say what the recipe does.
    assert recipe_header(path)


def test_recipe_group_is_the_recipes_folder() -> None:
    """``+recipe=<name>`` resolves through conf/recipe, which must be the recipes/ folder itself."""
    assert "vision/digits_cnn" in RECIPES
    assert (ROOT / "conf" / "recipe").resolve() == (ROOT / "recipes").resolve()
