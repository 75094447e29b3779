"""SIFT descriptors and keypoints of one grayscale image, and RootSIFT as a view on them.

OpenCV saturates SIFT descriptor values to 0..255 integers even for its float32 output, so they
are returned (and cached) as uint8: lossless and a quarter of the size. RootSIFT is applied when
descriptors are used, so one cache serves SIFT and RootSIFT alike.
"""

from __future__ import annotations

import cv2
import numpy as np

SIFT_DIM = 128


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
