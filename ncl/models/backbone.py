"""The interface every network offers: a classifier that can also hand out its neural codes.

A backbone is a chain of *stages*, each ending at a named tap (lowest layer first, the logits
last). `codes` runs the chain once, up to the highest tap asked for, so several layers cost one
forward pass and a request without the logits never runs the classifier. `forward` is the same
chain to its end, so the module trains as a plain classifier and the codes come from exactly the
layers that were trained.

Stages must not modify their input in place: the previous stage's output may be kept as a code.

Every network has a `conv` tap, its last convolutional map before any global pooling. It comes
out of `codes` as the B x C x H x W map, not flattened: it is never a code itself, a pooling
(`ncl.models.pooling`) makes codes of it (`ncl.models.descriptor`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

Stage = tuple[str, Callable[[Tensor], Tensor]]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# the tap of every network's last convolutional map (B x C x H x W), pooled into codes
MAP_TAP = "conv"


class Backbone(nn.Module, ABC):
    """A network with named layer taps.

    Subclasses set `mean`, `std` (the normalisation the network was trained with) and
    `feature_dims` (the dimension of every tap but the logits, lowest layer first), and provide
    `stages`, `head` and `replace_head`. `create_backbone` stamps `name` and `arch_kwargs` so that
    `config` can rebuild the architecture.
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: int = 224
    logits_tap: str = "logits"
    feature_dims: Mapping[str, int]

    def __init__(self) -> None:
        super().__init__()
        self.name: str | None = None
        self.arch_kwargs: dict[str, Any] = {}

    @abstractmethod
    def stages(self) -> Sequence[Stage]:
        """(tap name, function) pairs; each function maps the previous stage's output to its own."""

    @property
    @abstractmethod
    def head(self) -> nn.Linear:
        """The last layer, the one `reset_classifier` replaces."""

    @abstractmethod
    def replace_head(self, head: nn.Linear) -> None:
        """Put `head` where the last layer is."""

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    @property
    def tap_dims(self) -> dict[str, int]:
        """Tap name -> code dimension, from the lowest layer to the logits (the `conv` map is
        not a code: its pooled codes have as many dimensions as it has channels)."""
        return {**self.feature_dims, self.logits_tap: self.num_classes}

    @property
    def config(self) -> dict[str, Any]:
        """What `create_backbone` needs to rebuild this architecture (weights not included)."""
        if self.name is None:
            raise RuntimeError(
                f"{type(self).__name__} was not built by create_backbone: it has no registry name"
            )
        return {
            "name": self.name,
            "kwargs": dict(self.arch_kwargs),
            "num_classes": self.num_classes,
        }

    def forward(self, images: Tensor) -> Tensor:
        """Logits of a normalised N x 3 x H x W batch."""
        return self.codes(images, [self.logits_tap])[self.logits_tap]

    def codes(self, images: Tensor, taps: Sequence[str]) -> dict[str, Tensor]:
        """The requested taps, each flattened to N x dim (the `conv` map kept N x C x H x W),
        from one forward pass."""
        stages = self.stages()
        order = [name for name, _ in stages]
        unknown = [t for t in taps if t not in order]
        if unknown:
            raise ValueError(f"{self.name}: unknown tap(s) {unknown}; available: {order}")
        if not taps:
            return {}
        last = max(order.index(t) for t in taps)
        wanted = set(taps)
        found: dict[str, Tensor] = {}
        x = images
        for name, stage in stages[: last + 1]:
            x = stage(x)
            if name in wanted:
                found[name] = x if name == MAP_TAP else torch.flatten(x, 1)
        return {t: found[t] for t in taps}

    def reset_classifier(self, num_classes: int) -> None:
        """A freshly initialised last layer with `num_classes` outputs (for fine-tuning)."""
        old = self.head
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        self.replace_head(new.to(device=old.weight.device, dtype=old.weight.dtype))

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """The last layer's parameters (typically given a higher learning rate when fine-tuning)."""
        return self.head.parameters()

    def body_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter that is not the last layer's."""
        head = {id(p) for p in self.head.parameters()}
        return (p for p in self.parameters() if id(p) not in head)
