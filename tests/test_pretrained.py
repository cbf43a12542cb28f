"""The pretrained-weights door: local files in every format, wrong files, missing files, offline hubs,
the registry.

Everything is offline: state dicts come from randomly initialised torchvision models written to tmp_path, and
the hub downloads are made to fail deterministically.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from recipezoo.core.errors import ConfigError, PretrainedError
from recipezoo.core.pretrained import load_into, load_state_dict
from recipezoo.vision.models import MODELS, Classifier, create_model, default_preprocessing


class NotATensor:
    """A custom python object pickled into a weights file (what weights_only=True must refuse)."""

    def __init__(self, note: str = "trust me") -> None:
        self.note = note


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    """A torchvision-format ImageNet-shaped resnet18 state dict (1000 classes), randomly initialised."""
    torch.manual_seed(0)
    return {k: v.clone() for k, v in torchvision.models.resnet18(num_classes=1000).state_dict().items()}


def _is_head(key: str) -> bool:
    return key.split(".")[0] == "fc"


def assert_backbone_loaded(model: Classifier, state: dict[str, torch.Tensor], num_classes: int = 4) -> None:
    """Every non-head tensor equals the file's; the head has the new shape and is not the file's."""
    own = model.model.state_dict()
    backbone = [k for k in state if not _is_head(k)]
    assert backbone, "the reference state has no backbone keys"
    missing = [k for k in own if not _is_head(k) and k not in state]
    assert missing == []
    for k in backbone:
        assert torch.equal(own[k], state[k]), f"backbone tensor {k} was not loaded from the file"
    assert model.head is model.model.fc
    assert tuple(model.head.weight.shape) == (num_classes, 512)
    assert tuple(model.head.bias.shape) == (num_classes,)
    assert not torch.equal(model.head.weight, state["fc.weight"][:num_classes])
    # and the model works
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, num_classes)


# ------------------------------------------------------------------------------------------------------------
# (a) local files in every supported format


def test_torchvision_pth_loads_backbone_and_reinitialises_head(tmp_path: Path, resnet18_state) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_state, path)
    model = create_model("resnet18", num_classes=4, pretrained=str(path))
    assert isinstance(model, Classifier)
    assert model.head_name == "fc"
    assert_backbone_loaded(model, resnet18_state)


def test_pathlib_path_is_accepted(tmp_path: Path, resnet18_state) -> None:
    path = tmp_path / "resnet18.pt"
    torch.save(resnet18_state, path)
    assert_backbone_loaded(create_model("resnet18", num_classes=4, pretrained=path), resnet18_state)


def test_load_into_report_lists_loaded_and_reinitialised_head(resnet18_state) -> None:
    model = torchvision.models.resnet18(num_classes=4)
    report = load_into(model, dict(resnet18_state), head_prefixes=("fc",))
    assert report["head_reinitialised"] == ["fc.weight", "fc.bias"]
    assert report["unexpected"] == []
    assert set(report["loaded"]) == {k for k in resnet18_state if not _is_head(k)}


def test_same_label_count_keeps_the_files_head(tmp_path: Path, resnet18_state) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_state, path)
    model = create_model("resnet18", num_classes=1000, pretrained=str(path))
    for k, v in model.model.state_dict().items():
        assert torch.equal(v, resnet18_state[k]), k


def test_safetensors_file(tmp_path: Path, resnet18_state) -> None:
    path = tmp_path / "resnet18.safetensors"
    save_file(resnet18_state, str(path))
    assert_backbone_loaded(create_model("resnet18", num_classes=4, pretrained=str(path)), resnet18_state)


def test_folder_holding_model_safetensors(tmp_path: Path, resnet18_state) -> None:
    folder = tmp_path / "hf_folder"
    folder.mkdir()
    save_file(resnet18_state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text("{}")
    assert_backbone_loaded(create_model("resnet18", num_classes=4, pretrained=str(folder)), resnet18_state)


@pytest.mark.parametrize("prefix", ["model.", "net.model.", "module."])
def test_lightning_checkpoint_with_prefixed_keys(tmp_path: Path, resnet18_state, prefix: str) -> None:
    path = tmp_path / "run.ckpt"
    torch.save(
        {
            "epoch": 3,
            "global_step": 120,
            "pytorch-lightning_version": "2.6.0",
            "state_dict": {prefix + k: v for k, v in resnet18_state.items()},
        },
        path,
    )
    assert load_state_dict(path).keys() == {prefix + k for k in resnet18_state}
    assert_backbone_loaded(create_model("resnet18", num_classes=4, pretrained=str(path)), resnet18_state)


def test_recipezoo_convnet_from_an_earlier_runs_checkpoint(tmp_path: Path) -> None:
    """A recipezoo checkpoint (keys ``net.model.*``) initialises a convnet for a new label count."""
    torch.manual_seed(1)
    old = create_model("convnet_tiny", num_classes=10, in_chans=1)
    path = tmp_path / "best.ckpt"
    torch.save({"state_dict": {"net." + k: v for k, v in old.state_dict().items()}}, path)
    new = create_model("convnet_tiny", num_classes=3, in_chans=1, pretrained=str(path))
    for k, v in new.model.state_dict().items():
        if _is_head(k):
            assert v.shape[0] == 3
        else:
            assert torch.equal(v, old.model.state_dict()[k]), k


# ------------------------------------------------------------------------------------------------------------
# (b) weights of another architecture


def test_file_with_missing_keys_is_refused_listing_them(tmp_path: Path, resnet18_state) -> None:
    """A resnet18 file lacks most of resnet34's blocks."""
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18_state, path)
    with pytest.raises(PretrainedError) as exc:
        create_model("resnet34", num_classes=4, pretrained=str(path))
    msg = str(exc.value)
    assert "another architecture" in msg
    assert "missing layer1.2.conv1.weight" in msg
    assert "80 missing keys" in msg
    assert "more" in msg  # the list is cut short, with a count of the rest


