"""How a network's taps become the codes that are stored: the `conv` map pooled, at one scale or
several.

A `Descriptor` names each code set after what made it, so that two settings never share one: a
plain tap keeps its name (`l6`, `pool`), the `conv` map pooled by a pooling is
`conv-<pooling>` (`conv-gem3`, `conv-rmac3`, `conv-spoc`), and at several scales
`conv-<pooling>-ms<scales>` (`conv-gem3-ms1_0.7071_0.5`). A network tap never contains `-`, so
the code name's first part is always the tap it comes from (`network_tap`).

Multi-scale (`scales`, relative to the network's input size): each image is decoded once and
resized once per scale; the pooled code of every scale is L2-normalised, the codes are averaged
and L2-normalised again (the plain mean of cirtorch's multi-scale test, its `msp` = 1). Only the
pooled map has a natural code at another size: the fully connected taps (and `pool`, `logits`)
are defined at the input size the network was trained at, so they refuse scales other than [1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ncl.models.backbone import MAP_TAP, Backbone
from ncl.models.pooling import Pooling

POOLINGS = "pooling=spoc | mac | gem | rmac"


def network_tap(code_name: str) -> str:
    """The network tap a code name comes from: `conv-gem3` -> `conv`, `l6` -> `l6`."""
    return code_name.split("-", 1)[0]


def check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    """`scales` as a tuple of floats; not empty, positive, no repeats (`extraction.scales`)."""
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence):
        raise ValueError(f"extraction.scales must be a list of numbers, got {scales!r}")
    if not scales or any(isinstance(s, bool) or not isinstance(s, (int, float)) for s in scales):
        raise ValueError(f"extraction.scales must be a non-empty list of numbers, got {scales!r}")
    out = tuple(float(s) for s in scales)
    if any(s <= 0 for s in out) or len(set(out)) < len(out):
        raise ValueError(f"extraction.scales must be positive and distinct, got {list(scales)}")
    return out


@dataclass(frozen=True, eq=False)
class Descriptor:
    """Codes of a network's taps: the `conv` map pooled by `pooling`, computed at `scales` of
    the network's input size (each scale's code L2-normalised, averaged, L2-normalised)."""

    pooling: Pooling | None = None
    scales: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", check_scales(self.scales))

    @property
    def multiscale(self) -> bool:
        return self.scales != (1.0,)

    def code_name(self, tap: str) -> str:
        """The stored name of `tap`'s codes (a code name is taken as the tap it names)."""
        tap = network_tap(tap)
        if tap != MAP_TAP:
            if self.multiscale:
                raise ValueError(
                    f"extraction.scales={list(self.scales)} applies to the pooled `{MAP_TAP}` tap "
                    f"only; tap {tap!r} is defined at the network's input size alone: drop it "
                    f"from taps or set extraction.scales=[1.0]"
                )
            return tap
        if self.pooling is None:
            raise ValueError(
                f"tap {MAP_TAP!r} is a C x H x W feature map, never stored as it is: "
                f"select a pooling ({POOLINGS})"
            )
        name = f"{tap}-{self.pooling.name}"
        if self.multiscale:
            name += "-ms" + "_".join(f"{s:g}" for s in self.scales)
        return name

    def code_names(self, taps: Sequence[str]) -> list[str]:
        """`code_name` of every tap; a pooling must have a `conv` tap to pool."""
        names = [self.code_name(t) for t in taps]
        if self.pooling is not None and MAP_TAP not in map(network_tap, taps):
            raise ValueError(
                f"pooling {self.pooling.name} pools the {MAP_TAP!r} tap, which taps "
                f"{list(taps)} do not include: add it (taps=[{MAP_TAP}]) or select pooling=none"
            )
        return names

    def inputs(self, tap: str) -> dict[str, Any]:
        """What the cache key of `tap`'s codes adds to the network's: nothing for a plain tap at
        one scale (the key of codes made before poolings existed), else the pooling and scales."""
        if network_tap(tap) != MAP_TAP:
            return {}
        assert self.pooling is not None
        return {"pooling": self.pooling.name, "scales": list(self.scales)}

    def sizes(self, input_size: int) -> list[int]:
        """The square side of the image at every scale (scale 1: the network's input size)."""
        return [max(1, round(input_size * s)) for s in self.scales]

    def codes(
        self, backbone: Backbone, images: Tensor | Sequence[Tensor], taps: Sequence[str]
    ) -> dict[str, Tensor]:
        """Code name -> N x dim codes of `taps`, from one batch per scale (or one tensor)."""
        module = self.module(backbone, taps)
        batches = [images] if isinstance(images, Tensor) else list(images)
        return self.combine(taps, [module(x) for x in batches])

    def module(self, backbone: Backbone, taps: Sequence[str]) -> ScaleCodes:
        """`backbone`'s codes of `taps` at one scale as one module (what an inference engine
        compiles or exports)."""
        taps = [network_tap(t) for t in taps]
        for tap in taps:
            self.code_name(tap)  # a map without a pooling is refused here
        return ScaleCodes(backbone, taps, self.pooling)

    def combine(
        self, taps: Sequence[str], per_scale: Sequence[Sequence[Tensor]]
    ) -> dict[str, Tensor]:
        """Code name -> codes, from `ScaleCodes`' outputs (codes of `taps` in order) at every
        scale: one scale's as they are, several averaged after L2 and L2-normalised again."""
        if len(per_scale) != len(self.scales):
            raise ValueError(f"{len(per_scale)} image batches for {len(self.scales)} scales")
        names = [self.code_name(t) for t in taps]
        if len(per_scale) == 1:
            return dict(zip(names, per_scale[0], strict=True))
        return {
            name: F.normalize(
                torch.stack([F.normalize(codes[i], dim=-1) for codes in per_scale]).mean(0),
                dim=-1,
            )
            for i, name in enumerate(names)
        }


class ScaleCodes(nn.Module):
    """Images (N x 3 x H x W, one scale) -> the codes of `taps` (a tuple, in order): the
    network up to its highest tap and the pooling of its `conv` map, as one module, so that an
    engine (`ncl.codes.engines`) compiles or exports all of what makes the codes."""

    def __init__(self, backbone: Backbone, taps: Sequence[str], pooling: Pooling | None) -> None:
        super().__init__()
        self.backbone = backbone
        self.taps = list(taps)
        self.pooling = pooling

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        codes = self.backbone.codes(images, self.taps)
        if MAP_TAP in codes:
            assert self.pooling is not None
            codes[MAP_TAP] = self.pooling(codes[MAP_TAP])
        return tuple(codes[t] for t in self.taps)
