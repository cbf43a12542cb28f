"""Label or transcribe audio files with an exported speech bundle: onnxruntime, numpy and soundfile alone (no torch).

This file is copied into every ONNX speech bundle as ``loader.py``, so a bundle works on a machine without
recipezoo::

    from loader import load_bundle                     # or: from recipezoo.runtime.audio import ...
    model = load_bundle("path/to/bundle")              # an OnnxAudioClassifier or an OnnxSpeechRecognizer
    model.predict(["yes.wav", "no.flac"])              # classifier: [("yes", 0.97), ("no", 0.91)]
    model.transcribe(["utt1.flac"])                    # recognizer: ["seven three nine"]

or from the shell: ``python loader.py path/to/bundle audio.wav [more files ...]``.

The exported graph takes ``waveform`` ``(B, T)`` float32 at the bundle's sample rate (zero padded) and ``lengths``
``(B,)`` int64 (samples); the spectrogram front-end is inside the graph. What happens before, the same code as
training uses: read with soundfile (WAV, FLAC, OGG, ... no FFmpeg), mix channels to mono, resample to the bundle's
rate with :func:`resample` (a numpy port of ``torchaudio.functional.resample``, so training and deployment see the
same samples), and for classifiers a centre crop to the training clip length.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Containers libsndfile (through soundfile) decodes; no FFmpeg needed. MP3 needs libsndfile >= 1.1.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".w64", ".caf")
BLANK = "<blank>"


TASKS = ("audio_classification", "speech_recognition")  # the tasks this loader serves (metadata.json's "task")


class BundleError(ValueError):
    """A path this loader cannot serve: missing, not an export folder, another task's bundle, a damaged bundle."""


def read_metadata(
    bundle: str | Path, tasks: Sequence[str] = TASKS, required: Sequence[str] = (), files: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``metadata.json`` of an ONNX bundle folder, checked before anything is opened.

    Args:
        bundle: the folder ``scripts/export.py`` wrote.
        tasks: the tasks this loader serves (a bundle whose metadata names no task is accepted).
        required: metadata keys the caller reads.
        files: files the caller reads besides the model file.

    Raises:
        BundleError: one line saying what ``bundle`` is instead (missing, a file, a folder without metadata.json,
            another task's or format's bundle, a bundle missing a file) and what to pass.
    """
    p = Path(bundle).expanduser()
    export = "pass the folder scripts/export.py wrote (it holds metadata.json and model.onnx)"
    if not p.exists():
        raise BundleError(f"{p} not found; {export}.")
    if p.is_file():
        if (p.parent / "metadata.json").is_file():
            raise BundleError(f"{p} is a file; pass the bundle folder that holds it: {p.parent}")
        if p.suffix == ".ckpt":
            raise BundleError(
                f"{p} is a checkpoint, not an export bundle; export it first (scripts/export.py ckpt={p} "
                "format=onnx) or predict from it with scripts/predict.py."
            )
        raise BundleError(f"{p} is a file, not a bundle folder; {export}.")
    meta_file = p / "metadata.json"
    if not meta_file.is_file():
        inner = sorted(p.glob("*/metadata.json")) + sorted(p.glob("export/*/metadata.json"))
        hint = f"; the bundle inside it is {inner[0].parent}" if inner else f"; {export}"
        raise BundleError(f"{p} holds no metadata.json, so it is not an export bundle{hint}.")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BundleError(
            f"{meta_file} is damaged ({type(e).__name__}); copy the bundle again or re-export it."
        ) from None
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_file} holds no bundle metadata; {export}.")
    task, fmt = meta.get("task"), meta.get("format", "onnx")
    if task is not None and task not in tasks:
        own = p / "loader.py"
        where = f": python {own} ..." if own.is_file() else " (scripts/predict.py reads every task's bundle)"
        raise BundleError(
            f"{p} holds a model for '{task}', not {' or '.join(tasks)}; use that bundle's own loader{where}"
        )
    if fmt != "onnx":
        raise BundleError(
            f"{p} is a {fmt} bundle; this loader runs ONNX bundles (export with format=onnx, or predict from this "
            "one with scripts/predict.py)."
        )
    missing = [k for k in ("model_file", *required) if k not in meta]
    if missing:
        raise BundleError(
            f"{meta_file} lacks {', '.join(missing)}: a bundle of another recipezoo version? Re-export it."
        )
    absent = [f for f in (meta["model_file"], *files) if not (p / f).is_file()]
    if absent:
        raise BundleError(f"{p} lacks {', '.join(absent)}: copy the whole folder that scripts/export.py wrote.")
    return meta


def open_session(path: str | Path, providers: Sequence[str]) -> Any:
    """An onnxruntime session on ``path`` (warnings off); a file onnxruntime cannot read raises :class:`BundleError`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=list(providers))
    except Exception as e:  # onnxruntime's own error types (InvalidProtobuf, Fail...) live in a private module
        text = (str(e).strip().splitlines() or [""])[0]
        reason = text if 0 < len(text) <= 160 else type(e).__name__
        raise BundleError(
            f"cannot open {path} with onnxruntime ({reason}); copy the bundle again or re-export it."
        ) from None