def test_convnet_file_into_resnet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "convnet.pth"
    torch.save(create_model("convnet_tiny", 10).model.state_dict(), path)
    with pytest.raises(PretrainedError) as exc:
        create_model("resnet18", num_classes=4, pretrained=str(path))
    msg = str(exc.value)
    assert "missing conv1.weight" in msg
    assert "unexpected keys" in msg


def test_shape_mismatch_is_refused_listing_the_shapes(tmp_path: Path, resnet18_state) -> None:
    state = dict(resnet18_state)
    state["conv1.weight"] = torch.zeros(64, 1, 7, 7)  # a grayscale stem
    path = tmp_path / "gray_resnet18.pth"
    torch.save(state, path)
    with pytest.raises(PretrainedError) as exc:
        create_model("resnet18", num_classes=4, pretrained=str(path))
    msg = str(exc.value)
    assert "conv1.weight: file (64, 1, 7, 7) vs model (64, 3, 7, 7)" in msg
    assert "another architecture" in msg
    assert "missing" not in msg.split("\n", 1)[1]  # only the one mismatched key is listed


def test_file_of_a_deeper_architecture_is_refused(tmp_path: Path) -> None:
    """A resnet34 file holds every resnet18 key with the right shape, plus 80 more: still the wrong model.

    Loading it would silently give resnet18 the first blocks of each resnet34 stage; the door must refuse it
    and name the keys the model does not have.
    """
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(num_classes=1000).state_dict(), path)
    with pytest.raises(PretrainedError) as exc:
        create_model("resnet18", num_classes=4, pretrained=str(path))
    assert "layer1.2.conv1.weight" in str(exc.value)


# ------------------------------------------------------------------------------------------------------------
# (c) missing files


@pytest.mark.parametrize("missing", ["weights.pth", "sub/model.safetensors", "no_such_folder/"])
def test_missing_path_raises_pretrained_error_naming_it(tmp_path: Path, missing: str) -> None:
    path = str(tmp_path / missing)
    with pytest.raises(PretrainedError) as exc:
        create_model("resnet18", num_classes=3, pretrained=path)
    assert str(Path(path)) in str(exc.value)
    assert "not found" in str(exc.value)


def test_missing_path_for_a_recipezoo_model_says_it_is_missing(tmp_path: Path) -> None:
    """A typo in the path of an earlier run's checkpoint must say the file is missing, not that the model has
    no published weights (the user did pass a local file)."""
    path = str(tmp_path / "runs" / "best.ckpt")
    with pytest.raises(PretrainedError) as exc:
        create_model("convnet_tiny", num_classes=3, pretrained=path)
    assert path in str(exc.value)
    assert "not found" in str(exc.value)


def test_load_state_dict_missing_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(PretrainedError, match="not found"):
        load_state_dict(tmp_path / "nope.pth")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PretrainedError, match="no weights file in folder"):
        load_state_dict(tmp_path / "empty")


def test_file_that_is_not_a_state_dict(tmp_path: Path) -> None:
    garbage = tmp_path / "weights.pth"
    garbage.write_bytes(b"definitely not a pickle")
    with pytest.raises(PretrainedError, match="cannot read weights"):
        load_state_dict(garbage)
    listy = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listy)
    with pytest.raises(PretrainedError, match="does not hold a state dict of tensors"):
        load_state_dict(listy)


# ------------------------------------------------------------------------------------------------------------
# (d) weights_only


