"""The torch-free runtime: numpy/Pillow preprocessing parity with torchvision, ONNX bundles that predict
without torch, predictions that agree across checkpoint / ONNX / TorchScript, and export parity failures."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recipezoo.runtime.vision import preprocess
from recipezoo.vision.transforms import Preprocessing, eval_transform, resolve_preprocessing

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------------------
# (a) preprocessing parity: numpy/Pillow vs torchvision


def random_image(w: int, h: int, source_mode: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    # Smooth structure plus noise, so resampling differences (not just noise averaging) would show.
    yy, xx = np.mgrid[0:h, 0:w]
    base = (127 + 100 * np.sin(xx / max(1, w) * 6.0) * np.cos(yy / max(1, h) * 4.0))[..., None]
    arr = np.clip(base + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    return img.convert(source_mode)


PARITY_CASES = [
    # (width, height, source image mode, pp mode, resize, crop, interpolation)
    (32, 32, "RGB", "RGB", 32, 32, "bilinear"),  # already the right size: no resize, no crop
    (64, 48, "RGB", "RGB", 36, 32, "bilinear"),  # landscape, downscale, resize != crop
    (48, 64, "RGB", "RGB", 36, 32, "bilinear"),  # portrait
    (100, 37, "RGB", "RGB", 20, 16, "bicubic"),  # extreme aspect ratio
    (7, 5, "RGB", "RGB", 24, 24, "bilinear"),  # tiny image, upscaled
    (20, 20, "RGB", "RGB", 10, 16, "bilinear"),  # resized below the crop: zero padding
    (13, 9, "RGB", "RGB", 6, 8, "nearest"),  # odd sizes, padding, nearest
    (40, 30, "L", "L", 17, 15, "bilinear"),  # grayscale, odd crop offsets
    (30, 41, "RGB", "L", 8, 8, "bilinear"),  # colour image into a grayscale model
    (8, 8, "L", "L", 8, 8, "bilinear"),  # digits-sized
    (33, 21, "RGBA", "RGB", 16, 16, "bicubic"),  # alpha dropped
    (25, 25, "P", "RGB", 16, 12, "bilinear"),  # palette image
]


@pytest.mark.parametrize(("w", "h", "source_mode", "mode", "resize", "crop", "interp"), PARITY_CASES)
def test_numpy_preprocess_matches_torchvision(tmp_path: Path, w, h, source_mode, mode, resize, crop, interp) -> None:
    channels = 1 if mode == "L" else 3
    pp = Preprocessing(mode, resize, crop, [0.485, 0.456, 0.406][:channels], [0.229, 0.224, 0.225][:channels], interp)
    img = random_image(w, h, source_mode, seed=w * 100 + h)
    expected = eval_transform(pp)(img.convert(mode)).numpy()
    assert expected.shape == (channels, crop, crop)

    from_pil = preprocess(img, pp.to_dict())
    assert from_pil.dtype == np.float32
    assert from_pil.shape == expected.shape
    np.testing.assert_allclose(from_pil, expected, atol=1e-5, rtol=0)

    path = tmp_path / "image.png"
    img.save(path)
    np.testing.assert_allclose(preprocess(path, pp.to_dict()), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(preprocess(str(path), pp.to_dict()), expected, atol=1e-5, rtol=0)


def test_padding_is_zero_before_normalisation() -> None:
    """Resized smaller than the crop: the border is black (0) before normalising, i.e. -mean/std after."""
    pp = Preprocessing("L", 4, 8, [0.5], [0.25], "bilinear")
    x = preprocess(Image.new("L", (4, 4), color=255), pp.to_dict())
    assert x.shape == (1, 8, 8)
    assert x[0, 0, 0] == pytest.approx((0 - 0.5) / 0.25)
    assert x[0, 4, 4] == pytest.approx((1 - 0.5) / 0.25)


def test_resolve_preprocessing_merges_over_backbone_defaults() -> None:
    imagenet = {"crop_size": 224, "resize_size": 256, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    pp = resolve_preprocessing(imagenet, image_size=112)
    assert (pp.crop_size, pp.resize_size) == (112, 128)  # keeps the 256/224 ratio
    assert pp.mean == pytest.approx([0.485, 0.456, 0.406])
    gray = resolve_preprocessing(imagenet, mode="L")
    assert gray.mean == pytest.approx([sum(imagenet["mean"]) / 3]) and len(gray.std) == 1
    scratch = resolve_preprocessing({"crop_size": 16, "resize_size": 16, "mean": None, "std": None})
    assert (scratch.mean, scratch.std) == ([0.5] * 3, [0.5] * 3)
    explicit = resolve_preprocessing(imagenet, image_size=32, resize_size=40, mean=[0.1, 0.2, 0.3])
    assert (explicit.crop_size, explicit.resize_size, explicit.mean) == (32, 40, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="RGB or L"):
        resolve_preprocessing(imagenet, mode="CMYK")


# ------------------------------------------------------------------------------------------------------------
# A tiny trained digits model, exported to ONNX and TorchScript once for the tests below.


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Train the default recipe (vision/digits_cnn) for 2 batches on synthetic data, export it both ways."""
    from recipezoo.export import export
    from recipezoo.train import run
    from tests.conftest import compose_config

    tmp = tmp_path_factory.mktemp("runtime")
    cfg = compose_config(["data.synthetic=true", "trainer.max_epochs=1", "trainer.limit_train_batches=2"], tmp / "run")
    summary = run(cfg)
    ckpt = Path(summary["best_checkpoint"])
    assert ckpt.is_file() and ckpt.parent == tmp / "run" / "checkpoints"
    onnx_meta = export(ckpt, "onnx", tmp / "onnx", measure_latency=False)
    ts_meta = export(ckpt, "torchscript", tmp / "torchscript", measure_latency=False)

    images = tmp / "images"
    images.mkdir()
    shapes = [((8, 8), "L"), ((16, 16), "L"), ((20, 12), "RGB"), ((9, 14), "RGB"), ((31, 31), "RGBA")]
    for i, (size, mode) in enumerate(shapes):
        random_image(*size, "RGB", seed=i).convert(mode).save(images / f"img_{i}.png")
    return {
        "ckpt": ckpt,
        "onnx": tmp / "onnx",
        "torchscript": tmp / "torchscript",
        "images": images,
        "onnx_meta": onnx_meta,
        "ts_meta": ts_meta,
        "tmp": tmp,
    }


