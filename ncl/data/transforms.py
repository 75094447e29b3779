"""Image transforms on decoded uint8 C x H x W tensors (as `torchvision.io.decode_image` gives).

Extraction follows the paper (section 3): the whole image is resized to 224x224 *without
cropping* (the aspect ratio is not kept), then normalised as the backbone was trained. Queries of
Oxford/Paris are first cropped to their bounding box, and Holidays images may be turned upright by
a multiple of 90 degrees; both happen before resizing, in the original image's pixels. Resizing
the uint8 tensor with antialiasing before converting to float is torchvision's fast path.

Multi-scale extraction decodes an image once and resizes it once per scale (`MultiScale`).

Fine-tuning uses the classic ImageNet augmentation instead: a random resized crop and a
horizontal flip.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.transforms import v2

from ncl.io.geometry import BBox, crop_box, quarter_turns

__all__ = [
    "BBox",
    "MultiScale",
    "crop_box",
    "extraction_transform",
    "rotate90",
    "training_transform",
]


def contiguous(image: Tensor) -> Tensor:
    return image.contiguous()


def extraction_transform(
    mean: Sequence[float], std: Sequence[float], size: int = 224
) -> v2.Compose:
    """uint8 image -> float size x size image normalised with `mean`, `std`; nothing cropped.

    A decoded image is a channels-last view (H x W x C memory) and so is its resized copy; the
    conversion and normalisation run slower on those strides, so the small resized image is made
    contiguous first: the same values in less of a loader worker's time
    (`python -m benchmarks.extraction --transform`)."""
    return v2.Compose(
        [
            v2.Resize((size, size), antialias=True),
            v2.Lambda(contiguous),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )


class MultiScale:
    """uint8 image -> one `extraction_transform` of it per size in `sizes` (a tuple), each
    resized from the decoded image itself, so that no scale is a resize of a resize."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], sizes: Sequence[int]) -> None:
        self.transforms = [extraction_transform(mean, std, size) for size in sizes]

    def __call__(self, image: Tensor) -> tuple[Tensor, ...]:
        return tuple(t(image) for t in self.transforms)


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


def rotate90(image: Tensor, degrees: int) -> Tensor:
    """`image` (... x H x W) rotated counter-clockwise by `degrees`, a multiple of 90."""
    return torch.rot90(image, k=quarter_turns(degrees), dims=(-2, -1))
