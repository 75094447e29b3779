"""Global-pooled ImageNet classifiers (EfficientNet-Lite, MobileNetV2) as backbones.

For these networks the "pre-logits" features *are* the pooled features (one linear layer follows),
so there are three taps: `conv` = the last convolutional block's map (1280 x 7 x 7 at 224; a
pooling turns it into codes), `pool` = that map global-average-pooled (1280-d), and `logits`. The wrapped network keeps its own module names, so its published weights load as they
are. `pooled` includes the network's dropout before the last layer: in eval mode (extraction)
dropout is an identity, in training mode the last layer sees what it always saw.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

from torch import Tensor, nn

from ncl.models.backbone import Backbone, Stage


class PooledClassifier(Backbone):
    """`net`, split as `feature_map` -> `pooled` (pool, dropout) -> the linear layer
    `net.<head_name>`."""

    def __init__(
        self,
        net: nn.Module,
        head_name: str,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ) -> None:
        super().__init__()
        self.net = net
        self._head_name = head_name
        self.mean, self.std = mean, std
        self.feature_dims = {"pool": self.head.in_features}

    @abstractmethod
    def feature_map(self, images: Tensor) -> Tensor:
        """N x 1280 x H x W: the last convolutional block, before global pooling."""

    @abstractmethod
    def pooled(self, feature_map: Tensor) -> Tensor:
        """N x 1280: `feature_map` globally pooled as the classifier sees it."""

    def stages(self) -> Sequence[Stage]:
        return (("conv", self.feature_map), ("pool", self.pooled), ("logits", self.head))

    @property
    def head(self) -> nn.Linear:
        return self.net.get_submodule(self._head_name)

    def replace_head(self, head: nn.Linear) -> None:
        self.net.set_submodule(self._head_name, head)