class AudioReadError(ValueError):
    """A file that cannot be decoded as audio, or that holds no samples."""


def read_audio(path: str | Path) -> tuple[np.ndarray, int, int]:
    """Decode an audio file: ``(mono float32 samples in [-1, 1], sample rate, channels in the file)``.

    Multi-channel audio is mixed to mono by averaging the channels.

    Raises:
        AudioReadError: the file cannot be decoded, or it holds no samples.
    """
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (frames, channels)
    except Exception as e:  # libsndfile's errors, or a file that is not there
        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise AudioReadError(f"cannot read audio {path}: {reason}") from None
    if data.shape[0] == 0:
        raise AudioReadError(f"{path} holds no audio samples (empty file).")
    channels = data.shape[1]
    mono = data[:, 0] if channels == 1 else data.mean(axis=1)
    return np.ascontiguousarray(mono, dtype=np.float32), int(rate), int(channels)


def _sinc_resample_kernel(orig: int, new: int, lowpass_filter_width: int = 6, rolloff: float = 0.99):
    # The kernel of torchaudio.functional.resample(resampling_method="sinc_interp_hann"), computed the same way in
    # float64 and cast to float32: row j holds the filter that produces output phase j from `orig` input phases.
    base = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base)
    idx = np.arange(-width, width + orig, dtype=np.float64)[None, :] / orig  # (1, K)
    t = (np.arange(0, -new, -1, dtype=np.float64)[:, None] / new + idx) * base  # (new, K)
    t = np.clip(t, -lowpass_filter_width, lowpass_filter_width)
    window = np.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    safe = np.where(t == 0, 1.0, t)
    kernel = np.where(t == 0, 1.0, np.sin(safe) / safe) * window * (base / orig)
    return kernel.astype(np.float32), width


def resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Resample a 1-D float32 signal from ``orig_sr`` to ``new_sr`` Hz.

    The same band-limited (windowed-sinc, Hann) interpolation as ``torchaudio.functional.resample`` with its
    defaults, so a bundle resamples as training did (the two agree to float32 rounding, ~1e-5). Written out here
    because scipy's ``resample_poly`` uses another filter and would shift every resampled input slightly.
    """
    orig_sr, new_sr = int(orig_sr), int(new_sr)
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} and {new_sr}.")
    if orig_sr == new_sr:
        return wave.astype(np.float32, copy=False)
    gcd = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // gcd, new_sr // gcd
    kernel, width = _sinc_resample_kernel(orig, new)
    length = wave.shape[-1]
    padded = np.pad(wave.astype(np.float32, copy=False), (width, width + orig))
    k = kernel.shape[1]
    frames = np.lib.stride_tricks.sliding_window_view(padded, k)[::orig]  # (n_out, K): conv1d with stride orig
    out = (frames @ kernel.T).reshape(-1)  # (n_out * new,): interleave the `new` output phases
    return np.ascontiguousarray(out[: math.ceil(new * length / orig)], dtype=np.float32)


def load_audio(path: str | Path, sample_rate: int) -> tuple[np.ndarray, dict[str, int]]:
    """Read, mix to mono and resample a file: ``(float32 samples at sample_rate, {"sample_rate", "channels"})``."""
    wave, rate, channels = read_audio(path)
    return resample(wave, rate, sample_rate), {"sample_rate": rate, "channels": channels}


def center_crop(wave: np.ndarray, samples: int | None) -> np.ndarray:
    """The middle ``samples`` of a longer signal (what classifiers see at evaluation); shorter ones unchanged."""
    if not samples or wave.shape[-1] <= samples:
        return wave
    start = (wave.shape[-1] - samples) // 2
    return wave[..., start : start + samples]


def pad_batch(waves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad 1-D signals to a ``(B, T)`` float32 batch; returns it with the ``(B,)`` int64 lengths."""
    lengths = np.asarray([len(w) for w in waves], dtype=np.int64)
    batch = np.zeros((len(waves), int(lengths.max(initial=1))), dtype=np.float32)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    return batch, lengths


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def ctc_collapse(ids: Sequence[int], tokens: Sequence[str], blank: int = 0) -> str:
    """Best-path CTC decoding of one utterance's frame-wise token ids: merge repeats, drop blanks, join.

    Spaces are word separators: runs of them collapse to one and the ends are stripped.
    """
    out, previous = [], None
    for i in ids:
        i = int(i)
        if i != previous and i != blank:
            out.append(tokens[i])
        previous = i
    return " ".join("".join(out).split())


