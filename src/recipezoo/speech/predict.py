"""Speech prediction: label or transcribe audio files with a checkpoint or an exported bundle, into a CSV.

``ckpt`` may be a ``.ckpt`` (eager PyTorch, audio decoded and resampled exactly as in training), a TorchScript
bundle, or an ONNX bundle (run through :mod:`recipezoo.runtime.audio`, the code a torch-free deployment uses).
Classifiers write ``path, prediction, confidence, prob_<label>...``; recognizers write ``path, transcript,
seconds``. Unreadable, empty and too-short files are skipped and named in one warning; stereo files and other
sample rates are converted, said once.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recipezoo.core.bundle import Loaded, load
from recipezoo.core.errors import DataError, new_output_file
from recipezoo.data.folders import AUDIO_READ_EXTENSIONS as READ_EXTENSIONS
from recipezoo.data.folders import list_files
from recipezoo.runtime import audio as rt

log = logging.getLogger("recipezoo")

TASKS = ("audio_classification", "speech_recognition")


def list_inputs(input: str | Path) -> list[Path]:
    """An audio file, a folder of audio files (searched recursively) or a ``.txt`` file listing one path per line."""
    p = Path(os.path.expanduser(str(input)))
    if not p.exists():
        raise DataError(f"input not found: {p}. Pass input=<audio file, folder of audio files, or .txt list of paths>.")
    if p.is_dir():
        files = list_files(p, READ_EXTENSIONS, hidden=True)
    elif p.suffix.lower() == ".txt":
        files = [Path(line.strip()).expanduser() for line in p.read_text().splitlines() if line.strip()]
    else:
        files = [p]
    if not files:
        raise DataError(f"no audio files in {p} (looked for {', '.join(READ_EXTENSIONS[:6])} ...).")
    return files


class _Model:
    """``(waveform batch, lengths) -> outputs`` from a checkpoint, a TorchScript or an ONNX bundle, with the
    task facts (labels or tokens, preprocessing) and the waveform loader of that kind."""

    def __init__(self, ckpt: str | Path | Loaded) -> None:
        loaded = load(ckpt, TASKS)
        self.task, self.kind = loaded.task.name, loaded.format
        if loaded.is_checkpoint:
            from recipezoo.speech.task import WaveformModel

            module = loaded.module
            self.meta = {"preprocessing": dict(loaded.config.data_info.preprocessing)}
            self.meta["labels" if self.task == "audio_classification" else "tokens"] = (
                list(module.labels) if self.task == "audio_classification" else list(module.tokens)
            )
            self.meta["blank"] = 0
            self.torch_model = WaveformModel(module.frontend, module.net, ctc=self.task == "speech_recognition").eval()
        else:
            self.meta = loaded.metadata
            if self.kind == "onnx":
                self.onnx = rt.load_bundle(loaded.bundle)
            else:
                self.torch_model = loaded.model
        self.preprocessing = self.meta["preprocessing"]
        self.sample_rate = int(self.preprocessing["sample_rate"])

    def load(self, path: Path) -> tuple[np.ndarray, int, int]:
        """The model's input signal for a file, with the file's sample rate and channels (for the log)."""
        wave, rate, channels = rt.read_audio(path)
        if self.kind == "onnx":  # the torch-free path: numpy resampling, as in the bundle's loader.py
            wave = rt.resample(wave, rate, self.sample_rate)
        else:  # torch is here: the very resampler training used
            import torch

            from recipezoo.speech.data import resample_tensor

            wave = resample_tensor(torch.from_numpy(wave), rate, self.sample_rate).numpy()
        return rt.center_crop(wave, self.preprocessing.get("clip_samples")), rate, channels

    def __call__(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.kind == "onnx":
            return self.onnx.run(waves)
        import torch

        batch, lengths = rt.pad_batch(waves)
        with torch.no_grad():
            out = self.torch_model(torch.from_numpy(batch), torch.from_numpy(lengths))
        return [
            o.float().numpy() if o.is_floating_point() else o.numpy()
            for o in (out if isinstance(out, tuple) else (out,))
        ]


def predict_audio(
    ckpt: str | Path | Loaded,
    input: str | Path,
    output: str | Path = "predictions.csv",
    batch_size: int = 16,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """Label or transcribe every audio file under ``input`` and write one CSV row each to ``output``.

    Returns the rows written.
    """
    out = new_output_file(output, overwrite)
    model = _Model(ckpt)
    files = list_inputs(input)
    min_samples = int(model.preprocessing.get("min_samples") or 1)
    waves: list[np.ndarray] = []
    kept: list[Path] = []
    bad: list[str] = []
    short: list[str] = []
    rates: Counter = Counter()
    stereo = 0
    for f in files:
        try:
            wave, rate, channels = model.load(f)
        except rt.AudioReadError:
            bad.append(str(f))
            continue
        if len(wave) < min_samples:
            short.append(str(f))
            continue
        rates[rate] += rate != model.sample_rate
        stereo += channels > 1
        waves.append(wave)
        kept.append(f)
    if any(rates.values()) or stereo:
        converted = ", ".join(f"{n} from {r} Hz" for r, n in sorted(rates.items()) if n)
        log.info(
            "Converted on load: %s",
            "; ".join(
                x
                for x in (
                    f"resampled to {model.sample_rate} Hz ({converted})" if converted else "",
                    f"{stereo} multi-channel file(s) mixed to mono" if stereo else "",
                )
                if x
            ),
        )
    for what, found in (("unreadable or empty", bad), (f"shorter than {min_samples} samples", short)):
        if found:
            log.warning(
                "Skipped %d %s file(s): %s", len(found), what, ", ".join(found[:5]) + (" ..." if len(found) > 5 else "")
            )
    if not waves:
        raise DataError(f"none of the {len(files)} input file(s) could be used as audio.")
    limit = model.preprocessing.get("max_seconds")
    long = [str(f) for f, w in zip(kept, waves) if limit and len(w) > limit * model.sample_rate]
    if long and model.task == "speech_recognition":
        log.warning(
            "%d file(s) are longer than the %g s the model was trained on; they are transcribed whole (memory grows "
            "with length; split long recordings for best results): %s",
            len(long),
            limit,
            ", ".join(long[:3]) + (" ..." if len(long) > 3 else ""),
        )

    rows: list[dict[str, Any]] = []
    order = sorted(range(len(waves)), key=lambda i: len(waves[i]))  # similar lengths share a batch: less padding
    results: dict[int, dict[str, Any]] = {}
    for start in range(0, len(order), max(1, int(batch_size))):
        idx = order[start : start + max(1, int(batch_size))]
        outputs = model([waves[i] for i in idx])
        if model.task == "speech_recognition":
            texts = rt.ctc_greedy_decode(outputs[0], outputs[1], model.meta["tokens"], model.meta.get("blank", 0))
            for i, text in zip(idx, texts):
                results[i] = {"transcript": text, "seconds": round(len(waves[i]) / model.sample_rate, 3)}
        else:
            labels = model.meta["labels"]
            for i, p in zip(idx, rt.softmax(outputs[0])):
                k = int(p.argmax())
                results[i] = {
                    "prediction": labels[k],
                    "confidence": float(p[k]),
                    **{f"prob_{name}": float(v) for name, v in zip(labels, p)},
                }
    rows = [{"path": str(f), **results[i]} for i, f in enumerate(kept)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    log.info(
        "Wrote %d %s to %s", len(rows), "transcripts" if model.task == "speech_recognition" else "predictions", out
    )
    return rows
