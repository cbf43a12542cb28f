"""The speech LightningModules: front-end choice, augmentation in training only, CTC decoding and WER/CER on
hand-made cases, command-line errors; the slow tier checks that both tasks learn their synthetic data."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

from recipezoo.core.errors import ConfigError
from recipezoo.speech.models import create_audio_classifier, create_ctc_model
from recipezoo.speech.task import AudioClassifier, SpeechRecognizer, build_frontend
from recipezoo.train import run
from tests.conftest import tiny
from tests.test_errors import assert_user_error, cli

OPTIMIZER = partial(torch.optim.AdamW, lr=1e-3)
TOKENS = ["<blank>", " ", "a", "b", "c"]


def test_pretrained_encoders_read_the_waveform_and_feature_networks_refuse_it() -> None:
    wav2vec2 = create_audio_classifier("wav2vec2_tiny", 3)
    assert build_frontend(wav2vec2, {"kind": "logmel", "sample_rate": 16000}).kind == "waveform"
    resnet = create_audio_classifier("audio_resnet_tiny", 3)
    with pytest.raises(ConfigError, match="reads log-mel/MFCC features, not the waveform"):
        build_frontend(resnet, {"kind": "waveform"})
    with pytest.raises(ConfigError, match="unknown model.augment key\\(s\\) pitch"):
        AudioClassifier(resnet, 3, OPTIMIZER, augment={"pitch": 2})


def test_augmentation_only_in_training() -> None:
    augment = {"gain_db": 6, "shift_ms": 50, "noise_prob": 1.0, "time_masks": 2, "time_mask_frames": 5}
    module = AudioClassifier(create_audio_classifier("audio_resnet_tiny", 3), 3, OPTIMIZER, augment=augment)
    module.eval()
    audio, lengths = 0.1 * torch.randn(2, 8000), torch.tensor([8000, 6000])
    with torch.no_grad():
        assert torch.equal(module(audio, lengths), module(audio, lengths))
    module.train()
    batch = {"audio": audio, "lengths": lengths, "label": torch.tensor([0, 1])}
    losses = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        module.log = lambda *a, **k: None  # outside a Trainer
        losses.append(float(module.training_step(batch, 0).detach()))
    assert losses[0] != losses[1]


def test_greedy_decoding_and_error_rates_on_hand_made_cases() -> None:
    module = SpeechRecognizer(create_ctc_model("conformer_tiny", len(TOKENS)), TOKENS, OPTIMIZER)
    frames = torch.tensor([[2, 2, 0, 3, 1, 4, 4, 0], [2, 0, 2, 1, 1, 3, 0, 0]])  # best token per frame
    log_probs = torch.nn.functional.one_hot(frames, len(TOKENS)).float().add(1e-3).log()
    assert module.decode(log_probs, torch.tensor([8, 5])) == ["ab c", "aa"]
    wer, cer = module.wer["val"], module.cer["val"]
    wer.update(["ab c", "aa"], ["ab cc", "aa b"])  # 1 substitution + 1 deletion over 4 reference words
    cer.update(["ab c", "aa"], ["ab cc", "aa b"])  # 1 deletion + 2 deletions over 9 reference characters
    assert float(wer.compute()) == pytest.approx(2 / 4)
    assert float(cer.compute()) == pytest.approx(3 / 9)


def test_ctc_loss_ignores_utterances_too_short_for_their_transcript() -> None:
    module = SpeechRecognizer(create_ctc_model("conformer_tiny", len(TOKENS), n_features=40), TOKENS, OPTIMIZER).train()
    module.log = lambda *a, **k: None
    batch = {
        "audio": 0.1 * torch.randn(2, 16000),
        "lengths": torch.tensor([16000, 800]),  # 0.05 s: 2 frames after subsampling for a 6-character transcript
        "targets": torch.tensor([[2, 3, 4, 0, 0, 0], [2, 3, 4, 2, 3, 4]]),
        "target_lengths": torch.tensor([3, 6]),
        "text": ["abc", "abcabc"],
    }
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss) and module._too_short == 1


def test_export_spec_inputs_vary_in_batch_and_time() -> None:
    module = AudioClassifier(create_audio_classifier("audio_resnet_tiny", 3), 3, OPTIMIZER, preprocessing={})
    spec = module.export_spec(4)
    other = spec.make_inputs(2)
    assert spec.inputs["waveform"].shape[0] == 4 and other["waveform"].shape[0] == 2
    assert spec.inputs["waveform"].shape[1] != other["waveform"].shape[1]
    assert (
        spec.inputs["lengths"].dtype == torch.long
        and int(spec.inputs["lengths"].max()) <= spec.inputs["waveform"].shape[1]
    )
    assert isinstance(spec.model, nn.Module) and spec.metadata["task"] == "audio_classification"


# -- the command line -------------------------------------------------------------------------------------------
def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path,transcript\nmissing/a.wav,hello\nmissing/b.wav,world\n")
    proc = cli(["+recipe=speech/asr_ctc", f"data.manifest={tmp_path / 'm.csv'}", f"hydra.run.dir={tmp_path / 'run'}"])
    line = assert_user_error(proc)
    assert "none of the 2 audio files can be used: 2 missing" in line and "data.audio_root" in line


# -- slow tier: the tasks learn -------------------------------------------------------------------------------
@pytest.mark.slow
def test_classifier_learns_synthetic_tones(make_cfg) -> None:
    summary = run(
        make_cfg(
            "+recipe=speech/audio_classification",
            *tiny("speech/audio_classification"),
            "backbone.name=audio_resnet_small",
            "data.synthetic_size=40",
            "trainer.max_epochs=15",
        )
    )
    assert summary["test"]["test/acc"] >= 0.9


@pytest.mark.slow
def test_ctc_recognizer_learns_synthetic_transcripts(make_cfg) -> None:
    summary = run(
        make_cfg(
            "+recipe=speech/asr_ctc",
            *tiny("speech/asr_ctc"),
            "data.synthetic_size=200",
            "data.batch_size=16",
            "trainer.max_epochs=60",
        )
    )
    # Untrained, both are 1.0 (blanks only); a working CTC pipeline gets most characters right.
    assert summary["test"]["test/cer"] <= 0.15 and summary["test"]["test/wer"] <= 0.5
