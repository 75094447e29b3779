"""Losses over tuples (query, positive, n negatives), built from one distance and one per-tuple
rule, in the spirit of pytorch-metric-learning: a new loss is a `tuple_loss` of a few lines.

`TupleLoss` takes the descriptors of a batch of tuples (B x (2 + n) x D), measures the query's
distance to its positive (B) and to each negative (B x n) with its `distance`, and averages the
subclass's per-tuple loss over the batch:

- `ContrastiveLoss` (cirtorch; Hadsell et al. 2006): ½ d(q, p)² + ½ Σᵢ max(0, m - d(q, nᵢ))², on
  Euclidean distances of L2-normalised descriptors (m ≈ 0.7-0.85 for GeM);
- `TripletLoss` (cirtorch's form): Σᵢ max(0, m + d(q, p)² - d(q, nᵢ)²), squared distances.

cirtorch sums over the pairs of a whole batch; the mean over tuples used here is that sum divided
by the number of tuples, so the learning rate does not depend on the batch size.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn


class EuclideanDistance(nn.Module):
    """‖a - b‖ along the last dimension (`squared`: ‖a - b‖²)."""

    def __init__(self, squared: bool = False) -> None:
        super().__init__()
        self.squared = squared

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        d2 = (a - b).pow(2).sum(dim=-1)
        # the gradient of sqrt at 0 is infinite: a query identical to its positive gives NaN
        return d2 if self.squared else d2.clamp(min=1e-12).sqrt()


class TupleLoss(nn.Module, ABC):
    """The mean over a batch of tuples of `tuple_loss(d(q, p), d(q, negatives))`."""

    def __init__(self, margin: float, distance: nn.Module | None = None) -> None:
        super().__init__()
        self.margin = float(margin)
        self.distance = distance or self.default_distance()

    def default_distance(self) -> nn.Module:
        return EuclideanDistance()

    def forward(self, tuples: Tensor) -> Tensor:
        """`tuples`: B x (2 + n) x D descriptors, each row (query, positive, negatives...)."""
        if tuples.dim() != 3 or tuples.shape[1] < 3:
            raise ValueError(
                f"tuples must be B x (2 + n) x D with n >= 1 negatives, got {tuple(tuples.shape)}"
            )
        query = tuples[:, :1]
        positive = self.distance(query[:, 0], tuples[:, 1])
        negatives = self.distance(query, tuples[:, 2:])
        return self.tuple_loss(positive, negatives).mean()

    @abstractmethod
    def tuple_loss(self, positive: Tensor, negatives: Tensor) -> Tensor:
        """The loss of each tuple (B) from d(q, p) (B) and d(q, nᵢ) (B x n)."""


class ContrastiveLoss(TupleLoss):
    """½ d(q, p)² + ½ Σᵢ max(0, m - d(q, nᵢ))²: positives pulled together, negatives pushed
    beyond the margin (those already beyond it cost nothing)."""

    def __init__(self, margin: float = 0.7, distance: nn.Module | None = None) -> None:
        super().__init__(margin, distance)

    def tuple_loss(self, positive: Tensor, negatives: Tensor) -> Tensor:
        pushed = torch.relu(self.margin - negatives).pow(2).sum(dim=1)
        return 0.5 * (positive.pow(2) + pushed)


class TripletLoss(TupleLoss):
    """Σᵢ max(0, m + d(q, p) - d(q, nᵢ)) on squared distances: each negative at least m farther
    than the positive."""

    def __init__(self, margin: float = 0.1, distance: nn.Module | None = None) -> None:
        super().__init__(margin, distance)

    def default_distance(self) -> nn.Module:
        return EuclideanDistance(squared=True)

    def tuple_loss(self, positive: Tensor, negatives: Tensor) -> Tensor:
        return torch.relu(self.margin + positive[:, None] - negatives).sum(dim=1)
