"""Weight files written by another library: tensors paired by order and shape, ``backbone.key_map`` renames, and
the error that shows both sides' keys when neither works.

Everything is offline: the "other library" files are state dicts of tiny models made here, saved with every key
renamed into another naming scheme.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from recipezoo.core.errors import ConfigError, PretrainedError
from recipezoo.core.pretrained import load_into, parse_key_map, rename_keys
from recipezoo.train import build
from recipezoo.vision.models import Classifier, create_model
from tests.conftest import TINY, compose_config


def other_library(key: str) -> str:
    """convnet_tiny's keys as another library would name them: ``features.1.0.weight`` -> ``encoder.stage1.conv.
    weight``, ``features.1.1.bias`` -> ``encoder.stage1.norm.bias``, ``fc.weight`` -> ``logits.weight``."""
    parts = key.split(".")
    if parts[0] == "fc":
        return "logits." + parts[1]
    stage, layer, param = parts[1], parts[2], parts[3]
    return f"encoder.stage{stage}.{'conv' if layer == '0' else 'norm'}.{param}"


def renamed_file(
    path: Path,
    source: nn.Module,
    rename: Callable[[str], str] = other_library,
    keep: Callable[[str], bool] = lambda k: True,
    order: Callable[[list[str]], list[str]] = lambda keys: keys,
) -> Path:
    """Save ``source``'s state dict with every key renamed (``keep`` filters keys, ``order`` reorders them)."""
    state = source.state_dict()
    torch.save({rename(k): state[k].clone() for k in order([k for k in state if keep(k)])}, path)
    return path


@pytest.fixture
def source() -> Classifier:
    """The network the file was trained as: convnet_tiny with 10 classes."""
    torch.manual_seed(0)
    net = create_model("convnet_tiny", num_classes=10)
    with torch.no_grad():  # BatchNorm statistics that differ from a fresh model's, so loading them is visible
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return net


def assert_same_backbone(model: Classifier, source: Classifier, head: str = "fc") -> None:
    """Every tensor outside the head (BatchNorm counters aside) equals the source's."""
    own, ref = model.model.state_dict(), source.model.state_dict()
    body = [k for k in own if k.split(".")[0] != head and not k.endswith("num_batches_tracked")]
    assert body
    for k in body:
        assert torch.equal(own[k], ref[k]), f"{k} was not loaded from the file"


# ------------------------------------------------------------------------------------------------------------
# (a) names differ, tensors pair by order and shape


@pytest.mark.parametrize("with_head", [True, False], ids=["with-head", "without-head"])
@pytest.mark.parametrize("with_counters", [True, False], ids=["with-counters", "without-counters"])
def test_renamed_file_loads_by_order_and_shape(
    tmp_path: Path, source: Classifier, caplog: pytest.LogCaptureFixture, with_head: bool, with_counters: bool
) -> None:
    def keep(k: str) -> bool:
        return (with_head or not k.startswith("fc.")) and (with_counters or not k.endswith("num_batches_tracked"))

    path = renamed_file(tmp_path / "other.pth", source.model, keep=keep)
    with caplog.at_level(logging.INFO, logger="recipezoo.core.pretrained"):
        model = create_model("convnet_tiny", num_classes=3, pretrained=str(path))
    assert_same_backbone(model, source)
    assert tuple(model.head.weight.shape) == (3, 16)  # the new label count, freshly initialised
    log = caplog.text
    assert "matched to the model's by order and shape" in log
    assert "encoder.stage0.conv.weight -> features.0.0.weight" in log
    assert "Classifier head re-initialised" in log


def test_same_label_count_loads_the_files_head_too(tmp_path: Path, source: Classifier) -> None:
    path = renamed_file(tmp_path / "other.pth", source.model)
    model = create_model("convnet_tiny", num_classes=10, pretrained=str(path))
    for k, v in source.model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(model.model.state_dict()[k], v), k


def test_load_into_reports_the_pairs(source: Classifier) -> None:
    state = {other_library(k): v for k, v in source.model.state_dict().items()}
    model = create_model("convnet_tiny", num_classes=4).model
    report = load_into(model, state, head_prefixes=("fc",))
    pairs = dict(report["matched_by_order"])
    assert pairs["encoder.stage1.norm.running_var"] == "features.1.1.running_var"
    assert pairs["logits.weight"] == "fc.weight"  # paired, then re-initialised: 10 classes in the file, 4 here
    assert report["head_reinitialised"] == ["fc.weight", "fc.bias"]
    assert report["unexpected"] == []


def test_timm_model_under_other_names_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ref = create_model("timm:test_efficientnet", num_classes=10)
    keys = list(ref.model.state_dict())
    index = {k: i for i, k in enumerate(keys)}

    def flat(k: str) -> str:  # one flat, numbered name per tensor: another library's layout
        return f"lib.t{index[k]}.{k.rsplit('.', 1)[-1]}"

    path = renamed_file(tmp_path / "effnet.pth", ref.model, rename=flat)
    model = create_model("timm:test_efficientnet", num_classes=3, pretrained=str(path))
    assert_same_backbone(model, ref, head=ref.head_name)


