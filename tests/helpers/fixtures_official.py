"""Tiny benchmarks written in the exact official on-disk formats, for reader and end-to-end tests.

Each `write_*` function creates real (small, random) JPEGs and ground-truth files under `root`
the way the official archives lay them out, and returns a fixture object that says what it
wrote, so tests can compare a reader's output with the truth without re-parsing anything:

- `write_oxford`: `jpg/*.jpg` + `gt/<landmark>_<k>_{query,good,ok,junk}.txt` with `oxc1_` query
  prefixes and float boxes; optional Flickr-style distractor folder.
- `write_paris`: the same ground truth without prefix, images in `jpg/paris/<landmark>/`.
- `write_revisited`: `gnd_<name>.pkl` with revisitop's keys (`imlist`, `qimlist`, `gnd` with
  `bbx`, `easy`, `hard`, `junk`) and `jpg/` images.
- `write_holidays`: `jpg/NNNNMM.jpg`, `holidays_images.dat`, optional rotation list.
- `write_ukb`: `full/ukbenchNNNNN.jpg`.
- `write_ranks`: a ranks file in `ncl.eval.score`'s format.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .images import write_jpeg

BBox = tuple[float, float, float, float]


def _write_text(path: Path, lines: Iterable[str]) -> None:
    """Lines each ending with a newline, as the official lists are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


# --- Oxford5k / Paris6k -------------------------------------------------------------------------


@dataclass(frozen=True)
class OxfordQuerySpec:
    """What one query's four gt files say (image without prefix)."""

    image: str
    bbox: BBox
    good: list[str]
    ok: list[str]
    junk: list[str]

    @property
    def positives(self) -> list[str]:
        return self.good + self.ok


@dataclass(frozen=True)
class OxfordFixture:
    """`database`: benchmark image names sorted (the reader's order), then `distractors`;
    `files`: name -> path of every image written; `queries`: gt prefix -> spec, sorted."""

    root: Path
    image_dir: Path
    gt_dir: Path
    database: list[str]
    distractors: list[str]
    files: dict[str, Path]
    queries: dict[str, OxfordQuerySpec]
    distractor_dir: Path | None = None


def write_oxford(
    root: str | Path,
    *,
    landmarks: Sequence[str] = ("all_souls", "radcliffe_camera"),
    images_per_landmark: int = 6,
    queries_per_landmark: int = 2,
    n_other: int = 3,
    other_name: str = "oxford",
    query_prefix: str = "oxc1_",
    name_prefix: str = "",
    per_landmark_folders: bool = False,
    box_format: str = "{:.1f}",
    n_distractors: int = 0,
    distractor_dir: str = "flickr100k",
    image_dir: str = "jpg",
    gt_dir: str = "gt",
) -> OxfordFixture:
    """An Oxford5k-style benchmark: per landmark `images_per_landmark` images
    `<name_prefix><landmark>_00000i` and `queries_per_landmark` queries `<landmark>_<k>`, plus
    `n_other` unrelated images. Query k of a landmark uses its k-th image; its good list is the
    first half of the landmark's images (the query among them, as in Oxford), ok the rest but
    the last, junk the last one.
    """
    if images_per_landmark < 3 or not 1 <= queries_per_landmark <= images_per_landmark:
        raise ValueError("need >= 3 images per landmark and 1..images_per_landmark queries")
    root = Path(root)
    images, gt = root / image_dir, root / gt_dir
    files: dict[str, Path] = {}
    queries: dict[str, OxfordQuerySpec] = {}

    def add(name: str, folder: str) -> None:
        sub = images / folder if per_landmark_folders else images
        files[name] = write_jpeg(sub / f"{name}.jpg", seed=len(files))

    for landmark in landmarks:
        names = [f"{name_prefix}{landmark}_{i:06d}" for i in range(1, images_per_landmark + 1)]
        for name in names:
            add(name, landmark)
        half = images_per_landmark // 2
        for k in range(1, queries_per_landmark + 1):
            bbox = (1.5 + k, 2.1, 30.5 - k, 22.7)
            spec = OxfordQuerySpec(
                image=names[k - 1], bbox=bbox, good=names[:half], ok=names[half:-1], junk=names[-1:]
            )
            query = f"{landmark}_{k}"
            queries[query] = spec
            box = " ".join(box_format.format(v) for v in bbox)
            _write_text(gt / f"{query}_query.txt", [f"{query_prefix}{spec.image} {box}"])
            for kind in ("good", "ok", "junk"):
                _write_text(gt / f"{query}_{kind}.txt", getattr(spec, kind))
    for i in range(1, n_other + 1):
        add(f"{name_prefix}{other_name}_{i:06d}", "general")
    distractors = []
    distractor_path = root / distractor_dir if n_distractors else None
    for i in range(n_distractors):
        name = f"flickr_{i:06d}"
        files[name] = write_jpeg(
            root / distractor_dir / f"{i % 2}" / f"{name}.jpg", seed=10_000 + i
        )
        distractors.append(name)
    return OxfordFixture(
        root=root,
        image_dir=images,
        gt_dir=gt,
        database=sorted(n for n in files if n not in distractors),
        distractors=sorted(distractors),
        files=files,
        queries=dict(sorted(queries.items())),
        distractor_dir=distractor_path,
    )


