"""The SIFT descriptors of an image set, cached on disk per image, with RootSIFT as a view.

A cache directory is an artifact of `ncl.cache` made from the extraction settings (format,
max_keypoints, max_side; the OpenCV version is recorded beside them): asked for with other
settings, it is remade (emptied, the log says which setting changed). Inside it, filled image by
image, so an interrupted extraction resumes where it stopped:
  meta.json             the settings (`ncl.cache`)
  descriptors/<q>.npy   one uint8 array (n x 128) per image, <q> the URL-quoted image name;
                        written to a temporary file and renamed, so a present file is complete
  failed.json           {image name: reason} for images that could not be read

The descriptors are stored as uint8 (`ncl.features.sift`); RootSIFT is applied when they are read,
so one cache serves SIFT and RootSIFT alike. An image with no keypoints gets an empty (0 x 128)
array: it has a code (zero before normalisation), whereas an unreadable image gets none and is
recorded in failed.json: a zero-filled row would silently rank as a real image.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cv2
import numpy as np

from ncl.atomic import save_npy_atomically, write_json_atomically
from ncl.cache import Artifact
from ncl.features.sift import rootsift, sift
from ncl.io import pool
from ncl.io.decode import read_gray
from ncl.io.geometry import BBox, crop_box, quarter_turns
from ncl.io.progress import progress_bar

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def descriptor_file(root: Path, name: str) -> Path:
    """Where a cache keeps one image's descriptors (the name URL-quoted: reversible, no clashes)."""
    return root / "descriptors" / f"{quote(name, safe='')}.npy"


# name, file, target, max_keypoints, max_side, box, rotation in degrees
_Task = tuple[str, str, str, int, int | None, BBox | None, int]


def _extract_one(task: _Task, report: pool.Report) -> tuple[str, str | None]:
    """Extract and store one image's descriptors; return (name, reason it failed or None).

    The image is cropped to its box and then turned upright, in its own pixels, as neural-code
    extraction does (`ncl.data.images`), so both kinds of codes describe the same pixels.
    """
    name, file, target, max_keypoints, max_side, box, degrees = task
    try:
        gray = read_gray(Path(file))
        if box is not None:
            gray = crop_box(gray, box)
        if quarter_turns(degrees):
            gray = np.ascontiguousarray(np.rot90(gray, quarter_turns(degrees)))
        descriptors = sift(gray, max_keypoints=max_keypoints, max_side=max_side)
    except (OSError, ValueError, cv2.error) as e:
        return name, f"{type(e).__name__}: {e}"
    save_npy_atomically(target, descriptors)
    return name, None


@dataclass(frozen=True)
class LocalFeatureCache:
    """The descriptors of one image list, read from a cache directory.

    `names` are the images that have descriptors, in the order they were asked for; `failed`
    maps the others to the reason they could not be read.
    """

    root: Path
    names: tuple[str, ...]
    failed: Mapping[str, str]
    rootsift: bool
    max_keypoints: int
    max_side: int | None

    def __len__(self) -> int:
        return len(self.names)

    def descriptors(self, name: str) -> np.ndarray:
        """float32 (n x 128) descriptors of one image, RootSIFT when the cache view asks for it."""
        raw = np.load(descriptor_file(self.root, name), allow_pickle=False)
        return rootsift(raw) if self.rootsift else raw.astype(np.float32)

    def count(self, name: str) -> int:
        """The number of descriptors of one image, read from the .npy header alone."""
        return int(np.load(descriptor_file(self.root, name), mmap_mode="r").shape[0])

    def config(self) -> dict[str, Any]:
        """What determines the descriptors; recorded in the meta of everything built on them."""
        return {
            "local_features": "rootsift" if self.rootsift else "sift",
            "max_keypoints": self.max_keypoints,
            "max_side": self.max_side,
        }


def descriptor_cache(root: Path, *, max_keypoints: int, max_side: int | None) -> Artifact:
    """The cache directory `root` as an artifact of its extraction settings."""
    inputs = {"format": FORMAT_VERSION, "max_keypoints": max_keypoints, "max_side": max_side}
    return Artifact(root, inputs)


def extract_local_features(
    files: Sequence[Path],
    names: Sequence[str],
    cache_dir: Path,
    *,
    boxes: Sequence[BBox | None] | None = None,
    rotations: Sequence[int] | None = None,
    rootsift: bool = True,
    max_keypoints: int = 2000,
    max_side: int | None = None,
    workers: int = os.cpu_count() or 1,
) -> LocalFeatureCache:
    """SIFT descriptors of `files` (named `names`) in `cache_dir`, extracting only what is missing.

    `boxes` (x1, y1, x2, y2 per image, or None) crop images first, e.g. Oxford's queries;
    `rotations` (counter-clockwise degrees per image) then turn them upright, e.g. Holidays'.
    The cache does not record them: give each cropped or rotated variant its own `cache_dir`, as
    it does not record the images' content (`BaselineCodes` names it by the image set's
    fingerprint). `cache_dir` made with other settings is remade. Runs over a process pool of `workers` processes (in this process when `workers` <= 1).
    Images that cannot be read are logged by name, recorded in failed.json and left out of the
    returned cache's `names`; they are tried again on the next call.
    """
    boxes = [None] * len(names) if boxes is None else list(boxes)
    rotations = [0] * len(names) if rotations is None else list(rotations)
    if not len(files) == len(names) == len(boxes) == len(rotations):
        raise ValueError(
            f"{len(files)} files, {len(names)} names, {len(boxes)} boxes, "
            f"{len(rotations)} rotations: one each per image"
        )
    if len(set(names)) != len(names):
        raise ValueError("image names must be unique")
    cache_dir = Path(cache_dir)

    def make(tmp: Path) -> dict[str, Any]:
        (tmp / "descriptors").mkdir()
        return {"opencv": cv2.__version__}

    descriptor_cache(cache_dir, max_keypoints=max_keypoints, max_side=max_side).get(
        make, "the descriptor cache"
    )
    failed_file = cache_dir / "failed.json"
    failed: dict[str, str] = json.loads(failed_file.read_text()) if failed_file.is_file() else {}

    tasks: list[_Task] = [
        (name, str(file), str(target), max_keypoints, max_side, box, degrees)
        for name, file, box, degrees in zip(names, files, boxes, rotations, strict=True)
        if not (target := descriptor_file(cache_dir, name)).is_file()
    ]
    try:
        with progress_bar(f"SIFT → {cache_dir.name}", len(tasks)) as advance:
            for _, (name, reason) in pool.run_tasks(_extract_one, tasks, workers):
                advance(1)
                if reason is None:
                    failed.pop(name, None)
                else:
                    failed[name] = reason
                    log.warning("cannot extract SIFT from image %r: %s", name, reason)
    finally:
        write_json_atomically(failed_file, failed, indent=2, sort_keys=True)

    done = tuple(n for n in names if descriptor_file(cache_dir, n).is_file())
    return LocalFeatureCache(
        root=cache_dir,
        names=done,
        failed={n: failed[n] for n in names if n in failed},
        rootsift=rootsift,
        max_keypoints=max_keypoints,
        max_side=max_side,
    )
