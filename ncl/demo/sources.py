"""The demo's photographs: real photos that ship inside installed packages (scikit-image,
scikit-learn, matplotlib) and, where installed, Debian's opencv-doc examples.

They are what lets the demo be generated offline on any machine. Each source is loaded lazily (a
missing one is skipped and recorded, not fatal) and names the file it reads, whose stamp is an
input of the built demo: a replaced photo makes the demo stale. Of the texture photos (brick,
grass, gravel) only backgrounds and occluders are made, never instances or distractors.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NoReturn

import numpy as np

from ncl.cache import file_stamp
from ncl.io.decode import read_rgb

log = logging.getLogger(__name__)

OPENCV_DOC_DIR = Path("/usr/share/doc/opencv-doc/examples/data")
OPENCV_DIR_ENV = "NCL_DEMO_OPENCV_DIR"
# Source, instance and image names: what Oxford's ground-truth file names can hold.
NAME = re.compile(r"[a-z0-9_]+")

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


@dataclass(frozen=True)
class Source:
    """A named real photograph and its loader (RGB uint8, H x W x 3). A `texture` source is
    used only for backgrounds and occluders, never as an instance or distractor. `file` is the
    file the loader reads, where there is one: its stamp goes into the demo's inputs."""

    name: str
    load: Callable[[], np.ndarray]
    texture: bool = False
    file: Path | None = None

    def stamp(self) -> str:
        """What stands in for the photo's content: its file's size and modification time, or
        "no file" for a loader without one (its name then stands in alone)."""
        return "no file" if self.file is None else file_stamp(self.file)


def package_file(package: str, relative: str) -> Path | None:
    """A data file inside an installed package, located without importing the package; None
    when the package is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / relative


def _not_installed(package: str) -> NoReturn:
    raise FileNotFoundError(f"package {package!r} is not installed")


def _package_source(name: str, package: str, relative: str, *, texture: bool = False) -> Source:
    file = package_file(package, relative)
    if file is None:
        return Source(name, partial(_not_installed, package), texture)
    return Source(name, partial(read_rgb, file), texture, file)


def _source_name(text: str) -> str:
    """Lowercase letters, digits and underscores, as instance and image names must be."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def opencv_doc_dir() -> Path | None:
    """The opencv-doc photo folder: `$NCL_DEMO_OPENCV_DIR` where set (empty: none), else Debian's."""
    value = os.environ.get(OPENCV_DIR_ENV)
    if value is None:
        return OPENCV_DOC_DIR
    return Path(value) if value else None


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
            path = opencv_dir / file
            name = f"ocv_{_source_name(Path(file).stem)}"
            sources.append(Source(name, partial(read_rgb, path), file=path))
    return tuple(sources)


def check_names(sources: Sequence[Source]) -> None:
    """Source names become instance and image names: they must be unique and match `NAME`."""
    bad = [s.name for s in sources if not NAME.fullmatch(s.name)]
    if bad or len({s.name for s in sources}) < len(sources):
        raise ValueError(
            f"source names must be unique and match {NAME.pattern}: {bad or 'duplicates'}"
        )


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


def load_sources(sources: Sequence[Source]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
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