def test_pickled_python_object_is_refused_by_default(tmp_path: Path, resnet18_state) -> None:
    path = tmp_path / "untrusted.pth"
    torch.save({"state_dict": resnet18_state, "meta": NotATensor()}, path)
    with pytest.raises(PretrainedError) as exc:
        create_model("resnet18", num_classes=4, pretrained=str(path))
    msg = str(exc.value)
    assert "cannot read weights" in msg
    assert "weights_only" in msg
    assert "backbone.weights_only=false" in msg
    # Explicitly trusting the file loads it.
    model = create_model("resnet18", num_classes=4, pretrained=str(path), weights_only=False)
    assert_backbone_loaded(model, resnet18_state)


# ------------------------------------------------------------------------------------------------------------
# (e) pretrained=true without network


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.mark.parametrize("pretrained", [True, "IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1"])
def test_torchvision_hub_offline_says_how_to_pass_a_local_file(monkeypatch, pretrained) -> None:
    from torchvision.models._api import WeightsEnum

    monkeypatch.setattr(WeightsEnum, "get_state_dict", _no_network)
    with pytest.raises(PretrainedError) as exc:
        create_model("resnet18", num_classes=4, pretrained=pretrained)
    msg = str(exc.value)
    assert "could not download pretrained weights" in msg
    assert "URLError" in msg
    assert "backbone.pretrained=/path/to/weights.pth" in msg


def test_torchvision_unknown_weights_name_lists_the_choices(monkeypatch) -> None:
    from torchvision.models._api import WeightsEnum

    monkeypatch.setattr(WeightsEnum, "get_state_dict", _no_network)
    with pytest.raises(PretrainedError) as exc:
        create_model("resnet18", num_classes=4, pretrained="IMAGENET9K_V9")
    assert "IMAGENET1K_V1" in str(exc.value)


def test_timm_hub_offline_says_how_to_pass_a_local_file(monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PretrainedError) as exc:
        create_model("timm:resnet18", num_classes=4, pretrained=True)
    assert "could not download pretrained weights for timm resnet18" in str(exc.value)
    assert "backbone.pretrained=/path/to/weights.pth" in str(exc.value)


def test_recipezoo_models_have_no_hub_weights() -> None:
    with pytest.raises(PretrainedError, match="no published weights"):
        create_model("convnet_tiny", num_classes=3, pretrained=True)


# ------------------------------------------------------------------------------------------------------------
# (f) the registry


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("in_chans", [1, 3])
def test_every_registered_model_builds_and_runs(name: str, in_chans: int) -> None:
    size = MODELS[name].size
    model = create_model(name, num_classes=3, in_chans=in_chans)
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 3
    groups = model.layer_groups()
    assert len(groups) >= 2
    assert all(model.head is not g for g in groups)
    assert not any(p is q for g in groups for p in g.parameters() for q in model.head.parameters())
    assert model.default_preprocessing["crop_size"] == size
    assert default_preprocessing(name) == {"crop_size": size, "resize_size": size, "mean": None, "std": None}
    with torch.no_grad():
        out = model.eval()(torch.randn(2, in_chans, size, size))
    assert out.shape == (2, 3)
    assert torch.isfinite(out).all()


def test_unknown_backbone_suggests_close_matches() -> None:
    with pytest.raises(ConfigError) as exc:
        create_model("resnet19", num_classes=3)
    msg = str(exc.value)
    assert "unknown backbone 'resnet19'" in msg
    assert "Did you mean" in msg and "resnet18" in msg
    with pytest.raises(ConfigError, match="convnet_tiny"):
        create_model("convnet_tiyn", num_classes=3)


def test_num_classes_below_two_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        create_model("convnet_tiny", num_classes=1)


def test_torchvision_backbone_refuses_grayscale_input() -> None:
    with pytest.raises(ConfigError, match="3-channel"):
        create_model("torchvision:resnet18", num_classes=3, in_chans=1)


def test_timm_model_by_name() -> None:
    model = create_model("timm:resnet18", num_classes=3, in_chans=3)
    assert type(model.model).__module__.startswith("timm.")
    assert isinstance(model.head, nn.Linear) and model.head.out_features == 3
    assert len(model.layer_groups()) >= 4
    assert model.default_preprocessing["crop_size"] == 224
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_timm_model_loads_a_local_file(tmp_path: Path) -> None:
    torch.manual_seed(2)
    import timm

    src = timm.create_model("resnet18", num_classes=10)
    path = tmp_path / "timm_resnet18.safetensors"
    save_file(src.state_dict(), str(path))
    model = create_model("timm:resnet18", num_classes=3, pretrained=str(path))
    for k, v in model.model.state_dict().items():
        if not _is_head(k):
            assert torch.equal(v, src.state_dict()[k]), k
    assert model.head.out_features == 3
