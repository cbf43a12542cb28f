"""Speech networks: every registered network builds and ignores padding; the pretrained-encoder door loads a tiny
wav2vec2 from a folder or a weights file, refuses what does not fit and explains offline failures; the fine-tuning
policy freezes the feature encoder and then the Transformer."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from recipezoo.core.errors import ConfigError, PretrainedError
from recipezoo.core.finetune import FineTuningCallback, FineTuningPolicy
from recipezoo.speech.frontend import FrontEnd
from recipezoo.speech.models import (
    CLASSIFIERS,
    RECOGNIZERS,
    TINY_ENCODERS,
    create_audio_classifier,
    create_ctc_model,
    load_speech_encoder,
)
from recipezoo.speech.task import WaveformModel

NETS = [("cls", n) for n in CLASSIFIERS] + [("ctc", n) for n in RECOGNIZERS]
NETS += [(kind, n) for n in TINY_ENCODERS for kind in ("cls", "ctc")]


def build(kind: str, name: str, **kwargs) -> WaveformModel:
    torch.manual_seed(0)
    if kind == "cls":
        net = create_audio_classifier(name, 4, n_features=40, **kwargs)
    else:
        net = create_ctc_model(name, 12, n_features=40, **kwargs)
    frontend = FrontEnd("waveform" if net.input_kind == "waveform" else "logmel", 16000, n_features=40)
    return WaveformModel(frontend, net, ctc=kind == "ctc").eval()


@pytest.mark.parametrize(("kind", "name"), NETS, ids=[f"{k}-{n}" for k, n in NETS])
def test_every_network_builds_and_gives_an_utterance_the_same_output_alone_or_padded(kind: str, name: str) -> None:
    model = build(kind, name)
    short = 0.1 * torch.randn(4000)
    batch = torch.zeros(2, 12000)
    batch[0] = 0.1 * torch.randn(12000)
    batch[1, :4000] = short
    with torch.no_grad():
        padded = model(batch, torch.tensor([12000, 4000]))
        alone = model(short[None], torch.tensor([4000]))
    if kind == "cls":
        assert padded.shape == (2, 4)
        torch.testing.assert_close(padded[1], alone[0], atol=1e-5, rtol=0)
        return
    (log_probs, lengths), (alone_lp, alone_len) = padded, alone
    assert log_probs.shape[0] == 2 and log_probs.shape[2] == 12 and lengths.dtype == torch.long
    assert int(lengths[1]) == int(alone_len[0]) and int(lengths[0]) > int(lengths[1]) > 0
    torch.testing.assert_close(log_probs[1, : int(lengths[1])], alone_lp[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(log_probs.shape[:2]))


def test_networks_expose_head_and_layer_groups_covering_their_parameters() -> None:
    for kind, name in NETS:
        net = build(kind, name).net
        grouped = {id(p) for g in net.layer_groups() for p in g.parameters()} | {id(p) for p in net.head.parameters()}
        rest = [n for n, p in net.named_parameters() if id(p) not in grouped]
        assert rest in ([], ["encoder.masked_spec_embed"]), f"{name}: parameters outside head and groups: {rest}"


def test_unknown_names_and_pretrained_weights_for_scratch_networks() -> None:
    with pytest.raises(ConfigError, match="unknown audio classification backbone 'audio_resnet'.*Did you mean"):
        create_audio_classifier("audio_resnet", 3)
    with pytest.raises(ConfigError, match="unknown speech recognition backbone 'conformer'"):
        create_ctc_model("conformer", 10)
    with pytest.raises(PretrainedError, match="no published weights"):
        create_audio_classifier("audio_resnet_small", 3, pretrained=True)
    with pytest.raises(PretrainedError, match="no published weights"):
        create_ctc_model("wav2vec2_tiny", 10, pretrained="facebook/wav2vec2-base")


def test_scratch_network_from_an_earlier_weights_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    old = create_ctc_model("conformer_tiny", 10)
    torch.save({"state_dict": {f"net.{k}": v for k, v in old.state_dict().items()}}, tmp_path / "old.ckpt")
    new = create_ctc_model("conformer_tiny", 7, pretrained=str(tmp_path / "old.ckpt"))  # another vocabulary
    assert torch.equal(new.blocks[0].qkv.weight, old.blocks[0].qkv.weight)
    assert new.head.weight.shape == (7, 32)


# -- the pretrained door -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A tiny wav2vec2 saved as a Hugging Face folder (config.json + model.safetensors)."""
    torch.manual_seed(1)
    encoder = load_speech_encoder("wav2vec2_tiny")
    folder = tmp_path_factory.mktemp("w2v") / "tiny-wav2vec2"
    encoder.save_pretrained(folder)
    return folder, encoder


