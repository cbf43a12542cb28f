"""The speech front-end and augmentation, run on the accelerator inside the LightningModule.

:class:`FrontEnd` turns a zero-padded waveform batch ``(B, T)`` with its lengths into what a network reads:
log-mel or MFCC features ``(B, F, frames)`` from ``torchaudio.transforms`` with per-utterance normalisation, or the
normalised waveform itself for pretrained speech encoders (wav2vec2 / HuBERT / WavLM). Every step is masked by the
lengths, so an utterance gets the same features whether it is alone or padded in a batch.

:class:`WaveAugment` (random gain, time shift, additive noise) and :func:`spec_augment` (SpecAugment time and
frequency masking) run only in training.

This module imports torch and torchaudio only: no Lightning, no Hydra.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recipezoo.core.errors import ConfigError

KINDS = ("logmel", "mfcc", "waveform")
NORMALIZE = ("utterance", "none")
LOG_FLOOR = 1e-6  # log(mel + 1e-6), as torchaudio's MFCC(log_mels=True) does


def lengths_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, size)`` bool: True at the valid positions ``t < lengths[b]``."""
    return torch.arange(size, device=lengths.device)[None, :] < lengths[:, None]


class FrontEnd(nn.Module):
    """Waveform -> features, on the accelerator: ``forward(waveform (B, T), lengths (B,)) -> (x, out_lengths)``.

    ``logmel``: ``torchaudio.transforms.MelSpectrogram`` (Hann window, power spectrum, HTK mel scale) then
    ``log(mel + 1e-6)`` -> ``(B, n_features, frames)``. ``mfcc``: ``torchaudio.transforms.MFCC`` with log mels ->
    ``(B, n_features, frames)``. ``waveform``: the signal itself ``(B, T)``, what wav2vec2-style encoders read.
    With ``normalize="utterance"`` every utterance is scaled to zero mean and unit variance over its own valid
    frames (per feature) or samples (waveform), as Hugging Face's wav2vec2 feature extractor does; padding is zero.

    Every utterance is followed by ``n_fft // 2`` zeros before the STFT, so its last frames see zeros whatever the
    batch's padding; frame ``t`` is centred on sample ``t * hop``, and ``lengths // hop + 1`` frames are valid.

    Args:
        kind: ``logmel``, ``mfcc`` or ``waveform``.
        sample_rate: the model's sample rate (Hz); the data resamples every file to it.
        n_features: mel bands (``logmel``) or cepstral coefficients (``mfcc``).
        n_mels: the mel filterbank size behind ``mfcc`` (null: max(40, n_features)).
        win_ms: analysis window (ms).
        hop_ms: hop between frames (ms).
        n_fft: FFT size (null: the smallest power of two that holds the window).
        f_min: lowest mel frequency (Hz).
        f_max: highest mel frequency (null: Nyquist).
        normalize: ``utterance`` or ``none``.
    """

    def __init__(
        self,
        kind: str = "logmel",
        sample_rate: int = 16000,
        n_features: int = 40,
        n_mels: int | None = None,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_fft: int | None = None,
        f_min: float = 20.0,
        f_max: float | None = None,
        normalize: str = "utterance",
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"unknown model.frontend.kind '{kind}'; choose one of {', '.join(KINDS)}.")
        if normalize not in NORMALIZE:
            raise ConfigError(f"unknown model.frontend.normalize '{normalize}'; choose one of {', '.join(NORMALIZE)}.")
        self.kind, self.sample_rate, self.normalize = kind, int(sample_rate), normalize
        self.win_length = max(1, round(self.sample_rate * win_ms / 1000))
        self.hop_length = max(1, round(self.sample_rate * hop_ms / 1000))
        self.n_fft = int(n_fft) if n_fft else 2 ** math.ceil(math.log2(self.win_length))
        if self.n_fft < self.win_length:
            raise ConfigError(f"model.frontend.n_fft={n_fft} is shorter than the {self.win_length}-sample window.")
        nyquist = self.sample_rate / 2
        self.f_min, self.f_max = float(f_min), float(f_max) if f_max else nyquist
        if not 0 <= self.f_min < self.f_max <= nyquist:
            raise ConfigError(
                f"model.frontend f_min={f_min} / f_max={f_max} must satisfy 0 <= f_min < f_max <= {nyquist:g} Hz "
                f"(half the {self.sample_rate} Hz sample rate)."
            )
        self.n_features = int(n_features) if kind != "waveform" else 1
        self.n_mels = int(n_mels) if n_mels else max(40, self.n_features)
        # ONNX's STFT op is computed less precisely than torch's (relative error ~2e-4 in onnxruntime): under
        # torch.export (the ONNX exporter) the STFT is computed as a strided convolution with the DFT basis instead,
        # which matches torch.stft to float32 rounding (see _power_conv). True forces that path in eager mode too.
        self.conv_stft = False
        if kind == "waveform":
            return
        import torchaudio.transforms as T

        mel_kwargs = dict(
            n_fft=self.n_fft,
            win_length=self.win_length,
            hop_length=self.hop_length,
            f_min=self.f_min,
            f_max=self.f_max,
            center=True,
            pad_mode="reflect",
            power=2.0,
        )
        if kind == "logmel":
            self.mel = T.MelSpectrogram(self.sample_rate, n_mels=self.n_features, **mel_kwargs)
        else:
            if self.n_features > self.n_mels:
                raise ConfigError(f"mfcc: n_features={self.n_features} coefficients need n_mels >= {self.n_features}.")
            self.mfcc = T.MFCC(
                self.sample_rate, n_mfcc=self.n_features, log_mels=True, melkwargs={"n_mels": self.n_mels, **mel_kwargs}
            )
        self.register_buffer("dft_basis", self._dft_basis(), persistent=False)

    @property
    def melspec(self) -> nn.Module:
        """The ``torchaudio.transforms.MelSpectrogram`` in use."""
        return self.mel if self.kind == "logmel" else self.mfcc.MelSpectrogram

    def settings(self) -> dict[str, Any]:
        """What an exported bundle's metadata records about the front-end."""
        out: dict[str, Any] = {"kind": self.kind, "sample_rate": self.sample_rate, "normalize": self.normalize}
        if self.kind != "waveform":
            out.update(
                n_features=self.n_features,
                n_mels=self.n_mels if self.kind == "mfcc" else self.n_features,
                win_length=self.win_length,
                hop_length=self.hop_length,
                n_fft=self.n_fft,
                f_min=self.f_min,
                f_max=self.f_max,
                window="hann",
                mel_scale="htk",
                log_floor=LOG_FLOOR,
            )
        return out

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output steps per utterance: samples for ``waveform``, else ``lengths // hop + 1`` frames."""
        return lengths if self.kind == "waveform" else torch.div(lengths, self.hop_length, rounding_mode="floor") + 1

    def _dft_basis(self) -> torch.Tensor:
        # (2 * n_freq, 1, n_fft): windowed cosines then sines, so conv1d(frames) gives the real and imaginary parts.
        window = self.melspec.spectrogram.window.double()  # (win_length,), zero-padded to n_fft as torch.stft does
        left = (self.n_fft - window.numel()) // 2
        window = F.pad(window, (left, self.n_fft - window.numel() - left))
        n = torch.arange(self.n_fft, dtype=torch.float64)
        k = torch.arange(self.n_fft // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * k * n / self.n_fft
        basis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])
        return basis[:, None, :].float()

    def _power_conv(self, wave: torch.Tensor) -> torch.Tensor:
        """``|STFT|^2`` ``(B, n_freq, frames)`` as a strided convolution: what torch.stft computes, ONNX-friendly."""
        half = self.n_fft // 2
        x = F.pad(wave[:, None, :], (half, half), mode="reflect")  # center=True, pad_mode="reflect"
        spec = F.conv1d(x, self.dft_basis, stride=self.hop_length)  # (B, 2 * n_freq, frames)
        real, imag = spec.chunk(2, dim=1)
        return real * real + imag * imag

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """Un-normalised log-mel / MFCC features of a ``(B, T)`` waveform: ``(B, n_features, T // hop + 1)``."""
        spec = self.melspec
        conv = self.conv_stft or torch.compiler.is_exporting()
        mel = spec.mel_scale(self._power_conv(wave)) if conv else spec(wave)
        x = torch.log(mel + LOG_FLOOR)
        if self.kind == "mfcc":  # torchaudio's MFCC: the DCT of the log mels
            x = torch.matmul(x.transpose(-1, -2), self.mfcc.dct_mat).transpose(-1, -2)
        return x

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = lengths_mask(lengths, wave.shape[1]).to(torch.float32)  # (B, T)
        wave = wave.float() * mask  # whatever the padding held, it is silence
        if self.kind == "waveform":
            if self.normalize == "utterance":
                n = mask.sum(1, keepdim=True).clamp(min=1)
                mean = wave.sum(1, keepdim=True) / n
                var = (((wave - mean) * mask) ** 2).sum(1, keepdim=True) / n
                wave = (wave - mean) / torch.sqrt(var + 1e-7) * mask
            return wave, lengths
        x = self.features(F.pad(wave, (0, self.n_fft // 2)))  # (B, F, frames)
        frames = self.output_lengths(lengths)
        mask = lengths_mask(frames, x.shape[-1]).to(x.dtype)[:, None, :]  # (B, 1, frames)
        if self.normalize == "utterance":
            n = mask.sum(-1, keepdim=True).clamp(min=1)
            mean = (x * mask).sum(-1, keepdim=True) / n
            var = (((x - mean) * mask) ** 2).sum(-1, keepdim=True) / n
            x = (x - mean) / torch.sqrt(var + 1e-5)
        return x * mask, frames


class WaveAugment(nn.Module):
    """Training-time waveform augmentation of a padded batch, on the accelerator; identity in eval mode.

    Args:
        gain_db: random gain, uniform in ``[-gain_db, gain_db]`` dB per utterance (0: off).
        shift_ms: random time shift up to this many ms per utterance: a positive shift inserts silence before the
            audio, a negative one drops its start (0: off).
        noise_prob: probability of adding white noise to an utterance.
        noise_snr_db: ``[low, high]`` signal-to-noise ratio range of that noise (dB).
        sample_rate: to convert ``shift_ms`` to samples.
    """

    def __init__(
        self,
        gain_db: float = 0.0,
        shift_ms: float = 0.0,
        noise_prob: float = 0.0,
        noise_snr_db: tuple[float, float] = (10.0, 30.0),
        sample_rate: int = 16000,
    ) -> None:
        super().__init__()
        if not 0 <= noise_prob <= 1:
            raise ConfigError(f"model.augment.noise_prob={noise_prob} must be in [0, 1].")
        self.gain_db, self.noise_prob = float(gain_db), float(noise_prob)
        self.max_shift = int(round(sample_rate * shift_ms / 1000))
        self.noise_snr_db = (float(noise_snr_db[0]), float(noise_snr_db[1]))

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.training:
            return wave, lengths
        b, t = wave.shape
        if self.max_shift > 0:
            shift = torch.randint(-self.max_shift, self.max_shift + 1, (b, 1), device=wave.device)
            src = torch.arange(t, device=wave.device)[None, :] - shift  # (B, T): where each output sample comes from
            valid = (src >= 0) & (src < lengths[:, None])
            wave = torch.gather(wave, 1, src.clamp(0, t - 1)) * valid
            lengths = (lengths + shift[:, 0]).clamp(1, t)
        if self.gain_db > 0:
            gain_db = (torch.rand(b, 1, device=wave.device) * 2 - 1) * self.gain_db
            wave = wave * torch.pow(10.0, gain_db / 20)
        if self.noise_prob > 0:
            mask = lengths_mask(lengths, t).to(wave.dtype)
            power = (wave * wave * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1)
            low, high = self.noise_snr_db
            snr = low + torch.rand(b, 1, device=wave.device) * (high - low)
            scale = torch.sqrt(power / torch.pow(10.0, snr / 10))
            scale = scale * (torch.rand(b, 1, device=wave.device) < self.noise_prob)
            wave = wave + torch.randn_like(wave) * scale * mask
        return wave, lengths


def spec_augment(
    n_time_masks: int = 0,
    time_mask_param: int = 0,
    n_freq_masks: int = 0,
    freq_mask_param: int = 0,
    p: float = 1.0,
) -> nn.Module:
    """SpecAugment (Park et al., 2019) as ``torchaudio.transforms.SpecAugment``: per-utterance time and frequency
    masks set to 0 (the mean after utterance normalisation). ``p`` caps a time mask at that fraction of the frames.
    Identity when no masks are asked for."""
    if not (n_time_masks and time_mask_param) and not (n_freq_masks and freq_mask_param):
        return nn.Identity()
    import torchaudio.transforms as T

    return T.SpecAugment(
        n_time_masks=int(n_time_masks),
        time_mask_param=int(time_mask_param),
        n_freq_masks=int(n_freq_masks),
        freq_mask_param=int(freq_mask_param),
        iid_masks=True,
        p=float(p),
        zero_masking=True,
    )
