"""Verifying one image pair: nearest-neighbour matching with Lowe's ratio test, then a RANSAC
homography; the evidence that two photos show the same thing is the number of inliers.

Matching is one-directional, from the first image of the pair (in name order) to the second,
as in the usual pipeline; a pair's count therefore does not depend on the order classes or
workers visit it. OpenCV's RANSAC draws its samples from a fixed-seed generator, so counts are
reproducible run to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ncl.features.keypoints import Keypoints
from ncl.features.sift import rootsift

# A homography needs four correspondences.
MIN_CORRESPONDENCES = 4
MATCHERS = ("bf", "flann")
FLANN_INDEX = {"algorithm": 1, "trees": 4}  # FLANN_INDEX_KDTREE
FLANN_SEARCH = {"checks": 64}


@dataclass(frozen=True)
class MatchSettings:
    """How a pair is verified.

    `ratio`: a match is kept when its nearest neighbour is closer than `ratio` times the second
    nearest (Lowe: 0.8). `ransac_threshold`: the reprojection error, in pixels of the images
    SIFT saw (at most `max_side`), below which a match is an inlier. `rootsift`: match RootSIFT
    instead of SIFT (Hellinger instead of Euclidean distance; the paper's pipeline used SIFT).
    `matcher`: "bf" (exact, brute force) or "flann" (approximate kd-trees, faster for many
    keypoints).
    """

    ratio: float = 0.8
    ransac_threshold: float = 5.0
    ransac_confidence: float = 0.995
    ransac_max_iters: int = 2000
    rootsift: bool = False
    matcher: str = "bf"

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
        if self.ransac_threshold <= 0 or not 0.0 < self.ransac_confidence < 1.0:
            raise ValueError("need ransac_threshold > 0 and ransac_confidence in (0, 1)")
        if self.ransac_max_iters < 1:
            raise ValueError(f"ransac_max_iters must be >= 1, got {self.ransac_max_iters}")
        if self.matcher not in MATCHERS:
            raise ValueError(f"matcher must be one of {MATCHERS}, got {self.matcher!r}")


@dataclass(frozen=True)
class Prepared:
    """Keypoints ready to match: locations and float32 descriptors (RootSIFT where asked),
    converted once per image rather than once per pair; with the FLANN matcher, also the image's
    kd-tree index, built once and searched by every pair the image is the second of."""

    xy: np.ndarray
    descriptors: np.ndarray
    index: Any = None  # a cv2.flann_Index


class PairVerifier:
    """Counts the RANSAC inliers of image pairs under one `MatchSettings`."""

    def __init__(self, settings: MatchSettings) -> None:
        self.settings = settings
        self.matcher = cv2.BFMatcher(cv2.NORM_L2) if settings.matcher == "bf" else None

    def prepare(self, keypoints: Keypoints) -> Prepared:
        d = keypoints.descriptors
        descriptors = np.ascontiguousarray(rootsift(d) if self.settings.rootsift else d, np.float32)
        index = None
        if self.settings.matcher == "flann" and len(descriptors) >= 2:
            index = cv2.flann_Index(descriptors, FLANN_INDEX)
        return Prepared(keypoints.xy, descriptors, index)

    def matches(self, a: Prepared, b: Prepared) -> tuple[np.ndarray, np.ndarray]:
        """Indices (into a, into b) of the matches that pass the ratio test."""
        if len(a.descriptors) < 1 or len(b.descriptors) < 2:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        if b.index is not None:
            # FLANN's kd-tree returns squared L2 distances: compare them with the squared ratio
            nearest, squared = b.index.knnSearch(a.descriptors, 2, params=FLANN_SEARCH)
            good = squared[:, 0] < self.settings.ratio**2 * squared[:, 1]
            return np.flatnonzero(good), nearest[good, 0].astype(np.int64)
        knn = self.matcher.knnMatch(a.descriptors, b.descriptors, k=2)
        ratio = self.settings.ratio
        good = [m[0] for m in knn if len(m) == 2 and m[0].distance < ratio * m[1].distance]
        return (
            np.fromiter((m.queryIdx for m in good), np.int64, len(good)),
            np.fromiter((m.trainIdx for m in good), np.int64, len(good)),
        )

    def inliers(self, a: Prepared, b: Prepared) -> int:
        """The number of ratio-test matches consistent with the RANSAC homography from a to b
        (0 when there are fewer than four matches or RANSAC finds no model)."""
        ia, ib = self.matches(a, b)
        if len(ia) < MIN_CORRESPONDENCES:
            return 0
        s = self.settings
        _, mask = cv2.findHomography(
            a.xy[ia],
            b.xy[ib],
            cv2.RANSAC,
            s.ransac_threshold,
            maxIters=s.ransac_max_iters,
            confidence=s.ransac_confidence,
        )
        return 0 if mask is None else int(mask.sum())
