"""Pooled convolutional codes: SPoC, MAC, GeM, R-MAC of the `conv` tap, multi-scale codes, and
their names in the code store and in results."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers.configs import oxford_overrides
from helpers.fixtures_official import write_oxford
from helpers.images import write_jpeg
from torch.nn import functional as F

from ncl.codes.extraction import Extraction, ExtractionSettings
from ncl.codes.store import CodeStore
from ncl.data.images import folder_image_set
from ncl.jobs.evaluate import run_evaluation
from ncl.models import create_backbone
from ncl.models.descriptor import Descriptor
from ncl.models.pooling import MAC, RMAC, GeM, SPoC, rmac_regions

SETTINGS = ExtractionSettings(batch_size=4, num_workers=0, shard_size=4, progress=False)
MULTI = (1.0, 0.7071, 0.5)


@pytest.fixture
def feature_map() -> torch.Tensor:
    """A non-negative map (as after a ReLU), float64 so that large powers stay exact."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 5, 6, 7, generator=g, dtype=torch.float64) + 0.05


def test_gem_with_p_1_is_spoc(feature_map: torch.Tensor) -> None:
    torch.testing.assert_close(GeM(p=1.0)(feature_map), SPoC()(feature_map))


def test_gem_with_large_p_approaches_mac(feature_map: torch.Tensor) -> None:
    mac = MAC()(feature_map)
    errors = [(GeM(p=p)(feature_map) - mac).abs().max().item() for p in (3, 30, 300)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.02
    assert (GeM(p=300)(feature_map) <= mac + 1e-12).all()  # a mean never exceeds the maximum


def test_gem_p_is_a_learnable_parameter_and_named() -> None:
    gem = GeM(p=3.0)
    assert [name for name, _ in gem.named_parameters()] == ["p"]
    assert (gem.name, GeM(p=2.5).name, RMAC().name, SPoC().name, MAC().name) == (
        "gem3",
        "gem2.5",
        "rmac3",
        "spoc",
        "mac",
    )
    with pytest.raises(ValueError, match=r"pooling\.p must be positive"):
        GeM(p=0)


def test_rmac_regions_by_hand() -> None:
    # 3 x 4 map, 2 levels: the short side 3; one extra region along the long side gives an
    # overlap of 2/3, the closest of 2..7 regions to 40%. Level 1: side floor(2*3/2) = 3 at
    # x = 0, 1; level 2: side floor(2*3/3) = 2, 2 rows x 3 columns, step (4 - 2) / 2 = 1.
    assert rmac_regions(3, 4, 2) == [
        (0, 0, 3),
        (0, 1, 3),
        *[(y, x, 2) for y in (0, 1) for x in (0, 1, 2)],
    ]
    # the transpose swaps the axes
    assert sorted(rmac_regions(4, 3, 2)) == sorted((x, y, s) for y, x, s in rmac_regions(3, 4, 2))
    # square 3 x 3, 3 levels: 1 + 4 + 9 regions of sides 3, 2, 1 covering the map
    assert [s for *_, s in rmac_regions(3, 3, 3)] == [3] + [2] * 4 + [1] * 9
    assert {(y, x) for y, x, s in rmac_regions(3, 3, 3) if s == 1} == {
        (y, x) for y in range(3) for x in range(3)
    }


def test_rmac_by_hand() -> None:
    # channel 0 is 1 at the bottom-right position only, channel 1 is 1 everywhere: a region's
    # MAC is (1, 1) / sqrt 2 after L2 where it covers (2, 3), else (0, 1). Of the 8 regions of
    # the 3 x 4 map, (0, 1, 3) and (1, 2, 2) cover it: sum = (sqrt 2, sqrt 2 + 6), then L2.
    x = torch.zeros(1, 2, 3, 4)
    x[0, 0, 2, 3] = 1.0
    x[0, 1] = 1.0
    expected = torch.tensor([[math.sqrt(2), math.sqrt(2) + 6]])
    torch.testing.assert_close(RMAC(levels=2)(x), expected / expected.norm())


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("alexnet", (256, 13, 13)),
        ("alexnet_tv", (256, 13, 13)),
        ("efficientnet_lite0", (1280, 7, 7)),
        ("mobilenet_v2", (1280, 7, 7)),
    ],
)
def test_conv_tap_is_the_last_map(name: str, shape: tuple[int, int, int]) -> None:
    backbone = create_backbone(name, pretrained=False).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        codes = backbone.codes(x, ["conv", next(iter(backbone.tap_dims))])
        pooled = Descriptor(RMAC()).codes(backbone, x, ["conv"])
    assert tuple(codes["conv"].shape) == (2, *shape)
    assert (codes["conv"] >= 0).all()  # after the activation
    assert tuple(pooled["conv-rmac3"].shape) == (2, shape[0])
    if name.startswith("alexnet"):  # pool5 of conv5 is l5
        l5 = F.max_pool2d(codes["conv"], 3, 2).flatten(1)
        torch.testing.assert_close(codes["l5"], l5)
    else:  # the pooled tap is SPoC of conv
        torch.testing.assert_close(codes["pool"], SPoC()(codes["conv"]))


