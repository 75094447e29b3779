"""SIFT keypoints (locations and descriptors) per image, cached on disk for pair mining.

The descriptor cache of the baselines (`ncl.features.descriptors`) keeps descriptors only; a
geometric check needs where each keypoint is, so this cache keeps both, from the same SIFT
function (`sift_keypoints`). Layout:

  <cache root>/k<max_keypoints>-s<max_side>/            an artifact of `ncl.cache` (meta.json)
  <cache root>/k<max_keypoints>-s<max_side>/<q>.npz     <q> the URL-quoted image name

The folder is an artifact made from the extraction settings: its name keeps the keypoints of
other settings apart, its meta.json makes a folder of another format be remade. It is filled image
by image: each file holds `xy` (n x 2 float32), `descriptors` (n x 128 uint8) and `stamp`, the
`ncl.cache.file_stamp` of the image file when it was read; a stamp that no longer matches the
image file (a regenerated image set) makes that image be extracted again. Files are written
atomically, so two runs or an interrupted one never leave a partial file. An unreadable image is
not cached: it raises `UnreadableImage` each time and is tried again on the next run.
"""

from __future__ import annotations

import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np

from ncl.atomic import save_npz_atomically
from ncl.cache import Artifact, file_stamp
from ncl.features.sift import sift_keypoints
from ncl.io.decode import UnreadableImage, read_gray

__all__ = ["KeypointCache", "KeypointSettings", "Keypoints", "UnreadableImage"]

FORMAT_VERSION = 2  # 1: no meta.json, stamps as (size, mtime) integers


@dataclass(frozen=True)
class KeypointSettings:
    """What determines the keypoints: at most `max_keypoints` per image (strongest response
    first), images shrunk to `max_side` pixels on their longer side first (None: never)."""

    max_keypoints: int = 2000
    max_side: int | None = 1024

    def __post_init__(self) -> None:
        if self.max_keypoints < 1 or (self.max_side is not None and self.max_side < 16):
            raise ValueError(f"need max_keypoints >= 1 and max_side >= 16 or None: {self}")

    def folder(self) -> str:
        return f"k{self.max_keypoints}-s{self.max_side or 'full'}"


@dataclass(frozen=True)
class Keypoints:
    """One image's keypoints: `xy` (n x 2 float32, pixels of the image SIFT saw) and
    `descriptors` (n x 128 uint8)."""

    xy: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return len(self.xy)


class KeypointCache:
    """Load an image's keypoints from the cache, extracting and storing them when missing or
    stale. Used inside the mining workers: each class's images are extracted by the worker
    that matches them, so no two processes write one file."""

    def __init__(self, root: Path, settings: KeypointSettings) -> None:
        self.settings = settings
        self.artifact = Artifact(
            Path(root) / settings.folder(), {"format": FORMAT_VERSION, **asdict(settings)}
        )
        self.folder = self.artifact.get(lambda tmp: None, "the keypoint cache")

    def file(self, name: str) -> Path:
        return self.folder / f"{quote(name, safe='')}.npz"

    def load(self, name: str, stamp: str) -> Keypoints | None:
        """The cached keypoints of `name`, or None when absent or made from another file."""
        try:
            with np.load(self.file(name), allow_pickle=False) as z:
                if str(z["stamp"]) != stamp:
                    return None
                return Keypoints(z["xy"], z["descriptors"])
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None

    def get(self, name: str, path: Path) -> Keypoints:
        """Cached or freshly extracted keypoints of the image `name` at `path`. An image that
        cannot be read or decoded raises `UnreadableImage` and nothing is stored for it; a
        failure to write the cache is not the image's fault and raises as it is."""
        stamp = file_stamp(path)
        if stamp == "missing":
            raise UnreadableImage(f"{path}: missing")
        cached = self.load(name, stamp)
        if cached is not None:
            return cached
        try:
            xy, descriptors = sift_keypoints(
                read_gray(path),
                max_keypoints=self.settings.max_keypoints,
                max_side=self.settings.max_side,
            )
        except (OSError, ValueError, cv2.error) as e:
            if isinstance(e, UnreadableImage):
                raise
            raise UnreadableImage(f"{path}: {type(e).__name__}: {e}") from e
        save_npz_atomically(self.file(name), xy=xy, descriptors=descriptors, stamp=np.str_(stamp))
        return Keypoints(xy, descriptors)
