"""Image decoding, one way for every reader: OpenCV (libjpeg-turbo), raw pixels with any EXIF
orientation ignored (benchmarks state their rotations explicitly). A file that does not decode is
an `UnreadableImage` naming it; callers decide whether that skips the image or stops the job, but
nothing is ever zero-filled.

A JPEG much larger than what it is decoded for (a 1024-px photo for a 224-px network input) can be
decoded at 1/2, 1/4 or 1/8 of its size by libjpeg's scaled inverse DCT (`read_rgb_reduced`),
which skips most of the decoding work; the extraction resizes it to the input size anyway, so only
the last resampling step differs (its codes are a code set of their own, `extraction.decode`).
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ncl.io.geometry import BBox


class UnreadableImage(ValueError):
    """An image file that is missing or does not decode; the message names the file."""


JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"
JPEG_TAIL = 1024  # bytes after the end-of-image marker that still count as a complete file


def truncated_jpeg(data: bytes) -> bool:
    """A JPEG whose end-of-image marker is missing from its last bytes: a cut-off download or
    copy. libjpeg decodes it anyway, the missing part grey, with only an unnamed warning; such an
    image would get codes that describe a half-grey picture. (An EXIF thumbnail's own marker lies
    near the start, so only the tail is searched; zero padding after the marker is allowed.)"""
    if not data.startswith(JPEG_START):
        return False
    return JPEG_END not in data.rstrip(b"\x00")[-JPEG_TAIL:]


# libjpeg's scaled decodes, largest reduction first (the flag's bits besides colour / grayscale)
REDUCTIONS = (
    (8, cv2.IMREAD_REDUCED_GRAYSCALE_8),
    (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
    (2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
)
RGB = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION


def _read(path: Path) -> np.ndarray:
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise UnreadableImage(f"{path}: cannot read ({e.strerror or e})") from e


def _decode(path: Path, flags: int, data: np.ndarray | None = None) -> np.ndarray:
    if data is None:
        data = _read(path)
    if truncated_jpeg(data.tobytes()):
        raise UnreadableImage(f"{path}: truncated JPEG (no end-of-image marker), {data.size} bytes")
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise UnreadableImage(f"{path}: not a decodable image ({data.size} bytes)")
    return image


def read_rgb(path: str | Path) -> np.ndarray:
    """H x W x 3 uint8 RGB (alpha dropped, gray repeated)."""
    return _decode(Path(path), RGB)


def reduction(width: float, height: float, at_least: int) -> int:
    """The largest of libjpeg's reductions (8, 4, 2; else 1) that leaves a `width` x `height`
    region at least `at_least` pixels on both sides."""
    return next((f for f, _ in REDUCTIONS if min(width, height) / f >= at_least), 1)


def read_rgb_reduced(
    path: str | Path, at_least: int, box: BBox | None = None
) -> tuple[np.ndarray, int]:
    """`read_rgb`, but a JPEG whose `box` (or whole image) stays at least `at_least` pixels on
    both sides at 1/2, 1/4 or 1/8 of its size is decoded at that size; returns the image and the
    factor it was reduced by (the box's coordinates are divided by it). Other formats decode
    whole: only JPEG's reduced decode saves work."""
    path = Path(path)
    data = _read(path)
    factor = 1
    if data[:2].tobytes() == JPEG_START:
        try:
            width, height = Image.open(BytesIO(data.data)).size  # the header only
        except (UnidentifiedImageError, OSError) as e:
            raise UnreadableImage(f"{path}: not a decodable image ({e})") from e
        if box is not None:
            width, height = box[2] - box[0], box[3] - box[1]
        factor = reduction(width, height, at_least)
    flags = RGB | dict(REDUCTIONS).get(factor, 0)
    return _decode(path, flags, data), factor


def read_gray(path: str | Path) -> np.ndarray:
    """H x W uint8 grayscale."""
    return _decode(Path(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
