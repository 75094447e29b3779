"""Crop boxes and quarter turns, on numpy arrays and torch tensors alike, without importing torch.

Neural codes (torch tensors in the data loader) and local features (numpy images in SIFT worker
processes, which should not pay for importing torch) must see the same query crop and the same
upright image; both take these functions.
"""

from __future__ import annotations

import math
from typing import TypeVar

BBox = tuple[float, float, float, float]
Image = TypeVar("Image")  # a numpy array or a torch tensor, ... x H x W


def crop_box(image: Image, bbox: BBox) -> Image:
    """The pixels of `image` (... x H x W) covered by `bbox` = (x1, y1, x2, y2), in pixels.

    Every pixel the box touches is kept (the float box is rounded outwards), the box is clipped to
    the image, and at least one pixel remains.
    """
    height, width = image.shape[-2:]  # type: ignore[attr-defined]
    x1, y1, x2, y2 = bbox
    if x2 < x1 or y2 < y1:
        raise ValueError(f"bounding box {bbox} is not (x1, y1, x2, y2) with x1 <= x2, y1 <= y2")
    left = min(max(math.floor(x1), 0), width - 1)
    top = min(max(math.floor(y1), 0), height - 1)
    right = max(min(math.ceil(x2), width), left + 1)
    bottom = max(min(math.ceil(y2), height), top + 1)
    return image[..., top:bottom, left:right]  # type: ignore[index]


def quarter_turns(degrees: int) -> int:
    """How many counter-clockwise quarter turns (0..3) a rotation by `degrees` is."""
    if degrees % 90:
        raise ValueError(f"rotation by {degrees} degrees: only multiples of 90 are supported")
    return (degrees // 90) % 4
