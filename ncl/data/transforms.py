"""Image transforms on decoded uint8 C x H x W tensors (as `torchvision.io.decode_image` gives).

Extraction follows the paper (section 3): the whole image is resized to 224x224 *without
cropping* (the aspect ratio is not kept), then normalised as the backbone was trained. Queries of
Oxford/Paris are first cropped to their bounding box, and Holidays images may be turned upright by
a multiple of 90 degrees; both happen before resizing, in the original image's pixels. Resizing
the uint8 tensor with antialiasing before converting to float is torchvision's fast path.

Fine-tuning uses the classic ImageNet augmentation instead: a random resized crop and a
horizontal flip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.transforms import v2

BBox = tuple[float, float, float, float]


def extraction_transform(
    mean: Sequence[float], std: Sequence[float], size: int = 224
) -> v2.Compose:
    """uint8 image -> float size x size image normalised with `mean`, `std`; nothing cropped."""
    return v2.Compose(
        [
            v2.Resize((size, size), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )


def training_transform(
    mean: Sequence[float],
    std: Sequence[float],
    size: int = 224,
    scale: tuple[float, float] = (0.08, 1.0),
) -> v2.Compose:
    """uint8 image -> a random crop (`scale` of the area) resized to `size`, maybe flipped."""
    return v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=scale, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )


def crop_box(image: Tensor, bbox: BBox) -> Tensor:
    """The pixels of `image` (... x H x W) covered by `bbox` = (x1, y1, x2, y2), in pixels.

    Every pixel the box touches is kept (the float box is rounded outwards), the box is clipped to
    the image, and at least one pixel remains.
    """
    height, width = image.shape[-2:]
    x1, y1, x2, y2 = bbox
    if x2 < x1 or y2 < y1:
        raise ValueError(f"bounding box {bbox} is not (x1, y1, x2, y2) with x1 <= x2, y1 <= y2")
    left = min(max(math.floor(x1), 0), width - 1)
    top = min(max(math.floor(y1), 0), height - 1)
    right = max(min(math.ceil(x2), width), left + 1)
    bottom = max(min(math.ceil(y2), height), top + 1)
    return image[..., top:bottom, left:right]


def rotate90(image: Tensor, degrees: int) -> Tensor:
    """`image` (... x H x W) rotated counter-clockwise by `degrees`, a multiple of 90."""
    if degrees % 90:
        raise ValueError(f"rotation by {degrees} degrees: only multiples of 90 are supported")
    return torch.rot90(image, k=(degrees // 90) % 4, dims=(-2, -1))
