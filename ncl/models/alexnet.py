"""AlexNet, the network of the paper, and torchvision's variant of it.

Taps (the paper's neural codes, section 3): `conv` = conv5 after its ReLU, before pool5, the
256 x 13 x 13 map (at 224) that a pooling turns into codes; `l5` = pool5 flattened (256 x 6 x 6 = 9216-d), `l6`,
`l7` = fc6, fc7 outputs *before* their ReLU (4096-d), `l8` = the logits.

`alexnet` is the paper's Fig. 1 (Krizhevsky et al. 2012): 96-256-384-384-256 filters, ReLU and
local response normalisation after conv1 and conv2 (size 5, alpha 1e-4, beta 0.75, k 2, with
PyTorch's/Caffe's alpha / size scaling), max pooling after conv1, conv2, conv5; without the
two-GPU filter groups. Its weights come from `train.py` (no ImageNet weights for it exist
offline). `alexnet_tv` is torchvision's "one weird trick" AlexNet (64-192-384-256-256, no LRN),
with torchvision's parameter names so that its ImageNet file (`alexnet-owt-7be5be79.pth`) loads
as it is. Both keep torchvision's layout: dropout before fc6 and fc7 (training only), and an
adaptive 6x6 average pool that is an identity at 224x224 and lets other sizes through.

The classifier's ReLUs are not in place: the stage before them is kept as a code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ncl.models.backbone import Backbone, Stage
from ncl.models.registry import register_backbone
from ncl.models.weights import WeightsNotFoundError, hub_checkpoint, load_state_dict

TORCHVISION_WEIGHTS = "alexnet-owt-7be5be79.pth"


def _features(widths: Sequence[int], lrn: bool) -> nn.Sequential:
    """Five convolutions of `widths` filters (11x11 stride 4, 5x5, then three 3x3), each with a
    ReLU, local response normalisation after the first two when `lrn`, max pooling after conv1,
    conv2 and conv5: the paper's network and torchvision's differ only in these two arguments
    (and the module indices stay torchvision's where there is no LRN)."""
    shapes = [(11, 4, 2), (5, 1, 2), (3, 1, 1), (3, 1, 1), (3, 1, 1)]
    layers: list[nn.Module] = []
    channels = 3
    for i, (width, (kernel, stride, padding)) in enumerate(zip(widths, shapes, strict=True)):
        layers += [nn.Conv2d(channels, width, kernel, stride, padding), nn.ReLU(inplace=True)]
        if lrn and i < 2:
            layers.append(nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0))
        if i in (0, 1, 4):
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
        channels = width
    return nn.Sequential(*layers)


class AlexNet(Backbone):
    """Convolutional `features` ending in 256 x 6 x 6, then fc6 - fc7 - fc8."""

    logits_tap = "l8"

    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.feature_dims = {"l5": 256 * 6 * 6, "l6": 4096, "l7": 4096}
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Linear(4096, num_classes),
        )

    def _conv5(self, images: Tensor) -> Tensor:
        """conv1 .. conv5 and its ReLU: every layer of `features` but the last, pool5."""
        x = images
        for layer in self.features[:-1]:
            x = layer(x)
        return x

    def _pool5(self, conv5: Tensor) -> Tensor:
        return torch.flatten(self.avgpool(self.features[-1](conv5)), 1)

    def stages(self) -> Sequence[Stage]:
        c = self.classifier
        return (
            ("conv", self._conv5),
            ("l5", self._pool5),
            ("l6", lambda x: c[1](c[0](x))),
            ("l7", lambda x: c[4](c[3](c[2](x)))),
            ("l8", lambda x: c[6](c[5](x))),
        )

    @property
    def head(self) -> nn.Linear:
        return self.classifier[6]

    def replace_head(self, head: nn.Linear) -> None:
        self.classifier[6] = head


@register_backbone("alexnet", has_weights=False)
def alexnet(*, pretrained: bool, dropout: float = 0.5) -> AlexNet:
    """The paper's AlexNet, randomly initialised: its weights come from `train.py`."""
    if pretrained:
        raise WeightsNotFoundError(
            "no ImageNet weights exist for the paper's AlexNet ('alexnet'): train it with "
            "train.py and pass the checkpoint path as the backbone name "
            "(e.g. model.name=outputs/.../checkpoints/last.ckpt), or use pretrained=False"
        )
    return AlexNet(_features((96, 256, 384, 384, 256), lrn=True), dropout=dropout)


@register_backbone("alexnet_tv")
def alexnet_tv(*, pretrained: bool, dropout: float = 0.5) -> AlexNet:
    """torchvision's AlexNet; ImageNet weights from the torch hub cache when `pretrained`."""
    model = AlexNet(_features((64, 192, 384, 256, 256), lrn=False), dropout=dropout)
    if pretrained:
        path = hub_checkpoint(TORCHVISION_WEIGHTS)
        if not path.is_file():
            raise WeightsNotFoundError(
                f"alexnet_tv: ImageNet weights {TORCHVISION_WEIGHTS} not found; put the file "
                f"(torchvision's AlexNet_Weights.IMAGENET1K_V1) in {path.parent}, "
                "or use pretrained=False"
            )
        model.load_state_dict(load_state_dict(path), strict=True)
    return model
