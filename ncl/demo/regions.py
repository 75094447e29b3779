"""Photos cut into regions, the demo's instances, and the regions split into test, distractor
and train ones.

Why regions: every source photo is downscaled to `max_side` pixels and cut into a grid of cells
of about `tile` pixels; cells with too little texture (sky, black space) are dropped, and each
kept cell is a *region*. Regions are disjoint pixel sets, so no two instances share image
content, and every view of an instance is drawn from its own region only.

Split rule. Preferred, by whole photo: photos are taken in order of region count, fewest
first (ties in seeded order). The first ones give test instances (at most `max_test_per_photo`
each, until `n_test`) and their other regions become distractors; the next whole photos go to
the distractors until there are enough distractor regions; every photo left goes to train. No
photo then contributes to both test and train, distractors never share content with a test
instance, the queries come from many photos, and the photos with many regions make the train
classes. Where that leaves fewer than `min_train` train instances (too few photos), the split
falls back to regions: all regions, interleaved photo by photo, are dealt to test, then
distractors, then train; content is still never shared. The manifest records the rule used.
Train instances are capped at `max_train`, taken photo by photo.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

from ncl.demo.params import DemoParams

log = logging.getLogger(__name__)

T = TypeVar("T")
Box = tuple[int, int, int, int]

# A cell is kept as a region when its gray levels vary (std), it has edges (mean gradient
# magnitude) and it is not mostly black: uniform cells cannot be told apart by any method.
MIN_STD = 12.0
MIN_GRADIENT = 12.0
MAX_DARK_FRACTION = 0.75
DARK_LEVEL = 20
# Distractor images per distractor region the split asks regions for: more would make tight
# clusters of near-duplicates.
DISTRACTOR_VIEWS_PER_REGION = 6


@dataclass(frozen=True)
class Region:
    """A grid cell of a source photo: `box` is (x0, y0, x1, y1) in the photo downscaled to
    `max_side`, end-exclusive."""

    name: str
    source: str
    box: Box


@dataclass(frozen=True)
class Split:
    """The regions of each role, and the rule that dealt them ("photo" or "region")."""

    test: tuple[Region, ...]
    distractor: tuple[Region, ...]
    train: tuple[Region, ...]
    rule: str


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """`image` shrunk to at most `max_side` pixels on its longer side (never enlarged)."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _has_content(cell: np.ndarray) -> bool:
    gray = cv2.cvtColor(cell, cv2.COLOR_RGB2GRAY)
    f = gray.astype(np.float32)
    gradient = np.hypot(cv2.Sobel(f, cv2.CV_32F, 1, 0), cv2.Sobel(f, cv2.CV_32F, 0, 1))
    return (
        float(f.std()) >= MIN_STD
        and float(gradient.mean()) >= MIN_GRADIENT
        and float((gray < DARK_LEVEL).mean()) <= MAX_DARK_FRACTION
    )


def photo_regions(name: str, photo: np.ndarray, tile: int) -> list[Region]:
    """The kept cells of a grid of about `tile`-pixel cells covering `photo`, row by row."""
    h, w = photo.shape[:2]
    rows, cols = max(1, h // tile), max(1, w // tile)
    kept = []
    for r in range(rows):
        for c in range(cols):
            box = (c * w // cols, r * h // rows, (c + 1) * w // cols, (r + 1) * h // rows)
            if _has_content(photo[box[1] : box[3], box[0] : box[2]]):
                kept.append(Region(f"{name}_r{r * cols + c}", name, box))
    return kept


def _shuffled(items: Sequence[T], rng: np.random.Generator) -> list[T]:
    return [items[i] for i in rng.permutation(len(items))]


def _distractor_regions_needed(params: DemoParams) -> int:
    return -(-params.n_distractors // DISTRACTOR_VIEWS_PER_REGION)


def _split_by_photo(
    by_photo: dict[str, list[Region]], params: DemoParams, rng: np.random.Generator
) -> Split:
    """Photos in order of region count (ties in seeded order), fewest first: test instances then
    come from as many photos as possible with few regions left over, and the photos with many
    regions, which make many classes, go to train."""
    test: list[Region] = []
    distractor: list[Region] = []
    train: list[Region] = []
    for photo in sorted(_shuffled(sorted(by_photo), rng), key=lambda p: len(by_photo[p])):
        shuffled = _shuffled(by_photo[photo], rng)
        if len(test) < params.n_test:
            k = min(params.n_test - len(test), params.max_test_per_photo)
            test += shuffled[:k]
            distractor += shuffled[k:]
        elif len(distractor) < _distractor_regions_needed(params):
            distractor += shuffled
        else:
            train += shuffled
    return Split(tuple(test), tuple(distractor), tuple(train), "photo")


def _interleaved(groups: Sequence[Sequence[Region]]) -> list[Region]:
    """The first region of each group, then the second of each, ...: a prefix of any length
    draws from as many groups (photos) as possible."""
    longest = max(map(len, groups), default=0)
    return [g[i] for i in range(longest) for g in groups if i < len(g)]


def _split_by_region(
    by_photo: dict[str, list[Region]], params: DemoParams, rng: np.random.Generator
) -> Split:
    """All regions, interleaved photo by photo, dealt to test, then distractors (fewer where
    train would get less than `min_train`), then train."""
    order = _interleaved([_shuffled(by_photo[p], rng) for p in _shuffled(sorted(by_photo), rng)])
    spare = len(order) - params.n_test - params.min_train
    n_distractor = min(_distractor_regions_needed(params), max(1, spare))
    test = tuple(order[: params.n_test])
    distractor = tuple(order[params.n_test : params.n_test + n_distractor])
    train = tuple(order[params.n_test + n_distractor :])
    return Split(test, distractor, train, "region")


def _enough(split: Split, params: DemoParams) -> bool:
    return (
        len(split.test) >= params.n_test
        and len(split.train) >= params.min_train
        and (len(split.distractor) > 0 or params.n_distractors == 0)
    )


def _cap_train(split: Split, max_train: int) -> Split:
    """At most `max_train` train instances, taken photo by photo so every train photo keeps
    some: more would cost build time, not variety."""
    by_source: dict[str, list[Region]] = {}
    for region in split.train:
        by_source.setdefault(region.source, []).append(region)
    train = _interleaved(list(by_source.values()))[:max_train]
    return Split(split.test, split.distractor, tuple(train), split.rule)


def split_regions(by_photo: dict[str, list[Region]], params: DemoParams, seed: int) -> Split:
    """Test, distractor and train regions by the rule in the module docstring."""
    split = _split_by_photo(by_photo, params, np.random.default_rng([seed, 1]))
    if not _enough(split, params):
        log.info("demo: too few photos to split by photo, splitting by region")
        split = _split_by_region(by_photo, params, np.random.default_rng([seed, 2]))
    if not _enough(split, params):
        total = sum(map(len, by_photo.values()))
        raise ValueError(
            f"demo: {total} regions from {len(by_photo)} photos cannot give {params.n_test} test "
            f"instances, distractors and {params.min_train} train instances; lower n_test, "
            "min_train or tile, or install more sources (opencv-doc)"
        )
    return _cap_train(split, params.max_train)
