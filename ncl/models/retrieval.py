"""A network trained for retrieval: a backbone's `conv` map, pooled, optionally whitened, L2.

Metric learning (`ncl.metric`) trains the whole descriptor end to end, as cirtorch does: the
pooling (GeM's p is learned) and a whitening layer (a linear map with bias, the learned whitening
Lw of `ncl.compress.whitening` written as one, so training can start from it) belong to the
network. `RetrievalNet` makes them a backbone with one more tap, `global` = the L2-normalised
descriptor, so that a checkpoint of the training module is a backbone like any other:
`python evaluate.py model.name=<run>/checkpoints/last.ckpt taps=[global]` extracts the codes
with the learned pooling and whitening. Every tap of the base network (`conv`, `pool`, its
logits) is still there.

The architecture is plain values (`config`): the base network's registry name and kwargs, the
pooling's `pooling_config` and the whitening's output dimension; the weights (the base's, p, the
whitening) are the state dict.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ncl.models.backbone import MAP_TAP, Backbone, Stage
from ncl.models.pooling import GeM, Pooling, pooling_config, pooling_from_config
from ncl.models.registry import create_backbone, register_backbone

GLOBAL_TAP = "global"
NAME = "retrieval"


class RetrievalNet(Backbone):
    """`base`'s `conv` map -> `pooling` -> L2 -> (`whitening`: linear, d outputs -> L2): the
    `global` tap. `whitening` is the output dimension, or None for none."""

    def __init__(self, base: Backbone, pooling: Pooling, whitening: int | None = None) -> None:
        super().__init__()
        self.base = base
        self.pooling = pooling
        self.mean, self.std, self.input_size = base.mean, base.std, base.input_size
        self.logits_tap = base.logits_tap
        channels = self._channels()
        if whitening is not None and not 1 <= whitening <= channels:
            raise ValueError(
                f"whitening to {whitening} dims: the {base.name} map has {channels} channels"
            )
        self.whitening = None if whitening is None else nn.Linear(channels, whitening)
        self.feature_dims = {**base.feature_dims, GLOBAL_TAP: whitening or channels}
        self.name = NAME

    def _channels(self) -> int:
        """Channels of the base's `conv` map, from one small forward pass."""
        probe = torch.zeros(1, 3, self.input_size, self.input_size)
        was_training = self.base.training
        self.base.eval()
        with torch.no_grad():
            channels = self.base.codes(probe, [MAP_TAP])[MAP_TAP].shape[1]
        self.base.train(was_training)
        return int(channels)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "name": NAME,
            "kwargs": {
                "base": self.base.config["name"],
                "base_kwargs": dict(self.base.config["kwargs"]),
                "pooling": pooling_config(self.pooling),
                "whitening": None if self.whitening is None else self.whitening.out_features,
            },
            "num_classes": self.num_classes,
        }

    def stages(self) -> Sequence[Stage]:
        """Names in order, for `codes`: the base's taps, then `global`."""
        return [*self.base.stages(), (GLOBAL_TAP, nn.Identity())]

    def pooled(self, feature_map: Tensor) -> Tensor:
        """The pooled, L2-normalised map: what the whitening takes (and Lw is fitted on)."""
        return F.normalize(self.pooling(feature_map), dim=-1)

    def describe(self, images: Tensor, whiten: bool = True) -> Tensor:
        """The `global` descriptor of a normalised N x 3 x H x W batch (`whiten=False`: before
        the whitening layer, what it is fitted on)."""
        pooled = self.pooled(self.base.codes(images, [MAP_TAP])[MAP_TAP])
        return self.whiten(pooled) if whiten else pooled

    def whiten(self, pooled: Tensor) -> Tensor:
        if self.whitening is None:
            return pooled
        return F.normalize(self.whitening(pooled), dim=-1)

    def codes(self, images: Tensor, taps: Sequence[str]) -> dict[str, Tensor]:
        known = [name for name, _ in self.stages()]
        unknown = [t for t in taps if t not in known]
        if unknown:
            raise ValueError(f"{NAME}: unknown tap(s) {unknown}; available: {known}")
        wanted = [t for t in taps if t != GLOBAL_TAP]
        if GLOBAL_TAP in taps and MAP_TAP not in wanted:
            wanted.append(MAP_TAP)
        found = self.base.codes(images, wanted)
        if GLOBAL_TAP in taps:
            found[GLOBAL_TAP] = self.whiten(self.pooled(found[MAP_TAP]))
        return {t: found[t] for t in taps}

    def set_whitening(self, mean: np.ndarray, projection: np.ndarray) -> None:
        """Start the whitening layer as x -> projection (x - mean), its leading rows (Lw)."""
        if self.whitening is None:
            raise ValueError("this network has no whitening layer (whitening=null)")
        rows = torch.as_tensor(projection[: self.whitening.out_features], dtype=torch.float32)
        mean_t = torch.as_tensor(mean, dtype=torch.float32)
        with torch.no_grad():
            self.whitening.weight.copy_(rows)
            self.whitening.bias.copy_(-rows @ mean_t)

    @property
    def head(self) -> nn.Linear:
        return self.base.head

    def replace_head(self, head: nn.Linear) -> None:
        self.base.replace_head(head)

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters metric learning adds to the base network: p and the whitening (the
        base's classifier is not trained: it takes no part in the descriptor)."""
        return (p for m in (self.pooling, self.whitening) if m is not None for p in m.parameters())

    def body_parameters(self) -> Iterator[nn.Parameter]:
        """The base network's layers up to its `conv` map (its classifier gets no gradient)."""
        head = {id(p) for p in self.base.head.parameters()}
        return (p for p in self.base.parameters() if id(p) not in head)


@register_backbone(NAME)
def retrieval(
    *,
    pretrained: bool,
    base: str = "efficientnet_lite0",
    base_kwargs: Mapping[str, Any] | None = None,
    pooling: Mapping[str, Any] | None = None,
    whitening: int | None = None,
) -> RetrievalNet:
    """`base` (published weights when `pretrained`) with `pooling` (a `pooling_config`, GeM p=3
    when None) and a whitening layer of `whitening` outputs."""
    net = create_backbone(base, pretrained=pretrained, **dict(base_kwargs or {}))
    return RetrievalNet(net, GeM() if pooling is None else pooling_from_config(pooling), whitening)