def image_paths(bundle: dict[str, Path]) -> list[str]:
    return sorted(str(p) for p in bundle["images"].glob("*.png"))


@pytest.mark.export
def test_bundles_hold_what_a_deployment_needs(bundle) -> None:
    onnx, ts = bundle["onnx"], bundle["torchscript"]
    assert sorted(p.name for p in onnx.iterdir()) == ["loader.py", "metadata.json", "model.onnx"]
    assert sorted(p.name for p in ts.iterdir()) == ["metadata.json", "model.pt"]
    meta = json.loads((onnx / "metadata.json").read_text())
    assert meta == json.loads(json.dumps(bundle["onnx_meta"]))
    assert meta["task"] == "image_classification" and meta["format"] == "onnx"
    assert meta["labels"] == [f"class_{i}" for i in range(10)]
    assert meta["preprocessing"]["mode"] == "L" and meta["preprocessing"]["crop_size"] == 8
    assert meta["inputs"]["input"]["shape"] == ["batch", 1, 8, 8]
    for m in (bundle["onnx_meta"], bundle["ts_meta"]):
        assert m["parity"]["passed"] and m["parity"]["max_abs_diff"] <= m["parity"]["tolerance"] == 1e-4
        assert m["parity"]["batch_sizes"] == [8, 5]


# ------------------------------------------------------------------------------------------------------------
# (b) the ONNX bundle predicts with no torch (and no recipezoo) importable


TORCH_FREE = textwrap.dedent("""
    import json, runpy, sys
    sys.modules["torch"] = None        # any `import torch` now raises ImportError
    sys.modules["recipezoo"] = None    # the bundle must be self-contained
    bundle, paths = sys.argv[1], sys.argv[2:]
    sys.path.insert(0, bundle)
    from loader import OnnxImageClassifier
    clf = OnnxImageClassifier(bundle)
    proba = clf.predict_proba(paths, batch_size=2)
    preds = clf.predict(paths)
    print(json.dumps({"proba": proba.tolist(), "preds": preds, "labels": clf.labels}))
    # and the bundle's command line
    sys.argv = ["loader.py", bundle, *paths]
    runpy.run_path(bundle + "/loader.py", run_name="__main__")
""")


@pytest.mark.export
def test_onnx_bundle_predicts_without_torch(bundle) -> None:
    from recipezoo.predict import predict_paths

    paths = image_paths(bundle)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", TORCH_FREE, str(bundle["onnx"]), *paths],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=bundle["tmp"],
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[0])
    proba = np.asarray(result["proba"])
    assert proba.shape == (len(paths), 10)
    np.testing.assert_allclose(proba.sum(-1), 1.0, atol=1e-5)

    eager = predict_paths(bundle["ckpt"], paths)
    np.testing.assert_allclose(proba, eager, atol=1e-4, rtol=0)
    labels = [f"class_{i}" for i in range(10)]
    assert [label for label, _ in result["preds"]] == [labels[i] for i in eager.argmax(-1)]

    cli = [line.split("\t") for line in lines[1:]]
    assert [row[0] for row in cli] == paths
    assert [row[1] for row in cli] == [label for label, _ in result["preds"]]
    assert [float(row[2]) for row in cli] == pytest.approx([p for _, p in result["preds"]], abs=1e-4)


@pytest.mark.export
def test_onnx_classifier_in_process_accepts_pil_images_and_empty_input(bundle) -> None:
    from recipezoo.runtime.vision import OnnxImageClassifier

    clf = OnnxImageClassifier(bundle["onnx"])
    paths = image_paths(bundle)
    from_paths = clf.predict_proba(paths)
    from_pil = clf.predict_proba([Image.open(p) for p in paths], batch_size=3)
    np.testing.assert_allclose(from_pil, from_paths, atol=1e-6)
    empty = clf.predict_proba([])
    assert empty.shape == (0, 10)
    assert clf.predict([]) == []


