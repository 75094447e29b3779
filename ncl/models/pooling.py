"""Poolings of a convolutional map (B x C x H x W) into a global code (B x C).

The paper's codes are fully connected activations; the field moved to pooled convolutional maps
(see DESIGN.md, "Beyond the paper"), which keep the spatial layout out of the code and so are
robust to where the object is in the image. Each pooling is a small module with a `name` that
goes into the code's tap name (`conv-gem3`), so codes of two poolings never share a code set:

- `SPoC` (Babenko & Lempitsky 2015): the mean over positions;
- `MAC`: the maximum over positions;
- `GeM` (Radenović et al. 2018): the generalised mean (mean of x^p)^(1/p), p = 1 is SPoC and
  p -> infinity MAC; `p` is a parameter so that metric learning can learn it;
- `RMAC` (Tolias et al. 2016): MAC over square regions at `levels` scales, each region
  L2-normalised, summed, L2-normalised (without the per-region PCA-whitening of the paper).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

# R-MAC: neighbouring regions overlap by about this fraction of their side (Tolias et al.)
RMAC_OVERLAP = 0.4
# ... and the long side of a map holds 1 to 6 more regions than the short side
RMAC_EXTRA_STEPS = range(2, 8)


class Pooling(nn.Module, ABC):
    """A map B x C x H x W -> a code B x C. `name` identifies the pooling and its parameters."""

    @property
    @abstractmethod
    def name(self) -> str:
        """A short name for tap names and the cache, e.g. `gem3`, `rmac3`."""

    @property
    def arguments(self) -> dict[str, Any]:
        """The constructor's arguments as plain values (a checkpoint stores them, see
        `pooling_config`); a learned parameter's trained value is in the state dict."""
        return {}


class SPoC(Pooling):
    """Sum-pooled convolutional features: the mean over positions (the sum up to a constant,
    which the L2 normalisation before search removes)."""

    @property
    def name(self) -> str:
        return "spoc"

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(-2, -1))


class MAC(Pooling):
    """Maximum activation of convolutions: the largest value of each channel."""

    @property
    def name(self) -> str:
        return "mac"

    def forward(self, x: Tensor) -> Tensor:
        return x.amax(dim=(-2, -1))


class GeM(Pooling):
    """Generalised mean: (mean over positions of max(x, eps)^p)^(1/p), per channel.

    The clamp keeps a fractional power defined (maps after a ReLU are >= 0 anyway). `p` is an
    `nn.Parameter` so that training can learn it; the name carries its current value.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        if not p > 0:
            raise ValueError(f"pooling.p must be positive, got {p!r}")
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    @property
    def name(self) -> str:
        return f"gem{self.p.item():g}"

    @property
    def arguments(self) -> dict[str, Any]:
        return {"p": float(self.p.item()), "eps": self.eps}

    def forward(self, x: Tensor) -> Tensor:
        p = self.p.to(x.dtype)
        return x.clamp(min=self.eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


def rmac_regions(height: int, width: int, levels: int) -> list[tuple[int, int, int]]:
    """The R-MAC regions of a `height` x `width` map as (top, left, side), Tolias et al.'s
    `rmac_regions.m`: at level l = 1..`levels` squares of side floor(2 min(H, W) / (l + 1)),
    l of them along the short side and l + k along the long one, k chosen once so that
    neighbours overlap by about 40%, spread evenly from edge to edge."""
    short, long = min(height, width), max(height, width)
    extra = 0
    if long > short:
        overlaps = {s: 1 - (long - short) / (s - 1) / short for s in RMAC_EXTRA_STEPS}
        extra = min(RMAC_EXTRA_STEPS, key=lambda s: abs(overlaps[s] - RMAC_OVERLAP)) - 1
    extra_w, extra_h = (extra, 0) if width > height else (0, extra)
    regions = []
    for level in range(1, levels + 1):
        side = math.floor(2 * short / (level + 1))
        if side == 0:
            continue
        rows = _region_starts(height, level + extra_h, side)
        columns = _region_starts(width, level + extra_w, side)
        regions += [(y, x, side) for y in rows for x in columns]
    return regions


def _region_starts(length: int, n: int, side: int) -> list[int]:
    """Where `n` regions of `side` start along `length`, first and last at the edges (as
    `rmac_regions.m` rounds: centres floored, then shifted back by half a side)."""
    half = math.floor(side / 2 - 1)
    step = 0.0 if n == 1 else (length - side) / (n - 1)
    return [math.floor(half + i * step) - half for i in range(n)]


class RMAC(Pooling):
    """Regional MAC: MAC of every region of `rmac_regions`, each L2-normalised, summed, L2."""

    def __init__(self, levels: int = 3) -> None:
        super().__init__()
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"pooling.levels must be a positive integer, got {levels!r}")
        self.levels = levels

    @property
    def name(self) -> str:
        return f"rmac{self.levels}"

    @property
    def arguments(self) -> dict[str, Any]:
        return {"levels": self.levels}

    def forward(self, x: Tensor) -> Tensor:
        regions = rmac_regions(x.shape[-2], x.shape[-1], self.levels)
        total = sum(
            F.normalize(x[..., y : y + s, left : left + s].amax(dim=(-2, -1)), dim=-1)
            for y, left, s in regions
        )
        return F.normalize(total, dim=-1)


POOLINGS: dict[str, type[Pooling]] = {cls.__name__: cls for cls in (SPoC, MAC, GeM, RMAC)}


def pooling_config(pooling: Pooling) -> dict[str, Any]:
    """`{"type": class name, **arguments}`: a pooling as plain values, for a checkpoint's
    hyper-parameters (which must load with `torch.load(weights_only=True)`)."""
    return {"type": type(pooling).__name__, **pooling.arguments}


def pooling_from_config(config: Mapping[str, Any]) -> Pooling:
    """The pooling `pooling_config` described."""
    kind = config.get("type")
    if kind not in POOLINGS:
        raise ValueError(f"unknown pooling type {kind!r}; known: {', '.join(POOLINGS)}")
    return POOLINGS[kind](**{k: v for k, v in config.items() if k != "type"})
