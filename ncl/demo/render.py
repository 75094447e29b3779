"""One generated view of a region: what stands in for a second photograph of the same object.

A view pastes a projective warp of the region (scale, in-plane rotation, perspective, shift,
possibly cut by the frame) on a background, occludes part of it, jitters gamma, colour,
saturation, contrast and brightness, blurs, adds noise and is written as a JPEG of random
quality: the changes between two real photos that retrieval must see through. One `difficulty`
knob in [0, 1] scales all of them; each view draws its own strength around it, so an instance
has easy and hard views. Backgrounds and occluders are tinted crops of texture photos, or smooth
synthetic colour fields when none is installed. Each view's generator depends only on the seed
and the view's name, so a view is the same whatever else is rendered.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# Rec. 601 luma weights of R, G, B: the gray a saturation change keeps.
LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class View:
    """One rendered view: the JPEG bytes, the instance's bounding box in it and the fraction
    of the instance that is visible (inside the frame and not occluded)."""

    jpeg: bytes
    box: tuple[float, float, float, float]
    visible: float


def view_rng(seed: int, name: str) -> np.random.Generator:
    """A generator per view, so a view depends only on the seed and its name, not on the
    order of rendering or on which other views exist."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _canvas_size(region: np.ndarray, view_size: int) -> tuple[int, int]:
    """(width, height): 4:3, portrait for portrait regions."""
    h, w = region.shape[:2]
    short = round(view_size * 3 / 4)
    return (view_size, short) if w >= h else (short, view_size)


