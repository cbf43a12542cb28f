"""The CIFAR speed recipe's parts: device-held batches (coverage, augmentation, eval), speedrun_net, the DataModule.

The recipe itself (train, test, ONNX/TorchScript parity) runs in tests/test_recipes.py with speedrun_net_tiny.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning.fabric.utilities.data import _set_sampler_epoch
from PIL import Image

from recipezoo.core.errors import ConfigError, PretrainedError
from recipezoo.vision.data import DeviceBatches, DeviceTorchvisionDataModule
from recipezoo.vision.models import create_model
from recipezoo.vision.task import ImageClassifier
from recipezoo.vision.transforms import eval_transform

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def _images(n: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def _batches(n: int, batch_size: int, **kwargs) -> DeviceBatches:
    # Targets are the example indices, so a batch says exactly which examples it holds.
    return DeviceBatches(_images(n), torch.arange(n), batch_size, MEAN, STD, **kwargs)


def _normalised(u8: torch.Tensor) -> torch.Tensor:  # (B, H, W, C) uint8 -> what the eval transform gives
    x = u8.permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def _dm(**kwargs) -> DeviceTorchvisionDataModule:
    defaults = dict(
        backbone="speedrun_net_tiny",
        image_size=16,
        resize_size=16,
        mean=MEAN,
        std=STD,
        batch_size=32,
        val_fraction=0.1,
        synthetic=True,
        synthetic_size=400,
    )
    dm = DeviceTorchvisionDataModule(**{**defaults, **kwargs})
    dm.setup("fit")
    return dm


def test_train_epoch_covers_every_example_once_in_a_seeded_order() -> None:
    loader = _batches(96, 16, train=True, seed=3, translate=2, hflip=0.5)
    assert len(loader) == 6
    epochs = []
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == 6
        for x, y in batches:
            assert x.shape == (16, 3, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
            assert x.is_contiguous(memory_format=torch.channels_last)
        order = torch.cat([y for _, y in batches])
        assert sorted(order.tolist()) == list(range(96))  # each example exactly once
        epochs.append(order)
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled every epoch
    # Seeded by seed + epoch: another loader, or Lightning's set_epoch hook, replays an epoch exactly.
    again = _batches(96, 16, train=True, seed=3, translate=2, hflip=0.5)
    _set_sampler_epoch(again, 1)
    replay = list(again)
    assert torch.equal(torch.cat([y for _, y in replay]), epochs[1])
    loader.set_epoch(1)
    assert torch.equal(next(iter(loader))[0], replay[0][0])  # the augmentation too


def test_train_drops_only_a_partial_last_batch_and_ranks_share_the_epoch() -> None:
    loader = _batches(100, 16, train=True)
    order = torch.cat([y for _, y in loader])
    assert len(loader) == 6 and len(order) == 96 and len(set(order.tolist())) == 96
    small = _batches(10, 16, train=True)  # fewer examples than a batch: one batch of all of them
    assert len(small) == 1 and sorted(next(iter(small))[1].tolist()) == list(range(10))
    ranks = [torch.cat([y for _, y in _batches(100, 10, train=True, rank=r, world_size=2)]) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 50
    assert not set(ranks[0].tolist()) & set(ranks[1].tolist())  # disjoint shares of one shuffled order


def _candidates(u8: torch.Tensor, translate: int, mode: str) -> list[torch.Tensor]:
    """Every shift and flip of one (H, W, C) image, by padding and cropping (the reference definition)."""
    h, w, _ = u8.shape
    padded = F.pad(u8.permute(2, 0, 1)[None].float(), [translate] * 4, mode=mode)[0].permute(1, 2, 0)
    out = []
    for dy in range(2 * translate + 1):
        for dx in range(2 * translate + 1):
            crop = padded[dy : dy + h, dx : dx + w]
            out += [crop, crop.flip(1)]
    return out


@pytest.mark.parametrize("mode", ["reflect", "constant"])
def test_augmentation_shifts_and_flips_images_and_keeps_labels(mode: str) -> None:
    images = _images(64)
    loader = DeviceBatches(images, torch.arange(64), 64, MEAN, STD, train=True, translate=2, hflip=0.5, pad_mode=mode)
    x, y = next(iter(loader))
    expected = _normalised(images[y])
    changed = (x - expected).abs().amax(dim=(1, 2, 3)) > 1e-5
    assert changed.float().mean() > 0.8  # 49 of 50 shift/flip combinations change the pixels
    for i in range(64):  # every image is one shift/flip of its own example (labels travel with images)
        got = x[i]
        options = [_normalised(c[None].to(torch.uint8))[0] for c in _candidates(images[y[i]], 2, mode)]
        assert min(float((got - o).abs().max()) for o in options) < 1e-5


def test_eval_batches_are_in_order_and_unaugmented() -> None:
    images = _images(50)
    loader = DeviceBatches(images, torch.arange(50), 16, MEAN, STD, train=False, translate=2, hflip=1.0)
    assert len(loader) == 4  # the last, partial batch is kept
    for _ in range(2):
        batches = list(loader)
        assert [len(y) for _, y in batches] == [16, 16, 16, 2]
        x = torch.cat([b for b, _ in batches])
        assert torch.equal(torch.cat([y for _, y in batches]), torch.arange(50))
        assert torch.allclose(x, _normalised(images), atol=1e-5)


def test_datamodule_splits_info_and_loaders() -> None:
    dm = _dm()
    sizes = {s: len(t[1]) for s, t in dm.tensors.items()}
    assert sizes == {"train": 360, "val": 40, "test": 80}  # val carved from train; test a fifth of train
    assert dm.info["num_classes"] == 10 and dm.info["labels"] == [f"class_{i}" for i in range(10)]
    assert dm.info["in_chans"] == 3
    assert dm.info["preprocessing"]["crop_size"] == 16 and dm.info["preprocessing"]["mean"] == MEAN
    val_labels = dm.tensors["val"][1]
    assert torch.bincount(val_labels, minlength=10).tolist() == [4] * 10  # stratified
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 3, 16, 16) and y.shape == (32,) and int(y.max()) < 10
    assert len(dm.train_dataloader()) == 360 // 32
    xv, _ = next(iter(dm.val_dataloader()))
    assert torch.allclose(xv, _normalised(dm.tensors["val"][0][:32]), atol=1e-5)
    assert sum(len(yb) for _, yb in dm.eval_dataloader("train")) == 360

    whole = _dm(val_fraction=0.0)  # the speed-benchmark protocol: all of train, validate on test
    assert len(whole.tensors["train"][1]) == 400
    assert whole.tensors["val"] is whole.tensors["test"]


def test_datamodule_preprocesses_like_the_eval_transform() -> None:
    """Data stored at another size or mode is brought to the preprocessing once, as the PIL eval transform does."""
    dm = _dm()
    data = _images(4, size=32, seed=1)
    held = dm._to_preprocessed(data)  # 32x32 -> resize 16, crop 16
    assert held.shape == (4, 16, 16, 3) and held.dtype == torch.uint8
    ref = torch.stack([eval_transform(dm.preprocessing)(Image.fromarray(a.numpy())) for a in data])
    ours = _normalised(held)
    assert (ours - ref).abs().mean() < 0.02  # tensor and PIL antialiased resizing agree to rounding

    gray = _dm(mode="L", mean=[0.5], std=[0.25])
    assert gray.info["in_chans"] == 1 and next(iter(gray.train_dataloader()))[0].shape[1] == 1
    rgb = _images(3, size=16, seed=2)
    pil = np.stack([np.asarray(Image.fromarray(a.numpy()).convert("L")) for a in rgb])
    assert np.array_equal(gray._to_preprocessed(rgb)[..., 0].numpy(), pil)  # exactly PIL's "L"


def test_datamodule_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="scale"):
        DeviceTorchvisionDataModule(backbone="speedrun_net", synthetic=True, augment={"scale": [0.5, 1]})
    with pytest.raises(ConfigError, match="pad_mode"):
        DeviceTorchvisionDataModule(backbone="speedrun_net", synthetic=True, augment={"pad_mode": "wrap"})
    with pytest.raises(ConfigError, match="synthetic_size"):
        DeviceTorchvisionDataModule(backbone="speedrun_net", synthetic=True, synthetic_size=3)


def test_speedrun_net_shapes_blocks_and_weights() -> None:
    net = create_model("speedrun_net", num_classes=10)
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert net.head is net.model.fc and len(net.layer_groups()) == 4  # stem + 3 blocks
    assert [m.out_channels for m in net.model.modules() if isinstance(m, torch.nn.Conv2d)] == [
        32,
        64,
        64,
        256,
        256,
        256,
        256,
    ]
    tiny = create_model("speedrun_net_tiny", num_classes=3, in_chans=1)
    assert tiny(torch.randn(2, 1, 16, 16)).shape == (2, 3)
    with pytest.raises(PretrainedError, match="no published weights"):
        create_model("speedrun_net", num_classes=10, pretrained=True)


def test_speedrun_net_learns_the_synthetic_twin() -> None:
    torch.manual_seed(0)
    dm = _dm()
    module = ImageClassifier(
        create_model("speedrun_net_tiny", 10), 10, functools.partial(torch.optim.SGD, lr=0.2), label_smoothing=0.2
    )
    opt = torch.optim.SGD(module.parameters(), lr=0.2, momentum=0.9, nesterov=True)
    losses = []
    for _ in range(8):
        for batch in dm.train_dataloader():
            loss = module.loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    assert np.mean(losses[-11:]) < 0.7 * np.mean(losses[:3])  # last epoch against the first steps
    module.eval()
    with torch.no_grad():
        correct = sum(int((module(x).argmax(-1) == y).sum()) for x, y in dm.val_dataloader())
    assert correct / len(dm.tensors["val"][1]) > 0.5  # chance: 0.1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_are_made_on_the_trainers_device() -> None:
    from types import SimpleNamespace

    dm = _dm()
    dm.trainer = SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device("cuda", 0)), global_rank=0, world_size=1
    )
    x, y = next(iter(dm.train_dataloader()))
    assert x.device.type == y.device.type == "cuda"
    assert dm.tensors["train"][0].device.type == "cuda"  # held there once