# ------------------------------------------------------------------------------------------------------------
# (b) an explicit key map


def reversed_order(keys: list[str]) -> list[str]:
    return keys[::-1]  # order pairing cannot work: only the names can


@pytest.mark.parametrize(
    "key_map",
    [
        [["encoder.stage0.conv.", "features.0.0."], ["encoder.stage0.norm.", "features.0.1."],
         ["encoder.stage1.conv.", "features.1.0."], ["encoder.stage1.norm.", "features.1.1."], ["logits.", "fc."]],
        {"encoder.stage0.conv.": "features.0.0.", "encoder.stage0.norm.": "features.0.1.",
         "encoder.stage1.conv.": "features.1.0.", "encoder.stage1.norm.": "features.1.1.", "logits.": "fc."},
        [[r"re:^encoder\.stage(\d)\.conv\.", r"features.\1.0."], [r"re:^encoder\.stage(\d)\.norm\.", r"features.\1.1."],
         ["logits.", "fc."]],
        # entries apply in turn: each renames what the ones before it made
        [["encoder.stage", "features."], ["re:\\.conv\\.", ".0."], ["re:\\.norm\\.", ".1."], ["logits.", "fc."]],
    ],
    ids=["prefix-pairs", "prefix-mapping", "regex", "chained"],
)  # fmt: skip
def test_key_map_loads_a_file_in_another_order(tmp_path: Path, source: Classifier, key_map: object) -> None:
    path = renamed_file(tmp_path / "other.pth", source.model, order=reversed_order)
    with pytest.raises(PretrainedError):  # neither names nor order fit without the map
        create_model("convnet_tiny", num_classes=3, pretrained=str(path))
    model = create_model("convnet_tiny", num_classes=3, pretrained=str(path), key_map=key_map)
    assert_same_backbone(model, source)


def test_key_map_and_order_pairing_together(tmp_path: Path, source: Classifier) -> None:
    """A map that fixes only the head's name: the rest still pairs by order."""
    path = renamed_file(tmp_path / "other.pth", source.model)
    model = create_model("convnet_tiny", num_classes=10, pretrained=str(path), key_map=[["logits.", "fc."]])
    assert_same_backbone(model, source)
    assert torch.equal(model.head.weight, source.head.weight)


def test_key_map_forms() -> None:
    pair = [["a.", "b."]]
    assert parse_key_map(None) == parse_key_map([]) == parse_key_map({}) == []
    assert parse_key_map(pair) == parse_key_map({"a.": "b."}) == parse_key_map(["a.", "b."])
    assert parse_key_map([{"a.": "b."}]) == parse_key_map(pair)
    state = {"a.x": torch.zeros(1), "_c._d.y": torch.ones(1)}
    renamed = rename_keys(state, [["a.", ""], ["re:(^|\\.)_", "\\1"]])
    assert list(renamed) == ["x", "c.d.y"]
    assert rename_keys(state, [["a.", None]]).keys() == {"x", "_c._d.y"}  # null: drop the prefix


@pytest.mark.parametrize(
    "bad, says",
    [
        ("features.", "not understood"),
        ([["a.", "b.", "c."]], "not an [old, new] pair"),
        ([["", "b."]], "not an [old, new] pair"),
        ([["re:(unclosed", "x"]], "not a valid regular expression"),
        ([["re:^(a)\\.", "\\2."]], "invalid group reference 2"),
    ],
)
def test_malformed_key_map_is_a_config_error(bad: object, says: str) -> None:
    with pytest.raises(ConfigError, match="backbone.key_map") as e:
        create_model("convnet_tiny", num_classes=3, key_map=bad)
    assert says in str(e.value)


def test_key_map_that_merges_two_keys_is_refused(tmp_path: Path, source: Classifier) -> None:
    path = renamed_file(tmp_path / "other.pth", source.model)
    with pytest.raises(PretrainedError, match="same name: encoder.stage0.conv.weight and encoder.stage1.conv.weight"):
        create_model("convnet_tiny", num_classes=3, pretrained=str(path), key_map=[["re:stage\\d", "stage"]])


def test_key_map_entry_that_renames_nothing_is_warned(
    tmp_path: Path, source: Classifier, caplog: pytest.LogCaptureFixture
) -> None:
    path = renamed_file(tmp_path / "other.pth", source.model)
    with caplog.at_level(logging.WARNING, logger="recipezoo.core.pretrained"):
        create_model("convnet_tiny", num_classes=3, pretrained=str(path), key_map=[["typo.", "fc."]])
    assert "'typo.' renamed no key" in caplog.text


# ------------------------------------------------------------------------------------------------------------
# (c) refused: the keys of both sides shown


