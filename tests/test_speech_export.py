"""Speech bundles reproduce training: raw audio files through a checkpoint, an ONNX bundle (torch-free runtime) and a
TorchScript bundle give the predictions the trained module gives the DataModule's batches; evaluate and predict
work end to end; bad input to predict is reported, not guessed at."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from recipezoo.core.checkpoint import load_module
from recipezoo.core.errors import DataError, OutputExistsError
from recipezoo.evaluate import evaluate
from recipezoo.export import export
from recipezoo.predict import predict
from recipezoo.speech.predict import _Model
from recipezoo.train import run
from tests.conftest import compose_config, tiny

SHORT = ["trainer.max_epochs=2", "trainer.limit_val_batches=1"]


def train(tmp_path_factory: pytest.TempPathFactory, recipe: str, *extra: str) -> Path:
    out = tmp_path_factory.mktemp(recipe.replace("/", "_")) / "run"
    run(compose_config([f"+recipe={recipe}", *tiny(recipe), *SHORT, *extra], out))
    return out / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory, "speech/audio_classification", "data.synthetic_sample_rate=8000")


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(tmp_path_factory, "speech/asr_ctc")


@pytest.fixture(scope="module")
def bundles(classifier: Path, recognizer: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    out: dict[str, dict[str, Path]] = {}
    for name, ckpt in (("classifier", classifier), ("recognizer", recognizer)):
        root = tmp_path_factory.mktemp(f"bundles_{name}")
        out[name] = {"ckpt": ckpt}
        for fmt in ("onnx", "torchscript"):
            meta = export(ckpt, fmt, root / fmt, measure_latency=False)
            assert meta["parity"]["passed"] and meta["parity"]["max_abs_diff"] < 1e-4
            out[name][fmt] = root / fmt
    return out


def test_split_files_through_every_format(classifier: Path, bundles, tmp_path: Path) -> None:
    """The test split written as files at its native rate (8 kHz, resampled to the model's 16 kHz on reading):
    the checkpoint, ONNX and TorchScript probabilities equal the module's on the DataModule's own batches."""
    module, cfg = load_module(classifier)
    dm = instantiate(cfg.data)
    dm.restore(OmegaConf.to_container(cfg.data_info))
    dm.setup("test")
    with torch.no_grad():
        expected = torch.cat([module(b["audio"], b["lengths"]).softmax(-1) for b in dm.eval_dataloader("test")])
    folder = tmp_path / "test_files"
    folder.mkdir()
    names = []
    for k, item in enumerate(dm.split_items["test"]):
        names.append(folder / f"{k:03d}.wav")
        sf.write(names[-1], item["audio"], item["rate"], subtype="FLOAT")  # lossless: the very samples
    labels = cfg.data_info.labels
    for fmt in ("ckpt", "onnx", "torchscript"):
        rows = predict(bundles["classifier"][fmt], folder, tmp_path / f"{fmt}.csv")
        assert [Path(r["path"]) for r in rows] == names
        got = np.array([[r[f"prob_{name}"] for name in labels] for r in rows])
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, err_msg=fmt)
        assert [r["prediction"] for r in rows] == [labels[int(k)] for k in expected.argmax(-1)]


def write_utterances(dm, folder: Path) -> list[Path]:
    folder.mkdir()
    files = []
    for k, item in enumerate(dm.split_items["test"]):
        files.append(folder / f"{k:03d}.flac")
        sf.write(files[-1], np.stack([item["audio"], item["audio"]], 1), 22050 if k % 2 else 16000)  # stereo
    return files


def test_transcripts_agree_across_checkpoint_onnx_and_torchscript(recognizer: Path, bundles, tmp_path: Path) -> None:
    module, cfg = load_module(recognizer)
    dm = instantiate(cfg.data)
    dm.restore(OmegaConf.to_container(cfg.data_info))
    dm.setup("test")
    files = write_utterances(dm, tmp_path / "utts")
    outputs = {}
    for fmt in ("ckpt", "onnx", "torchscript"):
        model = _Model(bundles["recognizer"][fmt])
        waves = [model.load(f)[0] for f in files]
        outputs[fmt] = model(waves)
        rows = predict(bundles["recognizer"][fmt], tmp_path / "utts", tmp_path / f"{fmt}.csv")
        assert [r["path"] for r in rows] == [str(f) for f in files]
        assert list(rows[0]) == ["path", "transcript", "seconds"]
        outputs[fmt].append([r["transcript"] for r in rows])
    for fmt in ("onnx", "torchscript"):
        np.testing.assert_allclose(outputs[fmt][0], outputs["ckpt"][0], atol=1e-3, err_msg=fmt)  # log-probs
        assert outputs[fmt][1].tolist() == outputs["ckpt"][1].tolist()  # frames
        assert outputs[fmt][2] == outputs["ckpt"][2]  # transcripts


def test_onnx_bundle_transcribes_without_torch(bundles, tmp_path: Path) -> None:
    bundle = bundles["recognizer"]["onnx"]
    meta = json.loads((bundle / "metadata.json").read_text())
    assert meta["tokens"][0] == "<blank>" and meta["blank"] == 0 and meta["frontend"]["kind"] == "logmel"
    t = np.arange(8000) / 16000
    sf.write(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 500 * t), 16000)
    # torch and recipezoo made unimportable: the bundle's loader.py stands alone on numpy, soundfile, onnxruntime.
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['recipezoo'] = None; "
        f"sys.path.insert(0, {str(bundle)!r}); import loader; "
        f"print(loader.load_bundle({str(bundle)!r}).transcribe([{str(tmp_path / 'a.wav')!r}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith("[")
    cli = subprocess.run(
        [sys.executable, str(bundle / "loader.py"), str(bundle), str(tmp_path / "a.wav")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0 and cli.stdout.startswith(str(tmp_path / "a.wav") + "\t"), cli.stderr[-2000:]


def test_evaluate_a_recognizer_on_its_validation_split(recognizer: Path, tmp_path: Path) -> None:
    metrics = evaluate(recognizer, "val", output=tmp_path / "m.json")
    assert set(metrics) == {"val/loss", "val/wer", "val/cer"}
    assert metrics["val/wer"] >= 0 and json.loads((tmp_path / "m.json").read_text())["metrics"] == metrics


def test_run_folder_has_transcripts_and_confusion_matrix(classifier: Path, recognizer: Path) -> None:
    rows = list(csv.reader(open(recognizer.parent.parent / "test_transcripts.csv")))
    assert rows[0] == ["path", "reference", "hypothesis"] and len(rows) > 1
    matrix = list(csv.reader(open(classifier.parent.parent / "test_confusion_matrix.csv")))
    assert matrix[0][1:] == ["class_0", "class_1", "class_2"]


def test_predict_reports_bad_files_and_never_overwrites(bundles, tmp_path: Path, caplog) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "ok.wav", 0.1 * np.random.default_rng(0).standard_normal(8000), 16000)
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    sf.write(folder / "empty.wav", np.zeros(0), 16000)
    sf.write(folder / "click.wav", np.ones(10), 16000)
    with caplog.at_level("WARNING"):
        rows = predict(bundles["classifier"]["onnx"], folder, tmp_path / "p.csv")
    assert [Path(r["path"]).name for r in rows] == ["ok.wav"]
    assert "Skipped 2 unreadable or empty file(s)" in caplog.text and "broken.wav" in caplog.text
    assert "shorter than 480 samples" in caplog.text and "click.wav" in caplog.text
    before = (tmp_path / "p.csv").read_bytes()
    with pytest.raises(OutputExistsError):
        predict(bundles["classifier"]["onnx"], folder, tmp_path / "p.csv")
    assert (tmp_path / "p.csv").read_bytes() == before
    (folder / "ok.wav").unlink()
    with pytest.raises(DataError, match="none of the 3 input file"):
        predict(bundles["classifier"]["ckpt"], folder, tmp_path / "q.csv")
    with pytest.raises(DataError, match="input not found"):
        predict(bundles["classifier"]["ckpt"], tmp_path / "nothing", tmp_path / "r.csv")