# ------------------------------------------------------------------------------------------------------------
# (c) predict: checkpoint, ONNX bundle and TorchScript bundle agree


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.export
def test_predict_agrees_across_checkpoint_onnx_and_torchscript(bundle, tmp_path: Path) -> None:
    from recipezoo.predict import predict

    sources = {
        "ckpt": bundle["ckpt"],
        "onnx": bundle["onnx"],
        "onnx_file": bundle["onnx"] / "model.onnx",
        "torchscript": bundle["torchscript"],
        "torchscript_file": bundle["torchscript"] / "model.pt",
    }
    tables = {}
    for name, source in sources.items():
        out = tmp_path / f"{name}.csv"
        rows = predict(source, bundle["images"], out)
        assert out.is_file()
        tables[name] = read_csv(out)
        assert len(rows) == len(tables[name]) == 5

    ref = tables["ckpt"]
    header = list(ref[0])
    assert header[:3] == ["path", "prediction", "confidence"]
    assert header[3:] == [f"prob_class_{i}" for i in range(10)]
    assert [r["path"] for r in ref] == image_paths(bundle)
    for name, table in tables.items():
        assert list(table[0]) == header, name
        assert [r["path"] for r in table] == [r["path"] for r in ref], name
        assert [r["prediction"] for r in table] == [r["prediction"] for r in ref], name
        probs = np.array([[float(r[c]) for c in header[3:]] for r in table])
        ref_probs = np.array([[float(r[c]) for c in header[3:]] for r in ref])
        np.testing.assert_allclose(probs, ref_probs, atol=1e-4, rtol=0, err_msg=name)
        for r in table:
            assert float(r["confidence"]) == pytest.approx(float(r[f"prob_{r['prediction']}"]))


# ------------------------------------------------------------------------------------------------------------
# (d) export parity failures


def _perturb_runner(monkeypatch: pytest.MonkeyPatch, delta: float) -> None:
    import recipezoo.core.export as core_export

    original = core_export.Runner.__call__

    def perturbed(self, inputs):
        return [o + np.float32(delta) for o in original(self, inputs)]

    monkeypatch.setattr(core_export.Runner, "__call__", perturbed)


@pytest.mark.export
def test_export_parity_failure_raises_with_the_measured_difference(bundle, tmp_path: Path, monkeypatch) -> None:
    from recipezoo.core.errors import ExportParityError
    from recipezoo.export import export

    _perturb_runner(monkeypatch, 0.25)
    out = tmp_path / "bad_onnx"
    with pytest.raises(ExportParityError) as exc:
        export(bundle["ckpt"], "onnx", out, measure_latency=False)
    msg = str(exc.value)
    assert "onnx export differs from eager PyTorch" in msg
    assert "max abs diff 0.25 > tolerance 0.0001" in msg
    assert str(out) in msg
    # The files stay for inspection, the metadata records the failure.
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["parity"]["passed"] is False
    assert meta["parity"]["max_abs_diff"] == pytest.approx(0.25, abs=1e-6)


@pytest.mark.export
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_tolerance_zero(bundle, tmp_path: Path, fmt: str) -> None:
    """tolerance=0 passes only when the export is bit-identical to eager. The parity inputs are seeded, so the
    difference is the one measured when the bundle was first exported (ONNX differs by ~1e-8 on CPU here)."""
    from recipezoo.core.errors import ExportParityError
    from recipezoo.export import export

    diff = bundle["onnx_meta" if fmt == "onnx" else "ts_meta"]["parity"]["max_abs_diff"]
    if diff > 0:
        with pytest.raises(ExportParityError, match=f"max abs diff {diff:.3g} > tolerance 0"):
            export(bundle["ckpt"], fmt, tmp_path / fmt, tolerance=0.0, measure_latency=False)
    else:
        meta = export(bundle["ckpt"], fmt, tmp_path / fmt, tolerance=0.0, measure_latency=False)
        assert meta["parity"]["passed"] and meta["parity"]["max_abs_diff"] == 0.0


PERTURBED_CLI = textwrap.dedent("""
    import runpy, sys
    import numpy as np
    import recipezoo.core.export as core_export
    original = core_export.Runner.__call__
    core_export.Runner.__call__ = lambda self, inputs: [o + np.float32(0.25) for o in original(self, inputs)]
    sys.argv = ["scripts/export.py", *sys.argv[1:]]
    runpy.run_path("scripts/export.py", run_name="__main__")
""")


@pytest.mark.export
def test_export_cli_exits_non_zero_on_parity_failure(bundle, tmp_path: Path) -> None:
    out = tmp_path / "cli_bundle"
    proc = subprocess.run(
        [sys.executable, "-c", PERTURBED_CLI, f"ckpt={bundle['ckpt']}", "format=torchscript", f"output={out}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error: torchscript export differs from eager PyTorch: max abs diff 0.25" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "max_abs_diff\t" not in proc.stdout  # no success line
    assert json.loads((out / "metadata.json").read_text())["parity"]["passed"] is False