def ctc_greedy_decode(
    log_probs: np.ndarray, lengths: Sequence[int], tokens: Sequence[str], blank: int = 0
) -> list[str]:
    """Greedy (best-path) transcripts of a ``(B, T, V)`` batch of frame scores with ``lengths`` valid frames."""
    best = np.asarray(log_probs).argmax(axis=-1)  # (B, T)
    return [ctc_collapse(best[b, : int(n)], tokens, blank) for b, n in enumerate(lengths)]


class _OnnxSpeechModel:
    """Shared plumbing: the bundle's metadata, an onnxruntime session, audio loading as in training."""

    task = ""

    def __init__(self, bundle: str | Path, providers: Sequence[str] = ("CPUExecutionProvider",)) -> None:
        self.bundle = Path(bundle).expanduser()
        self.metadata: dict[str, Any] = read_metadata(self.bundle, (self.task,), required=("preprocessing",))
        self.preprocessing: dict[str, Any] = self.metadata["preprocessing"]
        self.sample_rate = int(self.preprocessing["sample_rate"])
        self.session = open_session(self.bundle / self.metadata["model_file"], providers)

    def load(self, item: Any) -> np.ndarray:
        """A path, or a ``(samples, sample_rate)`` pair, as the model's input signal."""
        if isinstance(item, (str, Path)):
            wave, _ = load_audio(item, self.sample_rate)
        else:
            samples, rate = item
            samples = np.asarray(samples, dtype=np.float32)
            wave = resample(samples.mean(axis=-1) if samples.ndim == 2 else samples, int(rate), self.sample_rate)
        return center_crop(wave, self.preprocessing.get("clip_samples"))

    def run(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        batch, lengths = pad_batch(waves)
        return self.session.run(None, {"waveform": batch, "lengths": lengths})


class OnnxAudioClassifier(_OnnxSpeechModel):
    """An exported audio classifier (keyword spotting, sound classes)."""

    task = "audio_classification"

    @property
    def labels(self) -> list[str]:
        return list(self.metadata["labels"])

    def predict_proba(self, items: Sequence[Any], batch_size: int = 32) -> np.ndarray:
        """Class probabilities ``(N, num_classes)`` of paths or ``(samples, sample_rate)`` pairs."""
        out = [
            softmax(self.run([self.load(x) for x in items[i : i + batch_size]])[0])
            for i in range(0, len(items), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def predict(self, items: Sequence[Any], batch_size: int = 32) -> list[tuple[str, float]]:
        """``(label, probability)`` of the top class for every item."""
        proba = self.predict_proba(items, batch_size)
        return [(self.labels[int(k)], float(p[k])) for p, k in zip(proba, proba.argmax(-1))]


class OnnxSpeechRecognizer(_OnnxSpeechModel):
    """An exported CTC speech recognizer with greedy decoding."""

    task = "speech_recognition"

    @property
    def tokens(self) -> list[str]:
        return list(self.metadata["tokens"])

    def transcribe(self, items: Sequence[Any], batch_size: int = 16) -> list[str]:
        """The transcript of every path or ``(samples, sample_rate)`` pair."""
        waves = [self.load(x) for x in items]
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))  # similar lengths share a batch: less padding
        texts: list[str] = [""] * len(waves)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            log_probs, out_lengths = self.run([waves[i] for i in idx])
            for i, text in zip(idx, ctc_greedy_decode(log_probs, out_lengths, self.tokens, self.metadata["blank"])):
                texts[i] = text
        return texts


def load_bundle(bundle: str | Path) -> OnnxAudioClassifier | OnnxSpeechRecognizer:
    """The bundle's model: a classifier or a recognizer, from its ``metadata.json``."""
    task = read_metadata(bundle).get("task")
    return OnnxSpeechRecognizer(bundle) if task == OnnxSpeechRecognizer.task else OnnxAudioClassifier(bundle)


def main(argv: Sequence[str]) -> int:
    """``python loader.py <bundle folder> <audio file> [...]``: a transcript or ``label, probability`` per file; a bad
    bundle or audio file ends in one ``error:`` line and status 2."""
    usage = "usage: python loader.py <bundle folder> <audio file> [<audio file> ...]"
    if argv[:1] in (["-h"], ["--help"]):
        print(usage)
        return 0
    if len(argv) < 2:
        print(usage, file=sys.stderr)
        return 2
    files = list(argv[1:])
    try:
        model = load_bundle(argv[0])
        if isinstance(model, OnnxSpeechRecognizer):
            lines = [f"{path}\t{text}" for path, text in zip(files, model.transcribe(files))]
        else:
            lines = [f"{path}\t{label}\t{p:.4f}" for path, (label, p) in zip(files, model.predict(files))]
    except (BundleError, AudioReadError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    if code := main(sys.argv[1:]):
        sys.exit(code)
