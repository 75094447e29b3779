"""The embedded demo benchmark: a small Oxford-layout retrieval benchmark generated offline from
real photographs that ship inside installed packages.

Why it exists: `python evaluate.py` must run on a fresh machine with no download, and the
standard benchmarks (Oxford, Paris, Holidays, UKB) cannot ship with the code. The photos of
scikit-image, scikit-learn, matplotlib and (where installed) Debian's opencv-doc can; from them
this module writes a benchmark that the Oxford reader and protocol score unchanged.

Instances. Every source photo is downscaled to `max_side` pixels and cut into a grid of cells of
about `tile` pixels; cells with too little texture (sky, black space) are dropped. A kept cell
is a *region*. Regions are disjoint pixel sets, so no two instances share image content, and
every view of an instance is drawn from its own region only.

Split rule. Preferred, by whole photo: photos are taken in order of region count, fewest
first (ties in seeded order). The first ones give test instances (at most `max_test_per_photo`
each, until `n_test`) and their other regions become distractors; the next whole photos go to
the distractors until there are enough distractor regions; every photo left goes to train. No
photo then contributes to both test and train, distractors never share content with a test
instance, the queries come from many photos, and the photos with many regions make the train
classes. Where that leaves fewer than `min_train` train instances (too few photos), the split
falls back to regions: all regions, interleaved photo by photo, are dealt to test, then
distractors, then train; content is still never shared. `demo.json` records the rule used.
Train instances are capped at `max_train`, taken photo by photo.

Views. A view pastes a projective warp of the region (scale, in-plane rotation, perspective,
shift, possibly cut by the frame) on a background, occludes part of it, jitters gamma, colour,
saturation, contrast and brightness, blurs, adds noise and is written as a JPEG of random
quality. One `difficulty` knob in [0, 1] scales all of them; each view draws its own strength
around it, so an instance has easy and hard views. Backgrounds and occluders are tinted crops of
texture photos (brick, grass, gravel) that are never instances nor distractors, or smooth
synthetic colour fields when none is installed.

Ground truth, as Oxford's. The query is view 0 of a test instance, a mild view whose box is the
instance's bounding box in it; it stays in the database and is listed in `good`, as Oxford lists
each query image among its positives (otherwise its own full image, ranked first, would count
as a false positive). `good`: the views where at least 60% of the instance is visible; `ok`:
25-60%; `junk`: less than 25%.

Layout: `root/jpg/*.jpg` (database), `root/gt/<instance>_1_{query,good,ok,junk}.txt`,
`root/train/<instance>/*.jpg` (ImageFolder), `root/demo.json` (parameters, sources, counts).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ncl.data.benchmarks.base import Benchmark
from ncl.data.benchmarks.oxford import read_oxford
from ncl.io.decode import read_rgb

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
OPENCV_DOC_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
OPENCV_DIR_ENV = "NCL_DEMO_OPENCV_DIR"
MANIFEST = "demo.json"
# Source, instance and image names: what Oxford's ground-truth file names can hold.
NAME = re.compile(r"[a-z0-9_]+")

Box = tuple[int, int, int, int]

# (source name, package, path inside the package): the colour and grayscale photographs.
# motorcycle_right is left out: it shows the scene of motorcycle_left.
PACKAGE_PHOTOS: tuple[tuple[str, str, str], ...] = (
    ("astronaut", "skimage", "data/astronaut.png"),
    ("chelsea", "skimage", "data/chelsea.png"),
    ("coffee", "skimage", "data/coffee.png"),
    ("rocket", "skimage", "data/rocket.jpg"),
    ("motorcycle", "skimage", "data/motorcycle_left.png"),
    ("hubble", "skimage", "data/hubble_deep_field.jpg"),
    ("ihc", "skimage", "data/ihc.png"),
    ("retina", "skimage", "data/retina.jpg"),
    ("camera", "skimage", "data/camera.png"),
    ("moon", "skimage", "data/moon.png"),
    ("coins", "skimage", "data/coins.png"),
    ("china", "sklearn", "datasets/images/china.jpg"),
    ("flower", "sklearn", "datasets/images/flower.jpg"),
    ("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
)
# Texture photos used only as backgrounds and occluders.
PACKAGE_TEXTURES: tuple[tuple[str, str, str], ...] = (
    ("brick", "skimage", "data/brick.png"),
    ("grass", "skimage", "data/grass.png"),
    ("gravel", "skimage", "data/gravel.png"),
)
# The real photographs among opencv-doc's examples/data; renders, drawings, text, logos,
# chessboards and masks are left out, and of each pair showing one scene (aero1/aero3,
# aloeL/aloeR, basketball1/2, box/box_in_scene, ela_original/ela_modified, graf1/graf3,
# left/right, leuvenA/leuvenB, rubberwhale1/2) only one is taken, so no two sources share content.
OPENCV_DOC_PHOTOS: tuple[str, ...] = (
    "aero1.jpg",
    "aloeL.jpg",
    "apple.jpg",
    "baboon.jpg",
    "basketball1.png",
    "board.jpg",
    "box_in_scene.png",
    "building.jpg",
    "butterfly.jpg",
    "chicky_512.png",
    "ela_original.jpg",
    "fruits.jpg",
    "graf1.png",
    "home.jpg",
    "left.jpg",
    "leuvenA.jpg",
    "licenseplate_motion.jpg",
    "messi5.jpg",
    "orange.jpg",
    "rubberwhale1.png",
    "smarties.png",
    "squirrel_cls.jpg",
    "starry_night.jpg",
    "stuff.jpg",
    "sudoku.png",
)

# A cell is kept as a region when its gray levels vary (std), it has edges (mean gradient
# magnitude) and it is not mostly black: uniform cells cannot be told apart by any method.
MIN_STD = 12.0
MIN_GRADIENT = 12.0
MAX_DARK_FRACTION = 0.75
DARK_LEVEL = 20
# Visible fraction of the instance below which a view is `ok`, and below which it is `junk`.
GOOD_VISIBLE = 0.6
JUNK_VISIBLE = 0.25
# Rec. 601 luma weights of R, G, B: the gray a saturation change keeps.
LUMA = np.array([0.299, 0.587, 0.114])
# Distractor images per distractor region the split asks regions for: more would make tight
# clusters of near-duplicates.
DISTRACTOR_VIEWS_PER_REGION = 6


@dataclass(frozen=True)
class Source:
    """A named real photograph and its loader (RGB uint8, H x W x 3). A `texture` source is
    used only for backgrounds and occluders, never as an instance or distractor."""

    name: str
    load: Callable[[], np.ndarray]
    texture: bool = False


@dataclass(frozen=True)
class DemoParams:
    """Everything besides the seed and the sources that changes the generated files.

    `n_test` test instances (one query each) with `test_views` views each (the query's
    included); `n_distractors` distractor images; train instances get `train_views` views each
    and there must be at least `min_train` and are at most `max_train` of them (enough images
    to fit PCA to 256 dimensions without opencv-doc, to 512 with it). Regions are cells of
    about `tile` pixels of photos downscaled to `max_side`; views have `view_size` pixels on
    their longest side. `difficulty` 0.5 gives ImageNet codes an mAP of about 0.7.
    """

    difficulty: float = 0.5
    n_test: int = 48
    test_views: int = 6
    n_distractors: int = 120
    train_views: int = 12
    min_train: int = 24
    max_train: int = 48
    max_test_per_photo: int = 6
    tile: int = 144
    max_side: int = 800
    view_size: int = 384

    def __post_init__(self) -> None:
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {self.difficulty}")
        if self.test_views < 2 or self.train_views < 1:
            raise ValueError("test_views must be >= 2 (a query and a match), train_views >= 1")
        if min(self.n_test, self.max_test_per_photo, self.tile, self.view_size) < 1:
            raise ValueError("n_test, max_test_per_photo, tile and view_size must be positive")
        if self.n_distractors < 0 or not 0 <= self.min_train <= self.max_train:
            raise ValueError("need n_distractors >= 0 and 0 <= min_train <= max_train")


@dataclass(frozen=True)
class DemoInfo:
    """What `build_demo` wrote, as recorded in `root/demo.json`."""

    root: Path
    seed: int
    params: DemoParams
    sources: tuple[str, ...]
    textures: tuple[str, ...]
    split: str
    counts: dict[str, int]
    version: int = GENERATOR_VERSION

    @classmethod
    def read(cls, root: Path) -> DemoInfo:
        meta = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        params = {k: v for k, v in meta["params"].items() if k != "sources"}
        return cls(
            root=root,
            seed=meta["seed"],
            params=DemoParams(**params),
            sources=tuple(meta["sources"]),
            textures=tuple(meta["textures"]),
            split=meta["split"],
            counts=meta["counts"],
            version=meta["version"],
        )


@dataclass(frozen=True)
class Region:
    """A grid cell of a source photo: `box` is (x0, y0, x1, y1) in the photo downscaled to
    `max_side`, end-exclusive."""

    name: str
    source: str
    box: Box


@dataclass(frozen=True)
class Split:
    test: tuple[Region, ...]
    distractor: tuple[Region, ...]
    train: tuple[Region, ...]
    rule: str


@dataclass(frozen=True)
class View:
    """One rendered view: the JPEG bytes, the instance's bounding box in it and the fraction
    of the instance that is visible (inside the frame and not occluded)."""

    jpeg: bytes
    box: tuple[float, float, float, float]
    visible: float


# ---------------------------------------------------------------------------------------------
# Sources


def _package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, located without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def _package_source(name: str, package: str, relative: str, *, texture: bool = False) -> Source:
    return Source(name, lambda: read_rgb(_package_file(package, relative)), texture)


def _source_name(text: str) -> str:
    """Lowercase letters, digits and underscores, as instance and image names must be."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def opencv_doc_dir() -> Path | None:
    """The opencv-doc photo folder: `$NCL_DEMO_OPENCV_DIR` where set (empty: none), else Debian's."""
    value = os.environ.get(OPENCV_DIR_ENV)
    if value is None:
        return OPENCV_DOC_DIR
    return Path(value) if value else None