def test_file_in_another_shape_order_is_refused_showing_both_sides(tmp_path: Path, source: Classifier) -> None:
    def swap_convs(keys: list[str]) -> list[str]:  # the two conv weights, (8, 3, 3, 3) and (16, 8, 3, 3), swapped
        i, j = keys.index("features.0.0.weight"), keys.index("features.1.0.weight")
        keys[i], keys[j] = keys[j], keys[i]
        return keys

    path = renamed_file(tmp_path / "other.pth", source.model, order=swap_convs)
    with pytest.raises(PretrainedError) as e:
        create_model("convnet_tiny", num_classes=3, pretrained=str(path))
    line = " ".join(str(e.value).split())  # as the command line prints it: one line
    assert "another architecture" in line
    assert "the file's keys: encoder.stage1.conv.weight (16, 8, 3, 3)" in line
    assert "the model's keys: features.0.0.weight (8, 3, 3, 3)" in line
    assert "do not pair by order and shape either: tensor 1 of the file" in line
    assert 'backbone.key_map=\'[["encoder.stage1.conv.","features.0.0."]]\'' in line  # written from the keys shown


def test_names_the_model_has_must_pair_with_themselves() -> None:
    """Same shapes throughout, but the file's own names say its order is not the model's: refused, not swapped."""
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2))
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    state = {"1.weight": a.weight, "z.bias": a.bias, "y.weight": b.weight, "x.bias": b.bias}
    with pytest.raises(PretrainedError, match="the file's 1.weight would load into the model's 0.weight"):
        load_into(model, state, head_prefixes=("2",), map_option="backbone.key_map")


def test_keys_sorted_by_name_are_not_paired_by_order(tmp_path: Path, source: Classifier) -> None:
    """safetensors files store keys sorted by name: their order is not the network's."""
    path = tmp_path / "other.safetensors"
    save_file({other_library(k): v.contiguous() for k, v in source.model.state_dict().items()}, path)
    with pytest.raises(PretrainedError, match="sorted by name"):
        create_model("convnet_tiny", num_classes=3, pretrained=str(path))


def test_file_for_another_architecture_is_still_refused(tmp_path: Path) -> None:
    small = create_model("convnet_small", num_classes=10).model
    path = renamed_file(tmp_path / "small.pth", small, rename=lambda k: "other/" + k)
    with pytest.raises(PretrainedError) as e:
        create_model("convnet_tiny", num_classes=3, pretrained=str(path))
    msg = str(e.value)
    assert "another architecture" in msg
    assert "the file has 32 tensors, the model 10 (and 2 in its classifier head)" in msg
    # and a file of another network under the model's own library names, as before
    tiny = tmp_path / "tiny.pth"
    torch.save(create_model("convnet_tiny", 10).model.state_dict(), tiny)
    with pytest.raises(PretrainedError, match="another architecture") as e:
        create_model("resnet18", num_classes=3, pretrained=str(tiny))
    assert "missing conv1.weight" in str(e.value)


# ------------------------------------------------------------------------------------------------------------
# (d) through the config train.py composes


def test_renamed_file_through_the_recipe_config(tmp_path: Path, source: Classifier) -> None:
    path = renamed_file(tmp_path / "other.pth", source.model)
    cfg = compose_config(["+recipe=vision/imagefolder_finetune", *TINY, f"backbone.pretrained={path}"], tmp_path / "a")
    assert cfg.backbone.key_map is None
    _, module = build(cfg)
    assert_same_backbone(module.net, source)


def test_key_map_from_the_command_line(tmp_path: Path, source: Classifier) -> None:
    """The override as the README writes it: a list of [old, new] pairs, regex groups as \\1."""
    path = renamed_file(tmp_path / "other.pth", source.model, order=reversed_order)
    key_map = (
        r'[["re:^encoder\.stage(\d)\.conv\.","features.\1.0."],'
        r'["re:^encoder\.stage(\d)\.norm\.","features.\1.1."],[logits.,fc.]]'
    )
    overrides = [
        "+recipe=vision/imagefolder_finetune",
        *TINY,
        f"backbone.pretrained={path}",
        f"backbone.key_map={key_map}",
    ]
    _, module = build(compose_config(overrides, tmp_path / "run"))
    assert_same_backbone(module.net, source)


def test_config_without_key_map_still_builds(tmp_path: Path, source: Classifier) -> None:
    """A checkpoint's saved config predates backbone.key_map: its model node has no key_map and must still build."""
    from hydra.utils import instantiate
    from omegaconf import open_dict

    path = renamed_file(tmp_path / "other.pth", source.model)
    cfg = compose_config(["+recipe=vision/imagefolder_finetune", *TINY, f"backbone.pretrained={path}"], tmp_path / "a")
    with open_dict(cfg):
        del cfg.backbone.key_map
        del cfg.model.net.key_map
        cfg.data_info = {"num_classes": 3, "in_chans": 3}
    net = instantiate(cfg.model.net)
    assert_same_backbone(net, source)