def test_maps_are_never_codes_and_scales_apply_to_pooled_maps_only() -> None:
    with pytest.raises(ValueError, match=r"tap 'conv' is a C x H x W .* select a pooling"):
        Descriptor().code_names(["conv"])
    with pytest.raises(ValueError, match=r"extraction.scales=\[1.0, 0.5\] .* tap 'l6'"):
        Descriptor(GeM(), (1, 0.5)).code_names(["conv", "l6"])
    with pytest.raises(ValueError, match=r"pooling gem3 pools the 'conv' tap, .* \['pool'\]"):
        Descriptor(GeM()).code_names(["pool"])
    with pytest.raises(ValueError, match=r"extraction\.scales must be positive and distinct"):
        ExtractionSettings(scales=[1, 1])
    assert Descriptor(GeM()).code_names(["conv", "pool"]) == ["conv-gem3", "pool"]
    assert Descriptor(MAC(), MULTI).code_name("conv") == "conv-mac-ms1_0.7071_0.5"


@pytest.fixture
def images(tmp_path):
    for i in range(5):
        write_jpeg(tmp_path / "imgs" / f"im{i}.jpg", size=(60 + 7 * i, 48), seed=i)
    return folder_image_set("toy", tmp_path / "imgs")


def test_multiscale_codes_are_the_mean_of_the_scales_and_stored_apart(images, tmp_path) -> None:
    torch.manual_seed(0)
    net = create_backbone("mobilenet_v2", pretrained=False).eval()
    store = CodeStore(tmp_path / "codes")

    def extract(scales, pooling=None):
        settings = ExtractionSettings(**{**SETTINGS.__dict__, "scales": scales})
        extraction = Extraction(
            images, net, "m", ["conv"], store, settings, pooling=pooling or GeM()
        )
        (codes,) = extraction.run().values()
        return codes

    single, multi = extract([1.0]), extract(MULTI)
    assert (single.path.name, multi.path.name) == ("conv-gem3", "conv-gem3-ms1_0.7071_0.5")
    assert multi.meta["transform"]["resize"] == [[224, 224], [158, 158], [112, 112]]
    assert multi.meta["transform"]["scales"] == list(MULTI)
    assert single.ids == multi.ids == images.names and multi.dim == 1280
    assert not np.allclose(single.codes, multi.codes, atol=1e-3)
    # each scale's code L2-normalised, averaged, L2-normalised
    unit = lambda x: np.asarray(x) / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    parts = [unit(single.codes), unit(extract([0.7071]).codes), unit(extract([0.5]).codes)]
    np.testing.assert_allclose(multi.codes, unit(np.mean(parts, axis=0)), atol=1e-5)
    # another pooling is another code set; the first ones are still current
    assert extract([1.0], MAC()).path.name == "conv-mac"
    key = json.loads((single.path / "meta.json").read_text())["key"]
    assert json.loads((extract([1.0]).path / "meta.json").read_text())["key"] == key


def test_evaluate_with_gem_reports_the_pooled_tap(cfg_evaluate, tmp_path) -> None:
    oxford = write_oxford(tmp_path / "oxford5k", images_per_landmark=4, n_other=2)
    overrides = ["model=mobilenet_v2", "model.pretrained=false", "pooling=gem"]
    cfg = cfg_evaluate(oxford_overrides(oxford.root, *overrides, "taps=[conv,pool,conv+pool]"))
    run_evaluation(cfg)
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert [(r["tap"], r["dim"]) for r in rows] == [
        ("conv-gem3", 1280),
        ("pool", 1280),
        ("conv-gem3+pool", 1280),
    ]
    stored = tmp_path / "data" / "codes" / "mobilenet_v2-random-init" / "oxford5k"
    assert {"conv-gem3", "pool"} <= {p.name for p in stored.iterdir()}


def test_evaluate_refuses_scales_for_fully_connected_taps(cfg_evaluate) -> None:
    cfg = cfg_evaluate(["pooling=gem", "taps=[conv,pool]", "extraction.scales=[1,0.5]"])
    with pytest.raises(ValueError, match=r"extraction.scales=\[1.0, 0.5\] applies to the pooled"):
        run_evaluation(cfg)
