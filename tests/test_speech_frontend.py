"""Speech front-end and the torch-free audio runtime: resampling, features at several sample rates, the exported
(convolutional) STFT against torchaudio's, masking, augmentation, CTC decoding."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torchaudio

from recipezoo.core.errors import ConfigError
from recipezoo.runtime.audio import center_crop, ctc_collapse, ctc_greedy_decode, pad_batch, resample
from recipezoo.speech.frontend import FrontEnd, WaveAugment, spec_augment


def noise(n: int, seed: int = 0, scale: float = 0.1) -> torch.Tensor:
    return scale * torch.from_numpy(np.random.default_rng(seed).standard_normal(n).astype(np.float32))


# -- resampling: the numpy runtime against torchaudio -------------------------------------------------------------
@pytest.mark.parametrize(
    ("orig", "new", "n"),
    [(8000, 16000, 8001), (16000, 8000, 777), (44100, 16000, 44100), (22050, 16000, 1234), (48000, 16000, 5)],
)
def test_numpy_resample_matches_torchaudio(orig: int, new: int, n: int) -> None:
    x = noise(n, seed=n, scale=0.3)
    expected = torchaudio.functional.resample(x, orig, new).numpy()
    got = resample(x.numpy(), orig, new)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=5e-5)


def test_resample_same_rate_is_identity_and_rejects_bad_rates() -> None:
    x = noise(100).numpy()
    assert resample(x, 16000, 16000) is x
    with pytest.raises(ValueError, match="positive"):
        resample(x, 0, 16000)


def test_pad_batch_and_center_crop() -> None:
    batch, lengths = pad_batch([np.ones(3, np.float32), np.ones(5, np.float32)])
    assert batch.shape == (2, 5) and lengths.tolist() == [3, 5] and lengths.dtype == np.int64
    assert batch[0, 3:].tolist() == [0, 0]
    assert center_crop(np.arange(10), 4).tolist() == [3, 4, 5, 6]
    assert center_crop(np.arange(3), 4).tolist() == [0, 1, 2]
    assert center_crop(np.arange(3), None).tolist() == [0, 1, 2]


# -- features -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100])
@pytest.mark.parametrize(("kind", "n_features"), [("logmel", 40), ("mfcc", 13), ("waveform", 1)])
def test_frontend_shapes_at_several_sample_rates(rate: int, kind: str, n_features: int) -> None:
    fe = FrontEnd(kind, rate, n_features=n_features).eval()
    lengths = torch.tensor([rate, rate // 3, 200])  # 1 s, 1/3 s and a very short clip
    wave = torch.stack([noise(rate, s) for s in range(3)]) * (torch.arange(rate)[None] < lengths[:, None])
    x, out_lengths = fe(wave, lengths)
    if kind == "waveform":
        assert x.shape == wave.shape and out_lengths.tolist() == lengths.tolist()
        return
    hop = round(rate * 0.01)
    assert fe.hop_length == hop and fe.win_length == round(rate * 0.025) and fe.n_fft >= fe.win_length
    assert x.shape[:2] == (3, n_features)
    assert out_lengths.tolist() == [n // hop + 1 for n in lengths.tolist()]
    for b, n in enumerate(out_lengths.tolist()):
        assert torch.all(x[b, :, n:] == 0), "frames past the utterance must be zero"
    # Utterance normalisation: zero mean, unit variance per feature over the valid frames of the 1 s clip.
    valid = x[0, :, : out_lengths[0]]
    assert valid.mean(-1).abs().max() < 1e-4
    assert (valid.var(-1, unbiased=False) - 1).abs().max() < 1e-2


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_features_are_torchaudios(kind: str) -> None:
    import torchaudio.transforms as T

    fe = FrontEnd(kind, 16000, n_features=13 if kind == "mfcc" else 40, f_min=20.0)
    x = noise(16000).reshape(1, -1)
    kwargs = dict(n_fft=512, win_length=400, hop_length=160, f_min=20.0, f_max=8000.0)
    if kind == "mfcc":
        ref = T.MFCC(16000, n_mfcc=13, log_mels=True, melkwargs={"n_mels": 40, **kwargs})(x)
    else:
        ref = torch.log(T.MelSpectrogram(16000, n_mels=40, **kwargs)(x) + 1e-6)
    assert torch.equal(fe.features(x), ref)


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_convolutional_stft_matches_torchaudio(rate: int, kind: str) -> None:
    """The STFT the ONNX graph computes (a strided convolution) against torchaudio's torch.stft."""
    fe = FrontEnd(kind, rate, n_features=40 if kind == "logmel" else 20).eval()
    lengths = torch.tensor([rate, rate // 2])
    wave = torch.stack([noise(rate, 1), noise(rate, 2)])
    conv = copy.deepcopy(fe)
    conv.conv_stft = True
    torch.testing.assert_close(conv(wave, lengths)[0], fe(wave, lengths)[0], atol=1e-4, rtol=0)
    power = conv._power_conv(wave)
    ref = fe.melspec.spectrogram(wave)
    torch.testing.assert_close(power, ref, atol=1e-5, rtol=1e-3)


@pytest.mark.export
def test_exported_frontend_matches_torchaudio_in_onnxruntime(tmp_path) -> None:
    import onnxruntime as ort

    fe = FrontEnd("logmel", 16000).eval()
    wave, lengths = torch.stack([noise(16000, 3), noise(16000, 4)]), torch.tensor([16000, 7000])
    dim = torch.export.Dim.DYNAMIC
    program = torch.onnx.export(
        fe, (wave, lengths), dynamo=True, dynamic_shapes={"wave": {0: dim, 1: dim}, "lengths": {0: dim}}, verbose=False
    )
    program.save(str(tmp_path / "fe.onnx"))
    session = ort.InferenceSession(str(tmp_path / "fe.onnx"), providers=["CPUExecutionProvider"])
    assert "STFT" not in {n.op_type for n in program.model_proto.graph.node}
    wave, lengths = torch.stack([noise(12345, 5), noise(12345, 6)]), torch.tensor([12345, 5000])  # other shapes
    wave[1, 5000:] = 0
    got = session.run(None, {"wave": wave.numpy(), "lengths": lengths.numpy()})[0]
    np.testing.assert_allclose(got, fe(wave, lengths)[0].numpy(), atol=1e-4)


@pytest.mark.parametrize("kind", ["logmel", "mfcc", "waveform"])
def test_an_utterance_gets_the_same_features_alone_or_padded(kind: str) -> None:
    fe = FrontEnd(kind, 16000, n_features=40 if kind != "mfcc" else 13).eval()
    short = noise(3000, 7)
    batch = torch.zeros(2, 16000)
    batch[0] = noise(16000, 8)
    batch[1, :3000] = short
    batch[1, 3000:] = 5.0  # garbage past the length must not matter either
    x, n = fe(batch, torch.tensor([16000, 3000]))
    alone, m = fe(short[None], torch.tensor([3000]))
    assert int(n[1]) == int(m[0])
    torch.testing.assert_close(x[1, ..., : alone.shape[-1]], alone[0], atol=1e-6, rtol=0)  # summation order only


def test_frontend_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="kind"):
        FrontEnd("spectrogram")
    with pytest.raises(ConfigError, match="f_max"):
        FrontEnd("logmel", 8000, f_max=6000)
    with pytest.raises(ConfigError, match="n_fft"):
        FrontEnd("logmel", 16000, n_fft=256)
    with pytest.raises(ConfigError, match="n_mels"):
        FrontEnd("mfcc", 16000, n_features=60, n_mels=40)


# -- augmentation -------------------------------------------------------------------------------------------------
def test_wave_augment_is_identity_in_eval_and_random_in_training() -> None:
    aug = WaveAugment(gain_db=6, shift_ms=50, noise_prob=1.0, sample_rate=8000)
    wave, lengths = torch.stack([noise(4000, 1), noise(4000, 2)]), torch.tensor([4000, 2000])
    aug.eval()
    out, n = aug(wave, lengths)
    assert out is wave and n is lengths
    aug.train()
    torch.manual_seed(0)
    a, na = aug(wave, lengths)
    torch.manual_seed(1)
    b, nb = aug(wave, lengths)
    assert not torch.equal(a, b)
    assert a.shape == wave.shape and ((na - lengths).abs() <= 400).all()  # shifts of at most 50 ms at 8 kHz


def test_time_shift_inserts_silence_or_drops_the_start() -> None:
    aug = WaveAugment(shift_ms=1000, sample_rate=10).train()  # shifts of up to 10 samples
    wave = torch.arange(1, 21, dtype=torch.float32)[None].repeat(50, 1)
    lengths = torch.full((50,), 15)
    out, n = aug(wave, lengths)
    delayed = dropped = 0
    for row, length in zip(out, n.tolist()):
        nonzero = torch.nonzero(row).flatten()
        values = row[nonzero]
        # One contiguous run of the signal 1..15 (its start dropped, or its end pushed out of the batch), silence
        # before it (inserted) and after the new length.
        assert torch.equal(nonzero, torch.arange(int(nonzero[0]), int(nonzero[0]) + len(nonzero)))
        assert torch.equal(values, torch.arange(int(values[0]), int(values[0]) + len(values), dtype=torch.float32))
        assert values[-1] <= 15 and torch.all(row[length:] == 0)
        delayed += int(nonzero[0]) > 0
        dropped += int(values[0]) > 1
    assert delayed and dropped


def test_spec_augment_masks_in_place_of_features_and_off_when_unset() -> None:
    assert isinstance(spec_augment(), torch.nn.Identity)
    masked = spec_augment(n_time_masks=1, time_mask_param=5, n_freq_masks=1, freq_mask_param=4)(torch.ones(4, 40, 50))
    assert masked.shape == (4, 40, 50) and (masked == 0).any() and (masked == 1).any()


# -- CTC decoding ---------------------------------------------------------------------------------------------------
TOKENS = ["<blank>", " ", "a", "b", "c"]


@pytest.mark.parametrize(
    ("ids", "text"),
    [
        ([0, 2, 2, 0, 3, 0], "ab"),  # repeats merge, blanks vanish
        ([2, 0, 2], "aa"),  # a blank separates a real double letter
        ([0, 0, 0], ""),
        ([1, 2, 1, 1, 0, 1, 3, 1], "a b"),  # spaces: collapsed and stripped
        ([4, 4, 4, 1, 0, 2], "c a"),
    ],
)
def test_ctc_collapse(ids: list[int], text: str) -> None:
    assert ctc_collapse(ids, TOKENS) == text


def test_ctc_greedy_decode_uses_each_utterances_frames_only() -> None:
    frames = np.array([[2, 0, 3, 3, 4, 4], [4, 0, 4, 2, 2, 2]])  # the best token per frame
    log_probs = np.log(np.full((2, 6, 5), 0.01))
    for b in range(2):
        log_probs[b, np.arange(6), frames[b]] = np.log(0.96)
    assert ctc_greedy_decode(log_probs, [6, 3], TOKENS) == ["abc", "cc"]
