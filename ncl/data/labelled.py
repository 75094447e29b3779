"""Labelled image lists for classifier training, read from the datasets' on-disk layouts.

A *layout* knows where one dataset keeps its images and how its classes and validation split are
defined; `load()` scans the disk and returns the `Splits` (file lists with integer labels) that
`ncl.data.datamodule.LabelledDataModule` turns into data loaders. Layouts are small dataclasses so
that a Hydra config names one with `_target_` and its root hangs off `paths.data_dir`.

- `ImageNetLayout`: `train/<wnid>/*.JPEG`, `val/<wnid>/*.JPEG`; val labels follow the train
  class list.
- `LandmarksLayout` (paper, section 4): a folder per class, or a list file of
  `relative/path class_name` lines; the dataset is distributed as URL lists, so files that failed
  to download are missing and are skipped with a warning. Without a val list, a seeded fraction of
  each class is held out.
- `RGBDLayout` (paper, section 4): the Multi-view RGB-D object dataset,
  `<category>/<instance>/<instance>_<video>_<frame>_crop.png`; class = instance, depth and mask
  crops are ignored, a seeded sample of `per_class` images per instance (the paper: 200 of each
  of the 300 instances), and a validation sample from the frames not taken for training.
- `ClassFolderLayout`: any `<class>/<image>` folder, with a val folder or a held-out fraction.

The embedded demo's training split has its layout beside its generator, in `ncl.demo.layout`
(it builds the demo first, and `ncl.data` does not import the generator).

Problems are reported by path: a missing root fails at once, a training class without images is
an error (it could never be learned), anything that is merely incomplete is a warning.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ncl.data.images import IMAGE_SUFFIXES
from ncl.io.paths import require_dir

log = logging.getLogger(__name__)

RGBD_SUFFIX = "_crop.png"


@dataclass(frozen=True)
class Samples:
    """Image files with their class index into `classes`."""

    files: list[Path]
    labels: list[int]
    classes: list[str]

    def __post_init__(self) -> None:
        if len(self.files) != len(self.labels):
            raise ValueError(f"{len(self.files)} files but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.files)

    def by_class(self) -> dict[int, list[Path]]:
        grouped: dict[int, list[Path]] = defaultdict(list)
        for path, label in zip(self.files, self.labels, strict=True):
            grouped[label].append(path)
        return grouped


@dataclass(frozen=True)
class Splits:
    """The training samples and, where the layout defines one, the validation samples (same
    class list)."""

    train: Samples
    val: Samples | None

    @property
    def classes(self) -> list[str]:
        return self.train.classes


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def _from_groups(groups: dict[str, list[Path]]) -> Samples:
    classes = sorted(groups)
    files = [f for name in classes for f in groups[name]]
    labels = [i for i, name in enumerate(classes) for _ in groups[name]]
    return Samples(files, labels, classes)


def class_folders(root: str | Path, classes: Sequence[str] | None = None) -> Samples:
    """Every image below `root/<class>/`, labelled by its class folder.

    Without `classes` the sorted folder names are the classes, and a folder without images is an
    error. With `classes` (a validation folder read against the training classes) the labels
    follow that list, a folder of an unknown class is an error and a class without a folder only
    warns.
    """
    root = require_dir(root, "image")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    groups = {p.name: _images_in(p) for p in folders}
    empty = [str(root / name) for name, files in groups.items() if not files]
    if classes is None:
        if not folders:
            raise FileNotFoundError(f"{root}: no class folders in it (expected <class>/<image>)")
        if empty:
            raise ValueError(f"class folder(s) without images: {', '.join(empty)}")
        return _from_groups(groups)
    unknown = sorted(set(groups) - set(classes))
    if unknown:
        raise ValueError(f"{root}: class folder(s) not among the training classes: {unknown[:10]}")
    if empty:
        log.warning("validation class folder(s) without images: %s", ", ".join(empty))
    absent = [c for c in classes if not groups.get(c)]
    if absent:
        log.warning(
            "%s: %d training class(es) have no validation images (e.g. %s)",
            root,
            len(absent),
            absent[:5],
        )
    index = {name: i for i, name in enumerate(classes)}
    files = [f for name in sorted(groups) for f in groups[name]]
    labels = [index[name] for name in sorted(groups) for _ in groups[name]]
    if not files:
        raise FileNotFoundError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) below it")
    return Samples(files, labels, list(classes))


def read_list_file(
    list_file: str | Path, root: str | Path, classes: Sequence[str] | None = None
) -> Samples:
    """Samples from `relative/path class_name` lines (paths relative to `root`; blank lines and
    `#` comments skipped).

    Listed files that are not on disk (failed downloads) are skipped with one warning; a class
    left without any file is dropped with a warning naming it. With `classes`, the labels follow
    that list and lines of other classes are skipped with a warning.
    """
    list_file, root = Path(list_file), require_dir(root, "image root")
    if not list_file.is_file():
        raise FileNotFoundError(f"{list_file}: list file not found")
    groups: dict[str, list[Path]] = defaultdict(list)
    missing: list[Path] = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise ValueError(f"{list_file}:{number}: expected 'relative/path class_name': {line!r}")
        path = root / parts[0]
        # the class is recorded even when none of its files was downloaded, to be reported
        files = groups[parts[1]]
        if path.is_file():
            files.append(path)
        else:
            missing.append(path)
    if missing:
        log.warning(
            "%s: %d listed file(s) not on disk, skipped (e.g. %s)",
            list_file,
            len(missing),
            ", ".join(str(p) for p in missing[:3]),
        )
    empty = sorted(name for name, files in groups.items() if not files)
    if empty:
        log.warning("%s: class(es) without any file on disk, left out: %s", list_file, empty[:20])
    groups = {name: files for name, files in groups.items() if files}
    if not groups:
        raise FileNotFoundError(f"{list_file}: none of the listed files is below {root}")
    if classes is None:
        return _from_groups(groups)
    unknown = sorted(set(groups) - set(classes))
    if unknown:
        log.warning("%s: class(es) not among the training classes, skipped: %s", list_file, unknown)
    index = {name: i for i, name in enumerate(classes)}
    kept = sorted(set(groups) & set(classes))
    return Samples(
        [f for name in kept for f in groups[name]],
        [index[name] for name in kept for _ in groups[name]],
        list(classes),
    )


def hold_out(samples: Samples, fraction: float, seed: int) -> Splits:
    """A seeded `fraction` of each class as the validation samples (at least one image of every
    class with two or more, never a class's last image)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1): {fraction}")
    if fraction == 0.0:
        return Splits(samples, None)
    rng = random.Random(seed)
    train: list[tuple[Path, int]] = []
    val: list[tuple[Path, int]] = []
    for label, files in sorted(samples.by_class().items()):
        files = list(files)
        rng.shuffle(files)
        n_val = min(max(1, round(fraction * len(files))), len(files) - 1)
        val += [(f, label) for f in sorted(files[:n_val])]
        train += [(f, label) for f in sorted(files[n_val:])]
    return Splits(_samples(train, samples.classes), _samples(val, samples.classes) or None)


def _samples(pairs: Iterable[tuple[Path, int]], classes: list[str]) -> Samples | None:
    pairs = list(pairs)
    if not pairs:
        return None
    return Samples([p for p, _ in pairs], [label for _, label in pairs], classes)


@dataclass(frozen=True)
class ClassFolderLayout:
    """`root/<class>/<image>`; validation from `val_root` (same layout) or a held-out fraction."""

    root: str
    val_root: str | None = None
    val_fraction: float = 0.1
    seed: int = 0

    def load(self) -> Splits:
        train = class_folders(self.root)
        if self.val_root is not None:
            return Splits(train, class_folders(self.val_root, train.classes))
        return hold_out(train, self.val_fraction, self.seed)


@dataclass(frozen=True)
class ImageNetLayout:
    """ILSVRC-2012 as most copies are laid out: `root/train/<wnid>/*.JPEG` and the validation
    images sorted into `root/val/<wnid>/*.JPEG` (labels by the training class list)."""

    root: str

    def load(self) -> Splits:
        root = require_dir(self.root, "ImageNet root")
        train = class_folders(require_dir(root / "train", "ImageNet training"))
        val_dir = root / "val"
        if not val_dir.is_dir():
            log.warning("%s: not found; training without validation", val_dir)
            return Splits(train, None)
        return Splits(train, class_folders(val_dir, train.classes))


@dataclass(frozen=True)
class LandmarksLayout:
    """The Landmarks dataset: class folders below `root`, or `list_file` (`relative/path
    class_name` lines, relative to `root`); validation from `val_list` or a held-out fraction."""

    root: str
    list_file: str | None = None
    val_list: str | None = None
    val_fraction: float = 0.05
    seed: int = 0

    def load(self) -> Splits:
        root = require_dir(self.root, "Landmarks root")
        if self.list_file is None:
            if self.val_list is not None:
                raise ValueError("val_list needs list_file (the class folders have no list)")
            return hold_out(class_folders(root), self.val_fraction, self.seed)
        train = read_list_file(self._resolve(self.list_file), root)
        if self.val_list is not None:
            return Splits(train, read_list_file(self._resolve(self.val_list), root, train.classes))
        return hold_out(train, self.val_fraction, self.seed)

    def _resolve(self, name: str) -> Path:
        """A list file given relative to the dataset root, or a path of its own."""
        path = Path(name)
        return path if path.is_absolute() else Path(self.root) / path


@dataclass(frozen=True)
class RGBDLayout:
    """The Multi-view RGB-D object dataset (`rgbd-dataset/<category>/<instance>/`), colour crops
    only, one class per object instance.

    `per_class` images per instance are sampled (seeded) for training; `val_per_class` more for
    validation from the frames left over (0: no validation).
    """

    root: str
    per_class: int = 200
    val_per_class: int = 20
    seed: int = 0

    def load(self) -> Splits:
        root = require_dir(self.root, "RGB-D dataset root (rgbd-dataset/)")
        groups = {
            instance.name: sorted(instance.glob(f"{instance.name}_*{RGBD_SUFFIX}"))
            for category in sorted(p for p in root.iterdir() if p.is_dir())
            for instance in sorted(p for p in category.iterdir() if p.is_dir())
        }
        if not groups:
            raise FileNotFoundError(
                f"{root}: no <category>/<instance>/ folders (expected the rgbd-dataset layout)"
            )
        empty = [name for name, files in groups.items() if not files]
        if empty:
            raise ValueError(f"{root}: instance folder(s) without *{RGBD_SUFFIX} images: {empty}")
        short = sorted(name for name, files in groups.items() if len(files) < self.per_class)
        if short:
            log.warning(
                "%s: %d instance(s) have fewer than %d crops, all taken: %s",
                root,
                len(short),
                self.per_class,
                short[:10],
            )
        classes = sorted(groups)
        rng = random.Random(self.seed)
        train: list[tuple[Path, int]] = []
        val: list[tuple[Path, int]] = []
        for label, name in enumerate(classes):
            files = list(groups[name])
            rng.shuffle(files)
            chosen = files[: self.per_class]
            rest = files[self.per_class : self.per_class + self.val_per_class]
            train += [(f, label) for f in sorted(chosen)]
            val += [(f, label) for f in sorted(rest)]
        train_samples = _samples(train, classes)
        assert train_samples is not None  # every class has at least one image
        return Splits(train_samples, _samples(val, classes))
