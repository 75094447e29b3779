"""SIFT descriptors per image, cached on disk, with RootSIFT as a view on the cache.

Layout of a cache directory:
  params.json           the extraction parameters; a cache is only reused with the same ones
  descriptors/<q>.npy   one uint8 array (n x 128) per image, <q> the URL-quoted image name;
                        written to a temporary file and renamed, so a present file is complete
  failed.json           {image name: reason} for images that could not be read

OpenCV saturates SIFT descriptor values to 0..255 integers even for its float32 output, so uint8
storage is lossless and a quarter of the size. RootSIFT is applied when descriptors are read, so
one cache serves SIFT and RootSIFT alike. An image with no keypoints gets an empty (0 x 128) array:
it has a code (zero before normalisation), whereas an unreadable image gets none and is recorded
in failed.json: a zero-filled row would silently rank as a real image.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cv2
import numpy as np

from ncl.atomic import save_npy_atomically, write_json_atomically
from ncl.io.decode import read_gray
from ncl.io.geometry import BBox, crop_box, quarter_turns
from ncl.io.progress import progress_bar

log = logging.getLogger(__name__)

SIFT_DIM = 128
FORMAT_VERSION = 1


def rootsift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT (Arandjelović & Zisserman, CVPR 2012): L1-normalise, then square root.

    Euclidean distance between RootSIFT vectors is the Hellinger distance between the
    L1-normalised SIFT histograms, ||a' - b'||² = 2 - 2 Σ sqrt(a_i b_i), which compares histograms
    better than Euclidean distance on raw SIFT. The results have unit L2 norm.
    """
    x = descriptors.astype(np.float32)
    x /= np.maximum(np.abs(x).sum(axis=1, keepdims=True), np.finfo(np.float32).tiny)
    return np.sqrt(x)


def sift(gray: np.ndarray, *, max_keypoints: int, max_side: int | None) -> np.ndarray:
    """SIFT descriptors (n x 128, uint8) of a grayscale image, at most `max_keypoints`, those with
    the strongest response; an image whose longer side exceeds `max_side` is shrunk first."""
    return sift_keypoints(gray, max_keypoints=max_keypoints, max_side=max_side)[1]


def sift_keypoints(
    gray: np.ndarray, *, max_keypoints: int, max_side: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """`sift`'s descriptors with their keypoints' locations: (n x 2 float32 (x, y), n x 128 uint8).

    Locations are in the pixels SIFT ran on, i.e. after shrinking to `max_side`, so a geometric
    check's pixel tolerance (e.g. RANSAC's reprojection threshold) is relative to a bounded size.
    """
    if max_side is not None and max(gray.shape) > max_side:
        scale = max_side / max(gray.shape)
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    keypoints, descriptors = cv2.SIFT_create(nfeatures=max_keypoints).detectAndCompute(gray, None)
    if descriptors is None:
        return np.empty((0, 2), dtype=np.float32), np.empty((0, SIFT_DIM), dtype=np.uint8)
    keep = np.arange(len(keypoints))
    # OpenCV keeps ties at the response threshold, which can exceed nfeatures by a few.
    if len(keypoints) > max_keypoints:
        order = np.argsort([-kp.response for kp in keypoints], kind="stable")[:max_keypoints]
        keep = np.sort(order)
    locations = np.array([keypoints[i].pt for i in keep], dtype=np.float32).reshape(-1, 2)
    return locations, descriptors[keep].astype(np.uint8)


def descriptor_file(root: Path, name: str) -> Path:
    """Where a cache keeps one image's descriptors (the name URL-quoted: reversible, no clashes)."""
    return root / "descriptors" / f"{quote(name, safe='')}.npy"


# name, file, target, max_keypoints, max_side, box, rotation in degrees
_Task = tuple[str, str, str, int, int | None, BBox | None, int]


def _extract_one(task: _Task) -> tuple[str, str | None]:
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


def _init_worker() -> None:
    # One OpenCV thread per process: the pool already uses every core.
    cv2.setNumThreads(1)


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


def _check_params(root: Path, params: dict[str, Any]) -> None:
    params_file = root / "params.json"
    if params_file.is_file():
        stored = json.loads(params_file.read_text())
        keys = ("format", "max_keypoints", "max_side")
        if any(stored.get(k) != params[k] for k in keys):
            raise ValueError(
                f"{root}: a descriptor cache made with { ({k: stored.get(k) for k in keys}) }, "
                f"not { ({k: params[k] for k in keys}) }; use another cache directory"
            )
    else:
        root.mkdir(parents=True, exist_ok=True)
        write_json_atomically(params_file, params, indent=2, sort_keys=True)


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
    The cache does not record them: give each cropped or rotated variant its own `cache_dir`.
    Runs over a process pool of `workers` processes (in this process when `workers` <= 1).
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
    _check_params(
        cache_dir,
        {
            "format": FORMAT_VERSION,
            "max_keypoints": max_keypoints,
            "max_side": max_side,
            "opencv": cv2.__version__,
        },
    )
    (cache_dir / "descriptors").mkdir(exist_ok=True)
    failed_file = cache_dir / "failed.json"
    failed: dict[str, str] = json.loads(failed_file.read_text()) if failed_file.is_file() else {}

    tasks: list[_Task] = [
        (name, str(file), str(target), max_keypoints, max_side, box, degrees)
        for name, file, box, degrees in zip(names, files, boxes, rotations, strict=True)
        if not (target := descriptor_file(cache_dir, name)).is_file()
    ]
    try:
        with progress_bar(f"SIFT → {cache_dir.name}", len(tasks)) as advance:
            for name, reason in _run(tasks, workers):
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


def _run(tasks: list[_Task], workers: int) -> Iterator[tuple[str, str | None]]:
    if workers <= 1 or len(tasks) <= 1:
        yield from (_extract_one(t) for t in tasks)
        return
    # spawn, not fork: the parent may hold torch/OpenMP threads, which fork does not survive.
    # A worker that cannot start raises BrokenProcessPool here instead of hanging the pool.
    with ProcessPoolExecutor(
        min(workers, len(tasks)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
    ) as pool:
        yield from pool.map(_extract_one, tasks, chunksize=4)