def write_paris(root: str | Path, **kwargs) -> OxfordFixture:
    """A Paris6k-style benchmark: no query prefix, `paris_<landmark>_NNNNNN` names, images in
    per-landmark folders, boxes with six decimals (`write_oxford` keywords override)."""
    options = {
        "landmarks": ("defense", "eiffel"),
        "other_name": "general",
        "query_prefix": "",
        "name_prefix": "paris_",
        "per_landmark_folders": True,
        "box_format": "{:.6f}",
        "image_dir": "jpg/paris",
    }
    return write_oxford(root, **{**options, **kwargs})


# --- Revisited Oxford / Paris -------------------------------------------------------------------

DEFAULT_GND: tuple[dict[str, list[int]], ...] = (
    {"easy": [0, 1], "hard": [2], "junk": [3]},
    {"easy": [], "hard": [4, 5], "junk": [6]},
    {"easy": [7], "hard": [], "junk": [8, 9]},
)


@dataclass(frozen=True)
class RevisitedFixture:
    root: Path
    gnd_file: Path
    image_dir: Path
    imlist: list[str]
    qimlist: list[str]
    gnd: list[dict]


def write_revisited(
    root: str | Path,
    *,
    name: str = "roxford5k",
    n_images: int = 12,
    gnd: Sequence[Mapping[str, list[int]]] = DEFAULT_GND,
    images: bool = True,
    image_dir: str = "jpg",
) -> RevisitedFixture:
    """`gnd_<name>.pkl` as revisitop ships it, over `n_images` database images and one query per
    entry of `gnd` (easy/hard/junk index lists). The default has a query without easy positives
    and one without hard positives. `images=False` writes only an empty image folder."""
    root = Path(root)
    imlist = [f"oxford_{i:06d}" for i in range(n_images)]
    qimlist = [f"all_souls_{i:06d}" for i in range(len(gnd))]
    entries = [
        {
            "bbx": [1.5 + i, 2.0, 30.0, 22.5],
            "easy": list(g["easy"]),
            "hard": list(g["hard"]),
            "junk": list(g["junk"]),
        }
        for i, g in enumerate(gnd)
    ]
    gnd_file = root / f"gnd_{name}.pkl"
    root.mkdir(parents=True, exist_ok=True)
    with gnd_file.open("wb") as f:
        pickle.dump({"gnd": entries, "imlist": imlist, "qimlist": qimlist}, f)
    folder = root / image_dir
    folder.mkdir(parents=True, exist_ok=True)
    if images:
        for i, n in enumerate(imlist + qimlist):
            write_jpeg(folder / f"{n}.jpg", seed=i)
    return RevisitedFixture(
        root=root, gnd_file=gnd_file, image_dir=folder, imlist=imlist, qimlist=qimlist, gnd=entries
    )


# --- INRIA Holidays -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HolidaysFixture:
    """`names` sorted by number, `groups` the group of each, `queries` the query names;
    `list_file` is `holidays_images.dat`; `rotation_file` is None unless rotations were given."""

    root: Path
    image_dir: Path
    names: list[str]
    groups: list[int]
    queries: list[str]
    list_file: Path
    rotation_file: Path | None = None


def write_holidays(
    root: str | Path,
    *,
    n_groups: int = 3,
    group_sizes: Sequence[int] | None = None,
    image_dir: str = "jpg",
    rotations: Mapping[str, int] | None = None,
) -> HolidaysFixture:
    """Holidays images `NNNNMM.jpg`: group g (from 1000) holds `(g*100 + m)` for m < size, the
    m = 0 image being its query. Default sizes cycle 2, 3, 4. `rotations` (name -> degrees)
    writes `rotations.txt` in the `<name> <degrees>` format."""
    root = Path(root)
    sizes = list(group_sizes) if group_sizes is not None else [2 + g % 3 for g in range(n_groups)]
    names, groups = [], []
    for g, size in enumerate(sizes):
        group = 1000 + g
        for m in range(size):
            name = f"{group * 100 + m:06d}"
            write_jpeg(root / image_dir / f"{name}.jpg", seed=len(names))
            names.append(name)
            groups.append(group)
    list_file = root / "holidays_images.dat"
    _write_text(list_file, [f"{n}.jpg" for n in names])
    rotation_file = None
    if rotations is not None:
        rotation_file = root / "rotations.txt"
        _write_text(rotation_file, [f"{n} {d}" for n, d in rotations.items()])
    return HolidaysFixture(
        root=root,
        image_dir=root / image_dir,
        names=names,
        groups=groups,
        queries=[n for n in names if int(n) % 100 == 0],
        list_file=list_file,
        rotation_file=rotation_file,
    )


# --- UKB ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UKBFixture:
    root: Path
    image_dir: Path
    names: list[str]


def write_ukb(root: str | Path, *, n_objects: int = 3, image_dir: str = "full") -> UKBFixture:
    """`ukbench00000.jpg` … for `n_objects` objects of 4 views; `image_dir="."` writes them
    directly in `root`."""
    root = Path(root)
    names = [f"ukbench{i:05d}" for i in range(4 * n_objects)]
    for i, n in enumerate(names):
        write_jpeg(root / image_dir / f"{n}.jpg", seed=i)
    return UKBFixture(root=root, image_dir=root / image_dir, names=names)


# --- ranked lists -------------------------------------------------------------------------------


def write_ranks(path: str | Path, lists: Mapping[str, Sequence[str]]) -> Path:
    """A ranks file for `python -m ncl.eval.score`: `query: name1 name2 ...` per line."""
    path = Path(path)
    _write_text(path, [f"{q}: {' '.join(names)}" for q, names in lists.items()])
    return path
