"""Image decoding, one way for every reader: OpenCV (libjpeg-turbo), raw pixels with any EXIF
orientation ignored (benchmarks state their rotations explicitly). A file that does not decode is
an `UnreadableImage` naming it; callers decide whether that skips the image or stops the job, but
nothing is ever zero-filled."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


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


def _decode(path: Path, flags: int) -> np.ndarray:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise UnreadableImage(f"{path}: cannot read ({e.strerror or e})") from e
    if truncated_jpeg(data.tobytes()):
        raise UnreadableImage(f"{path}: truncated JPEG (no end-of-image marker), {data.size} bytes")
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise UnreadableImage(f"{path}: not a decodable image ({data.size} bytes)")
    return image


def read_rgb(path: str | Path) -> np.ndarray:
    """H x W x 3 uint8 RGB (alpha dropped, gray repeated)."""
    return _decode(Path(path), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)


def read_gray(path: str | Path) -> np.ndarray:
    """H x W uint8 grayscale."""
    return _decode(Path(path), cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION)
