"""Any torchvision classifier: its taps per family (read with hooks on one forward pass), weights
from a file or by their published name, found offline or named with where to put them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.configs import oxford_overrides
from helpers.fixtures_official import write_oxford

from ncl.jobs.evaluate import run_evaluation
from ncl.models import BackboneSpec, WeightsNotFoundError, create_backbone
from ncl.models.backbone import MAP_TAP

X = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("arch", "shapes"),
    [
        ("resnet18", {"conv": (512, 7, 7), "pool": (512,), "logits": (1000,)}),
        ("mobilenet_v3_small", {"conv": (576, 7, 7), "pool": (1024,), "logits": (1000,)}),
        ("mnasnet0_5", {"conv": (1280, 7, 7), "pool": (1280,), "logits": (1000,)}),
        (
            "vit_b_32",
            {
                "conv": (768, 7, 7),
                "cls": (768,),
                "tokens": (768,),
                "pool": (768,),
                "logits": (1000,),
            },
        ),
    ],
)
def test_each_family_has_its_documented_taps(arch, shapes):
    net = create_backbone("torchvision", pretrained=False, arch=arch).eval()
    with torch.inference_mode():
        codes = net.codes(X, list(shapes))
        logits = net.net(X)
        head = net.head(codes["pool"])  # pool is what the head reads
    assert {t: tuple(c.shape[1:]) for t, c in codes.items()} == shapes
    assert net.tap_dims == {t: s[0] for t, s in shapes.items() if t != MAP_TAP}
    torch.testing.assert_close(codes["logits"], logits)
    torch.testing.assert_close(head, logits)


def test_resnet_conv_is_the_map_its_pooling_reads():
    net = create_backbone("torchvision", pretrained=False, arch="resnet18").eval()
    body = torch.nn.Sequential(*list(net.net.children())[:-2])
    with torch.inference_mode():
        torch.testing.assert_close(net.codes(X, ["conv"])["conv"], body(X))


def test_mobilenet_v2_published_weights_ship_in_a_wheel_and_match_the_registered_network():
    spec = BackboneSpec("mobilenet_v2", source="torchvision", weights="IMAGENET1K_V1")
    assert spec.stored_name == "torchvision-mobilenet_v2-IMAGENET1K_V1"
    net, registered = spec.build().eval(), create_backbone("mobilenet_v2").eval()
    with torch.inference_mode():
        torch.testing.assert_close(net.codes(X, ["pool"]), registered.codes(X, ["pool"]))
    assert (net.input_size, net.mean) == (224, (0.485, 0.456, 0.406))


def test_a_state_dict_file_gives_identical_codes(tmp_path):
    torch.manual_seed(3)
    trained = create_backbone("torchvision", pretrained=False, arch="resnet18").eval()
    path = tmp_path / "w.pt"
    torch.save(
        {"state_dict": {f"backbone.net.{k}": v for k, v in trained.net.state_dict().items()}}, path
    )
    loaded = BackboneSpec("resnet18", source="torchvision", weights=str(path)).build().eval()
    with torch.inference_mode():
        torch.testing.assert_close(loaded.codes(X, ["pool"]), trained.codes(X, ["pool"]))


def test_missing_or_unknown_weights_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(
        WeightsNotFoundError,
        match=r"mobilenet_v2-7ebf99e0\.pth.*torch/hub/checkpoints.*IMAGENET1K_V1 ships",
    ):
        BackboneSpec("mobilenet_v2", source="torchvision").build()
    with pytest.raises(ValueError, match="no weights 'IMAGENET9K'; it has IMAGENET1K_V1"):
        BackboneSpec("resnet18", source="torchvision", weights="IMAGENET9K").build()
    with pytest.raises(ValueError, match="no classification network 'resnet7'"):
        BackboneSpec("resnet7", source="torchvision").build()


def test_evaluate_runs_on_a_torchvision_backbone_with_a_pooled_map(cfg_evaluate, tmp_path):
    oxford = write_oxford(tmp_path / "oxford5k", images_per_landmark=4, n_other=2)
    overrides = oxford_overrides(
        oxford.root, "model=torchvision", "model.name=resnet18", "model.pretrained=false"
    )
    cfg = cfg_evaluate([*overrides, "pooling=gem", "taps=[conv]"])
    run_evaluation(cfg)
    results = json.loads((Path(cfg.paths.output_dir) / "results.json").read_text())
    assert results["model"] == "torchvision-resnet18-random-init"
    assert (results["rows"][0]["tap"], results["rows"][0]["dim"]) == ("conv-gem3", 512)
