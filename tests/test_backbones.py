"""The shared backbone doors: ``pretrained`` parsed once into a typed value, the Hugging Face encoder door in
``core.backbones.hf`` used by text, speech and recommendation, and no domain reaching into another for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from recipezoo.core.errors import ConfigError, PretrainedError
from recipezoo.core.pretrained import Pretrained, parse_pretrained
from tests.conftest import tiny_bert


# -- parse_pretrained ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [None, False, 0, "", "false", "False", "FALSE", "none", "None", "null", " false "])
def test_no_weights_spellings(value: object) -> None:
    p = parse_pretrained(value)
    assert p == Pretrained("none") and p.off and not p.from_hub and p.ref is None and p.path is None
    assert str(p) == "false"


@pytest.mark.parametrize("value", [True, 1, "true", "True", "TRUE"])
def test_default_weights_spellings(value: object) -> None:
    p = parse_pretrained(value)
    assert p == Pretrained("default") and p.from_hub and not p.off and p.ref is None and str(p) == "true"


@pytest.mark.parametrize(
    "value",
    [
        "IMAGENET1K_V1",  # a torchvision weights name
        "ResNet18_Weights.IMAGENET1K_V2",
        "a1_in1k",  # a timm pretrained tag
        "hf-hub:timm/resnet18.a1_in1k",
        "sentence-transformers/all-MiniLM-L6-v2",  # a Hugging Face repo id
        "facebook/wav2vec2-base",
    ],
)
def test_weights_names_and_hub_ids_are_hub(value: str) -> None:
    p = parse_pretrained(value)
    assert p.kind == "hub" and p.ref == value and str(p) == value and p.from_hub and p.path is None and not p.exists


@pytest.mark.parametrize(
    "value", ["/no/such/weights", "./weights", "../w", "~/models/minilm", "model.safetensors", "w.pth", "run.ckpt"]
)
def test_missing_paths_that_look_like_paths_are_paths(value: str) -> None:
    p = parse_pretrained(value)
    assert p.kind == "path" and p.ref == value and not p.from_hub and not p.exists and not p.weights_file


def test_tilde_is_expanded_in_the_path_but_kept_in_the_reference() -> None:
    p = parse_pretrained("~/models/minilm")
    assert p.ref == "~/models/minilm" and p.path == Path("~/models/minilm").expanduser()


def test_existing_file_or_folder_is_a_path_even_without_a_path_look(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "minilm").mkdir()
    save_file({"w": torch.zeros(2)}, tmp_path / "weights.safetensors")
    (tmp_path / "notes.txt").write_text("x")
    folder = parse_pretrained("minilm")  # would be a hub id if the folder did not exist
    assert folder.kind == "path" and folder.exists and not folder.weights_file
    weights = parse_pretrained(str(tmp_path / "weights.safetensors"))
    assert weights.kind == "path" and weights.exists and weights.weights_file
    assert not parse_pretrained("notes.txt").weights_file  # exists, but not a weights file


def test_pathlike_is_a_path(tmp_path: Path) -> None:
    p = parse_pretrained(tmp_path)
    assert p == Pretrained("path", str(tmp_path)) and p.exists
    assert parse_pretrained(Path("weights")).kind == "path"  # a Path object is always meant as a path


def test_parsing_is_idempotent() -> None:
    for value in (False, True, "IMAGENET1K_V1", "/x.pth"):
        p = parse_pretrained(value)
        assert parse_pretrained(p) is p


@pytest.mark.parametrize("value", [["a"], {"a": 1}, 2.5, 7])
def test_other_types_are_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match="backbone.pretrained=.*not understood"):
        parse_pretrained(value)


# -- the Hugging Face door -----------------------------------------------------------------------------------------
def test_encoder_source_follows_the_parsed_kind(tmp_path: Path) -> None:
    from recipezoo.core.backbones.hf import encoder_source

    name = "sentence-transformers/all-MiniLM-L6-v2"
    for off_or_default in (False, None, "false", "none", True, "true"):
        assert encoder_source(name, off_or_default) == name
    assert encoder_source(name, "org/other") == "org/other"
    assert encoder_source(name, str(tmp_path)) == str(tmp_path)
    assert encoder_source(name, "~/minilm") == str(Path("~/minilm").expanduser())


def test_nlp_models_re_exports_the_door() -> None:
    from recipezoo.core.backbones import hf
    from recipezoo.nlp import models

    for name in ("load_encoder", "load_tokenizer", "load_config", "encoder_source", "embed_texts", "pool"):
        assert getattr(models, name) is getattr(hf, name)
    assert issubclass(models.HFSequenceClassifier, hf.EncoderNet) and models.SentenceEncoder is hf.SentenceEncoder


def test_folder_and_weights_file_load_the_same_encoder(tmp_path: Path) -> None:
    from recipezoo.core.backbones.hf import load_encoder

    folder = tiny_bert()
    from_folder = load_encoder(folder, folder)
    save_file({k: v.contiguous() for k, v in from_folder.state_dict().items()}, tmp_path / "enc.safetensors")
    from_file = load_encoder(folder, tmp_path / "enc.safetensors")  # a Path object: the file into name's config
    for k, v in from_folder.state_dict().items():
        assert torch.equal(v, from_file.state_dict()[k]), k
    assert from_folder.training and from_file.training  # ready for fine-tuning (dropout on)


def test_off_spellings_build_random_weights_from_the_config() -> None:
    from recipezoo.core.backbones.hf import load_encoder

    folder = tiny_bert()
    reference = load_encoder(folder, folder).state_dict()
    for off in (False, "false", "none"):
        torch.manual_seed(1)
        random = load_encoder(folder, off).state_dict()
        assert not all(torch.equal(v, random[k]) for k, v in reference.items())


def test_missing_folder_is_named() -> None:
    from recipezoo.core.backbones.hf import load_encoder

    with pytest.raises(PretrainedError, match="not found: /no/such/folder"):
        load_encoder("bert-base-uncased", "/no/such/folder")


def test_embed_texts_gives_one_normalised_vector_per_text() -> None:
    from recipezoo.core.backbones.hf import embed_texts

    vectors = embed_texts(["a good film", "", "bad"], tiny_bert(), tiny_bert(), batch_size=2)
    assert vectors.shape == (3, 32) and vectors.dtype == torch.float32
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(3), atol=1e-5)


# -- no domain reaches into another for the door -------------------------------------------------------------------
def _modules_after(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; {code}; print('\\n'.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_speech_and_recsys_import_no_nlp_module() -> None:
    loaded = _modules_after(
        "import recipezoo.speech, recipezoo.speech.models, recipezoo.recsys, recipezoo.recsys.models, "
        "recipezoo.recsys.data; from recipezoo.speech.models import create_audio_classifier; "
        "create_audio_classifier('wav2vec2_tiny', 3)"
    )
    assert "recipezoo.core.backbones.hf" in loaded  # the speech encoder came through the shared door...
    assert not [m for m in loaded if m == "recipezoo.nlp" or m.startswith("recipezoo.nlp.")]  # ...not through NLP


def test_backbones_package_is_cheap_and_fraud_never_loads_transformers() -> None:
    loaded = _modules_after("import recipezoo.core.backbones")
    assert not {"torch", "transformers"} & set(loaded)
    loaded = _modules_after("import recipezoo.fraud, recipezoo.fraud.models, recipezoo.core.backbones.hf")
    assert "transformers" not in loaded