def _file_source(name: str, path: Path) -> Source:
    return Source(name, lambda: read_rgb(path))


def default_sources(opencv_dir: Path | None = OPENCV_DOC_DIR) -> tuple[Source, ...]:
    """The package photos and textures, plus opencv-doc's photos from `opencv_dir` (None, or a
    folder that does not exist: left out, with one log line). Other sources whose file is
    missing are skipped at build time, each with a log line."""
    sources = [_package_source(*entry) for entry in PACKAGE_PHOTOS]
    sources += [_package_source(*entry, texture=True) for entry in PACKAGE_TEXTURES]
    if opencv_dir is not None and not opencv_dir.is_dir():
        log.info("demo: no opencv-doc photos: %s not found", opencv_dir)
    elif opencv_dir is not None:
        for file in OPENCV_DOC_PHOTOS:
            name = f"ocv_{_source_name(Path(file).stem)}"
            sources.append(_file_source(name, opencv_dir / file))
    return tuple(sources)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """RGB uint8 from what a loader may return: gray (repeated to 3 channels), RGBA (alpha
    dropped), or float in [0, 1]."""
    if image.dtype != np.uint8:
        image = np.clip(np.asarray(image, np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    return np.ascontiguousarray(
        np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[..., :3]
    )


def _load_sources(sources: Sequence[Source]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(photos, textures) by name; a source that fails to load is skipped with a log line."""
    photos: dict[str, np.ndarray] = {}
    textures: dict[str, np.ndarray] = {}
    for source in sources:
        try:
            image = source.load()
        except (OSError, ValueError) as e:
            log.info("demo: source %s skipped: %s", source.name, e)
            continue
        (textures if source.texture else photos)[source.name] = _as_rgb(image)
    return photos, textures


# ---------------------------------------------------------------------------------------------
# Regions and the split


def _downscale(image: np.ndarray, max_side: int) -> np.ndarray:
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


def _regions(name: str, photo: np.ndarray, tile: int) -> list[Region]:
    """The kept cells of a grid of about `tile`-pixel cells covering `photo`, row by row."""
    h, w = photo.shape[:2]
    rows, cols = max(1, h // tile), max(1, w // tile)
    regions = []
    for r in range(rows):
        for c in range(cols):
            box = (c * w // cols, r * h // rows, (c + 1) * w // cols, (r + 1) * h // rows)
            if _has_content(photo[box[1] : box[3], box[0] : box[2]]):
                regions.append(Region(f"{name}_r{r * cols + c}", name, box))
    return regions


def _shuffled(items: Sequence[Any], rng: np.random.Generator) -> list[Any]:
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
        regions = _shuffled(by_photo[photo], rng)
        if len(test) < params.n_test:
            k = min(params.n_test - len(test), params.max_test_per_photo)
            test += regions[:k]
            distractor += regions[k:]
        elif len(distractor) < _distractor_regions_needed(params):
            distractor += regions
        else:
            train += regions
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


# ---------------------------------------------------------------------------------------------
# Rendering views


def _view_rng(seed: int, name: str) -> np.random.Generator:
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


def relevance(visible: float) -> str:
    """Oxford's label for a view in which `visible` of the instance can be seen."""
    if visible >= GOOD_VISIBLE:
        return "good"
    return "ok" if visible >= JUNK_VISIBLE else "junk"


# ---------------------------------------------------------------------------------------------
# Writing the benchmark


@dataclass(frozen=True)
class _Job:
    """A view to render: its image name, region, output file and whether it is a query."""

    name: str
    region: Region
    path: Path
    query: bool = False


def _jobs(split: Split, params: DemoParams, out: Path) -> Iterator[_Job]:
    for region in split.test:
        for k in range(params.test_views):
            name = f"{region.name}_v{k}"
            yield _Job(name, region, out / "jpg" / f"{name}.jpg", query=k == 0)
    for i in range(params.n_distractors):
        region = split.distractor[i % len(split.distractor)]
        name = f"{region.name}_v{i // len(split.distractor)}"
        yield _Job(name, region, out / "jpg" / f"{name}.jpg")
    for region in split.train:
        for k in range(params.train_views):
            name = f"{region.name}_v{k}"
            yield _Job(name, region, out / "train" / region.name / f"{name}.jpg")


def _render_all(
    jobs: Sequence[_Job],
    photos: dict[str, np.ndarray],
    textures: Sequence[np.ndarray],
    params: DemoParams,
    seed: int,
) -> dict[str, View]:
    """Render and write every job's view (threads: cv2 and numpy release the GIL); returns
    the views by name without their bytes, for the ground truth."""

    def run(job: _Job) -> tuple[str, View]:
        x0, y0, x1, y1 = job.region.box
        region = photos[job.region.source][y0:y1, x0:x1]
        view = render_view(
            region,
            textures,
            difficulty=params.difficulty,
            view_size=params.view_size,
            query=job.query,
            rng=_view_rng(seed, job.name),
        )
        job.path.write_bytes(view.jpeg)
        return job.name, View(b"", view.box, view.visible)

    for folder in {job.path.parent for job in jobs}:
        folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return dict(pool.map(run, jobs))


def _write_gt(gt_dir: Path, split: Split, views: dict[str, View], params: DemoParams) -> None:
    gt_dir.mkdir(parents=True, exist_ok=True)
    for region in split.test:
        query = f"{region.name}_v0"
        x1, y1, x2, y2 = views[query].box
        lists: dict[str, list[str]] = {"good": [query], "ok": [], "junk": []}
        for k in range(1, params.test_views):
            name = f"{region.name}_v{k}"
            lists[relevance(views[name].visible)].append(name)
        prefix = gt_dir / f"{region.name}_1"
        Path(f"{prefix}_query.txt").write_text(f"{query} {x1:.1f} {y1:.1f} {x2:.1f} {y2:.1f}\n")
        for kind, names in lists.items():
            Path(f"{prefix}_{kind}.txt").write_text("".join(f"{n}\n" for n in sorted(names)))


def _key(seed: int, params: DemoParams, sources: Sequence[Source]) -> dict[str, Any]:
    """What must match for an existing demo to be reused: the version, seed, parameters and
    the names of the sources asked for."""
    return {
        "version": GENERATOR_VERSION,
        "seed": seed,
        "params": {**asdict(params), "sources": [s.name for s in sources]},
    }


def _existing(root: Path, key: dict[str, Any]) -> DemoInfo | None:
    manifest = root / MANIFEST
    if not manifest.is_file():
        return None
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if {k: meta.get(k) for k in key} != json.loads(json.dumps(key)):
        return None
    return DemoInfo.read(root)


def _generate(out: Path, seed: int, params: DemoParams, sources: Sequence[Source]) -> None:
    """Write the whole benchmark into the empty folder `out`, `demo.json` last."""
    photos, textures = _load_sources(sources)
    photos = {name: _downscale(image, params.max_side) for name, image in photos.items()}
    by_photo = {
        name: regions
        for name, image in photos.items()
        if (regions := _regions(name, image, params.tile))
    }
    split = split_regions(by_photo, params, seed)
    jobs = list(_jobs(split, params, out))
    grays = [
        cv2.cvtColor(t, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0 for t in textures.values()
    ]
    views = _render_all(jobs, photos, grays, params, seed)
    _write_gt(out / "gt", split, views, params)
    used = sorted({r.source for r in (*split.test, *split.distractor, *split.train)})
    counts = {
        "photos": len(by_photo),
        "regions": sum(map(len, by_photo.values())),
        "test_instances": len(split.test),
        "queries": len(split.test),
        "database_images": len(split.test) * params.test_views + params.n_distractors,
        "distractors": params.n_distractors,
        "distractor_regions": len(split.distractor),
        "train_instances": len(split.train),
        "train_images": len(split.train) * params.train_views,
    }
    instances = {
        role: {r.name: {"source": r.source, "box": list(r.box)} for r in regions}
        for role, regions in (
            ("test", split.test),
            ("distractor", split.distractor),
            ("train", split.train),
        )
    }
    manifest = {
        **_key(seed, params, sources),
        "sources": used,
        "skipped_sources": sorted({s.name for s in sources} - set(photos) - set(textures)),
        "textures": sorted(textures),
        "split": split.rule,
        "counts": counts,
        "instances": instances,
    }
    (out / MANIFEST).write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def _install(built: Path, root: Path) -> None:
    """Put the finished folder `built` at `root`, replacing an older demo there. Each step is
    a rename, so `root` never holds a half-written demo."""
    if not root.exists():
        built.rename(root)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
    root.rename(trash / root.name)
    built.rename(root)
    shutil.rmtree(trash, ignore_errors=True)


def build_demo(
    root: str | Path,
    *,
    seed: int = 0,
    difficulty: float = 0.5,
    sources: Sequence[Source] | None = None,
    **params: Any,
) -> DemoInfo:
    """Generate the demo benchmark at `root`, or reuse the one there.

    `params` are the other fields of `DemoParams`. `sources` defaults to `default_sources`
    with opencv-doc's folder from `opencv_doc_dir()`. If `root/demo.json` records the same
    version, seed, parameters and source names, nothing is written; otherwise the demo is built
    in a temporary folder beside `root` and renamed into place. A non-empty `root` without a
    `demo.json` is not ours to replace and raises `FileExistsError`.
    """
    root = Path(root)
    demo_params = DemoParams(difficulty=difficulty, **params)
    sources = default_sources(opencv_doc_dir()) if sources is None else tuple(sources)
    bad = [s.name for s in sources if not NAME.fullmatch(s.name)]
    if bad or len({s.name for s in sources}) < len(sources):
        raise ValueError(
            f"source names must be unique and match {NAME.pattern}: {bad or 'duplicates'}"
        )
    key = _key(seed, demo_params, sources)
    if (info := _existing(root, key)) is not None:
        return info
    if root.exists() and not (root / MANIFEST).is_file() and any(root.iterdir()):
        raise FileExistsError(
            f"{root}: not empty and not a demo benchmark (no {MANIFEST}); refusing to replace it"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    building = Path(tempfile.mkdtemp(prefix=f".{root.name}.building-", dir=root.parent))
    try:
        _generate(building, seed, demo_params, sources)
        if (info := _existing(root, key)) is not None:  # another process finished first
            return info
        _install(building, root)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    info = DemoInfo.read(root)
    log.info("demo: built %s in %.1f s: %s", root, time.perf_counter() - start, info.counts)
    return info


def demo_benchmark(
    root: str | Path, *, seed: int = 0, difficulty: float = 0.5, **params: Any
) -> Benchmark:
    """The demo as a `Benchmark` (Oxford protocol), built first where needed: the reader the
    `benchmark=demo` config names."""
    info = build_demo(root, seed=seed, difficulty=difficulty, **params)
    return read_oxford(info.root, name="demo", query_prefix="")


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m ncl.data.demo ROOT [--seed N]`: build (or reuse) the demo and print its counts."""
    parser = argparse.ArgumentParser(
        prog="python -m ncl.data.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", type=float, default=DemoParams.difficulty)
    parser.add_argument("--no-opencv", action="store_true", help="leave out opencv-doc's photos")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sources = default_sources(None if args.no_opencv else opencv_doc_dir())
    start = time.perf_counter()
    info = build_demo(args.root, seed=args.seed, difficulty=args.difficulty, sources=sources)
    seconds = time.perf_counter() - start
    print(
        f"demo benchmark at {info.root}: seed {info.seed}, split by {info.split}, {seconds:.1f} s"
    )
    for name, value in info.counts.items():
        print(f"  {name:18s} {value}")
    print(f"  sources            {', '.join(info.sources)}")


if __name__ == "__main__":
    main()