def test_encoder_from_a_local_folder_has_its_weights(tiny_folder) -> None:
    folder, saved = tiny_folder
    for pretrained in (str(folder), True):
        loaded = load_speech_encoder(str(folder), pretrained)
        for (k, a), b in zip(saved.state_dict().items(), loaded.state_dict().values()):
            assert torch.equal(a, b), k
    net = create_ctc_model("facebook/wav2vec2-base", 9, pretrained=str(folder))  # the folder overrides the name
    assert torch.equal(
        net.encoder.feature_extractor.conv_layers[0].conv.weight, saved.feature_extractor.conv_layers[0].conv.weight
    )


def test_encoder_from_a_weights_file_and_a_file_for_another_architecture(tiny_folder, tmp_path: Path) -> None:
    folder, saved = tiny_folder
    net = create_audio_classifier("wav2vec2_tiny", 3, pretrained=str(folder / "model.safetensors"))
    assert torch.equal(
        net.encoder.encoder.layers[1].attention.q_proj.weight, saved.encoder.layers[1].attention.q_proj.weight
    )
    other = load_speech_encoder("hubert_tiny").state_dict()
    other["encoder.layers.0.attention.q_proj.weight"] = torch.zeros(8, 8)
    torch.save(other, tmp_path / "odd.pth")
    with pytest.raises(
        PretrainedError, match="(?s)do not fit the model.*q_proj.weight: file \\(8, 8\\) vs model \\(32, 32\\)"
    ):
        create_audio_classifier("wav2vec2_tiny", 3, pretrained=str(tmp_path / "odd.pth"))


def test_a_text_encoder_is_refused_as_a_speech_encoder(tmp_path: Path) -> None:
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ).save_pretrained(tmp_path / "bert")
    with pytest.raises(PretrainedError, match="not a speech encoder.*wav2vec2, HuBERT or WavLM"):
        create_audio_classifier(str(tmp_path / "bert"), 3)


def test_hub_download_failure_says_how_to_pass_a_local_folder(monkeypatch) -> None:
    import transformers

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", offline)
    with pytest.raises(PretrainedError, match="facebook/wav2vec2-base.*backbone.pretrained=/path/to"):
        create_ctc_model("facebook/wav2vec2-base", 10, pretrained=True)
    with pytest.raises(PretrainedError, match="not found: /no/such/folder"):
        create_ctc_model("facebook/wav2vec2-base", 10, pretrained="/no/such/folder")


# -- the fine-tuning policy ----------------------------------------------------------------------------------------
def test_policy_keeps_the_feature_encoder_frozen_and_the_transformer_frozen_first() -> None:
    net = create_audio_classifier("wav2vec2_tiny", 3)
    groups = net.layer_groups()
    assert groups[0] is net.encoder.feature_extractor and len(groups) == 2 + 2  # CNN, projection, 2 layers
    callback = FineTuningCallback(FineTuningPolicy(freeze_backbone_epochs=1, frozen_blocks=1))
    module = SimpleNamespace(net=net)

    def trainable(group) -> bool:
        return all(p.requires_grad for p in group.parameters())

    callback.on_train_epoch_start(SimpleNamespace(current_epoch=0), module)
    assert not any(trainable(g) for g in groups) and trainable(net.head)
    callback.on_train_epoch_start(SimpleNamespace(current_epoch=1), module)
    assert not trainable(groups[0]) and not groups[0].training
    assert all(trainable(g) for g in groups[1:]) and trainable(net.head)


def test_encoder_masking_skips_batches_shorter_than_a_mask_span() -> None:
    net = create_audio_classifier("wav2vec2_tiny", 3, mask_time_prob=0.5).train()  # 5% -> 50%
    net.encoder.config.mask_time_length = 50
    short = 0.1 * torch.randn(2, 400)  # 20 frames < a 50-frame mask span
    assert net(short, torch.tensor([400, 300])).shape == (2, 3)
    net(0.1 * torch.randn(2, 4000), torch.tensor([4000, 3000])).sum().backward()  # long enough: masked as usual


def test_masking_can_be_turned_on_for_an_encoder_built_without_it(tmp_path: Path) -> None:
    from transformers import Wav2Vec2Model

    config = load_speech_encoder("wav2vec2_tiny").config
    config.mask_time_prob = 0.0  # transformers then builds no mask embedding
    Wav2Vec2Model(config).save_pretrained(tmp_path / "unmasked")
    net = create_ctc_model(str(tmp_path / "unmasked"), 5, mask_time_prob=0.2).train()
    logits, _ = net(0.1 * torch.randn(2, 4000), torch.tensor([4000, 3000]))
    logits.sum().backward()
    assert net.encoder.masked_spec_embed.grad is not None