def _background(
    textures: Sequence[np.ndarray], size: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """A float RGB background in [0, 1]: a scaled crop of a gray texture (float, [0, 1]) under
    a muted colour with smooth shading, or the shaded colour alone when there is no texture."""
    w, h = size
    hue = rng.uniform(0.0, 1.0, 3)
    saturation = rng.uniform(0.0, 0.5)
    colour = rng.uniform(0.35, 0.95) * (1 - saturation + saturation * hue / max(hue.mean(), 1e-3))
    shading = cv2.resize(
        rng.uniform(0.7, 1.3, (3, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    field = shading[..., None] * colour.astype(np.float32)
    if textures:
        texture = textures[int(rng.integers(len(textures)))]
        th, tw = texture.shape[:2]
        side = int(rng.uniform(0.3, 1.0) * min(th, tw))
        x, y = int(rng.integers(tw - side + 1)), int(rng.integers(th - side + 1))
        crop = cv2.resize(
            texture[y : y + side, x : x + side], (w, h), interpolation=cv2.INTER_LINEAR
        )
        field = field * (crop[..., None] * np.float32(1.6))
    return np.clip(field, 0.0, 1.0)


def _corners(
    w: int, h: int, canvas: tuple[int, int], strength: float, scale: float, rng: np.random.Generator
) -> np.ndarray:
    """Where the region's corners land in the view: fitted to the canvas, scaled, tilted
    (each corner moved, a perspective change), rotated in-plane and shifted."""
    cw, ch = canvas
    fit = min(cw / w, ch / h) * scale
    corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]], np.float64) * (fit / 2)
    corners += rng.uniform(-0.12, 0.12, (4, 2)) * strength * np.array([w, h]) * fit
    angle = np.deg2rad(rng.uniform(-40.0, 40.0) * strength)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = rng.uniform(-0.25, 0.25, 2) * strength * np.array([cw, ch])
    return (corners @ rotation.T + np.array([cw / 2, ch / 2]) + shift).astype(np.float32)


def _occluder(
    canvas: tuple[int, int], corners: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """A float mask of a random convex blob covering about `fraction` of the instance's area,
    centred on a random point of the instance."""
    w, h = canvas
    mask = np.zeros((h, w), np.float32)
    if fraction <= 0.0:
        return mask
    area = abs(cv2.contourArea(corners)) * fraction
    a, b = rng.dirichlet([1.0, 1.0, 1.0]), rng.uniform(0.6, 1.6)
    centre = a @ corners[:3] if rng.random() < 0.5 else a @ corners[[0, 2, 3]]
    radius = np.sqrt(area / np.pi)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
    radii = radius * rng.uniform(0.8, 1.2, 9)
    points = np.stack(
        [centre[0] + radii * np.cos(angles) * b, centre[1] + radii * np.sin(angles) / b], axis=1
    )
    cv2.fillPoly(mask, [np.round(cv2.convexHull(points.astype(np.float32))).astype(np.int32)], 1.0)
    return cv2.GaussianBlur(mask, (0, 0), 1.0)


def _photometric(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Gamma, then per-channel gain, saturation, contrast and brightness jitter: lighting, white
    balance and camera response differ between two photos of one object. All but the gamma are
    linear, so they are applied as one 3x4 colour transform."""
    s = strength
    image = cv2.pow(image, float(np.exp(rng.uniform(-0.5, 0.5) * s)))
    gains = np.diag(rng.uniform(1 - 0.3 * s, 1 + 0.3 * s, 3))
    saturation = float(np.exp(rng.uniform(-0.8, 0.5) * s))
    linear = (saturation * np.eye(3) + (1 - saturation) * np.outer(np.ones(3), LUMA)) @ gains
    mean = float((linear @ np.array(cv2.mean(image)[:3])).mean())
    contrast = float(np.exp(rng.uniform(-0.5, 0.4) * s))
    offset = (1 - contrast) * mean + rng.uniform(-0.2, 0.2) * s
    return cv2.transform(image, np.hstack([contrast * linear, np.full((3, 1), offset)]))


def _add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise of standard deviation `sigma`: uniform, drawn as bytes, which is several
    times cheaper than Gaussian noise and looks the same at this level."""
    noise = np.frombuffer(rng.bytes(image.size), np.uint8).reshape(image.shape).astype(np.float32)
    return cv2.addWeighted(image, 1.0, noise, sigma / 73.9, -127.5 * sigma / 73.9)


def render_view(
    region: np.ndarray,
    textures: Sequence[np.ndarray],
    *,
    difficulty: float,
    view_size: int,
    query: bool,
    rng: np.random.Generator,
) -> View:
    """One view of `region` (RGB uint8) over `textures` (gray, float in [0, 1]).

    A query view is mild and unoccluded, at 70-90% of the frame, so its box frames the
    instance as an Oxford query box frames its landmark; other views draw a strength around
    `difficulty` and may be cut by the frame or occluded.
    """
    h, w = region.shape[:2]
    canvas = _canvas_size(region, view_size)
    if query:
        strength, scale, occlusion = 0.4 * difficulty, rng.uniform(0.7, 0.9), 0.0
    else:
        strength = difficulty * rng.uniform(0.5, 1.5)
        scale = float(
            np.exp(rng.uniform(np.log(1 - 0.6 * min(strength, 1.0)), np.log(1 + 0.8 * strength)))
        )
        occlusion = rng.uniform(0.1, 0.2 + 0.5 * strength) if rng.random() < 0.8 * strength else 0.0
    corners = _corners(w, h, canvas, strength, scale, rng)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    homography = cv2.getPerspectiveTransform(src, corners)
    warped = cv2.warpPerspective(region, homography, canvas, flags=cv2.INTER_LINEAR)
    inside = cv2.warpPerspective(
        np.ones((h, w), np.float32), homography, canvas, flags=cv2.INTER_LINEAR
    )
    occluded = _occluder(canvas, corners, occlusion, rng)
    visible = float((inside * (1 - occluded)).sum() / max(abs(cv2.contourArea(corners)), 1.0))

    background = _background(textures, canvas, rng)
    image = cv2.blendLinear(background, warped.astype(np.float32) / 255.0, 1 - inside, inside)
    if occlusion:
        occluder = _background(textures, canvas, rng)
        image = cv2.blendLinear(image, occluder, 1 - occluded, occluded)
    image = _photometric(image, strength, rng)
    if rng.random() < 0.3 + 0.5 * strength:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 0.5 + 2.5 * strength))
    image = _add_noise(image, rng.uniform(0.0, 0.04) * strength, rng)
    quality = int(rng.integers(max(20, round(95 - 60 * strength)), 96))
    bgr = cv2.cvtColor(
        cv2.convertScaleAbs(np.clip(image, 0.0, 1.0), alpha=255.0), cv2.COLOR_RGB2BGR
    )
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("cv2.imencode failed to write a JPEG")
    cw, ch = canvas
    x, y = corners[:, 0], corners[:, 1]
    box = (
        max(0.0, float(x.min())),
        max(0.0, float(y.min())),
        min(float(cw), float(x.max())),
        min(float(ch), float(y.max())),
    )
    return View(jpeg.tobytes(), box, min(visible, 1.0))
