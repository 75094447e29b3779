"""Image sets: the named lists of files that codes are extracted from.

A benchmark gives two (its database, and its cropped queries where the protocol crops them); a
plain folder gives one (e.g. the separate set PCA is fitted on). Decoding is OpenCV's
(libjpeg-turbo), raw pixels with any EXIF orientation ignored (benchmarks' rotations are explicit);
an unreadable image is reported by name, never zero-filled.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from ncl.cache import file_stamp
from ncl.data.benchmarks.base import BBox, Benchmark
from ncl.data.transforms import crop_box, rotate90
from ncl.io.decode import UnreadableImage, read_rgb, read_rgb_reduced
from ncl.io.geometry import quarter_turns

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")
# how extraction decodes: whole, or large JPEGs at a reduced size (`ncl.io.decode`)
DECODES = ("full", "reduced")


@dataclass(frozen=True)
class ImageSet:
    """Files to extract, each with a unique `name` (the id its codes are stored under)."""

    name: str
    names: list[str]
    files: list[Path]
    boxes: list[BBox | None] | None = None
    rotations: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.files):
            raise ValueError(
                f"image set {self.name}: {len(self.names)} names, {len(self.files)} files"
            )
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"image set {self.name}: image names are not unique")

    def __len__(self) -> int:
        return len(self.names)

    def stamps(self) -> list[str]:
        """One line per image of what stands in for its content as coded: file size and mtime,
        crop box and rotation. Two sets' images with equal stamps have equal codes, which lets a
        changed folder be coded again only where it changed (`ncl.codes.incremental`)."""
        lines = []
        for i, (name, path) in enumerate(zip(self.names, self.files, strict=True)):
            box = self.boxes[i] if self.boxes else None
            lines.append(
                f"{file_stamp(path)}\t{json.dumps(box)}\t{self.rotations.get(name, 0) % 360}"
            )
        return lines

    def fingerprint(self) -> str:
        """Changes when any image, crop box or rotation does (file size and mtime stand in for
        content), so codes of a regenerated or edited set are never taken for current."""
        h = hashlib.sha1()
        for name, stamp in zip(self.names, self.stamps(), strict=True):
            h.update(f"{name}\0{stamp}\n".encode())
        return h.hexdigest()[:16]

    def turned(self, degrees: int) -> ImageSet:
        """The same images each turned `degrees` more counter-clockwise, as their own set
        (`<name>_rot<degrees>`): e.g. Holidays' database at +-90 degrees for its sideways photos.
        Every code source (network taps, combinations, baselines) reads rotations from the set,
        so all of them turn alike."""
        quarter_turns(degrees)  # a clear error for anything but multiples of 90
        return replace(
            self,
            name=f"{self.name}_rot{degrees}",
            rotations={n: (self.rotations.get(n, 0) + degrees) % 360 for n in self.names},
        )


def folder_image_set(name: str, root: str | Path) -> ImageSet:
    """Every image below `root`, named by its relative path without extension."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: image folder not found (image set {name!r})")
    try:
        with os.scandir(root):
            pass
    except PermissionError as e:
        raise PermissionError(f"{root}: cannot read the folder ({e.strerror})") from e
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) below it")
    names = [p.relative_to(root).with_suffix("").as_posix() for p in files]
    return ImageSet(name=name, names=names, files=files)


def image_set_at(path: str | Path, name: str) -> ImageSet:
    """The images of a folder (below it), or one image file, as the image set `name`."""
    path = Path(path)
    if path.is_dir():
        return folder_image_set(name, path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such image or folder")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: not an image file (expected {', '.join(IMAGE_SUFFIXES)})")
    return ImageSet(name=name, names=[path.stem], files=[path])


def database_image_set(benchmark: Benchmark) -> ImageSet:
    return ImageSet(
        name=benchmark.name,
        names=list(benchmark.database),
        files=list(benchmark.database_files),
        rotations=benchmark.rotations,
    )


def query_image_set(benchmark: Benchmark, crop: bool = True) -> ImageSet:
    """The queries as their own set, named by query name, cropped to their box when `crop`."""
    queries = benchmark.queries
    return ImageSet(
        name=f"{benchmark.name}_queries{'' if crop else '_uncropped'}",
        names=[q.name for q in queries],
        files=[q.path for q in queries],
        boxes=[q.bbox if crop else None for q in queries],
        rotations={
            q.name: benchmark.rotations[q.image] for q in queries if q.image in benchmark.rotations
        },
    )


def read_image(path: Path) -> torch.Tensor | None:
    """A uint8 3 x H x W RGB tensor, or None (with a warning naming the file) if unreadable."""
    return read_image_reduced(path)[0]


def read_image_reduced(
    path: Path, reduce_to: int | None = None, box: BBox | None = None
) -> tuple[torch.Tensor | None, BBox | None]:
    """`read_image`, and `box` in its pixels: with `reduce_to`, a large JPEG is decoded at a
    reduced size that keeps the box (or the image) at least `reduce_to` pixels on both sides."""
    try:
        if reduce_to is None:
            array, factor = read_rgb(path), 1
        else:
            array, factor = read_rgb_reduced(path, reduce_to, box)
    except UnreadableImage as e:
        log.warning("unreadable image skipped: %s", e)
        return None, box
    if box is not None and factor > 1:
        box = (box[0] / factor, box[1] / factor, box[2] / factor, box[3] / factor)
    return torch.from_numpy(array).permute(2, 0, 1), box


class ImageSetDataset(Dataset):
    """Items are (image tensor or None when unreadable, index into the image set); with
    `reduce_to`, large JPEGs are decoded at a reduced size (`read_image`)."""

    def __init__(
        self,
        images: ImageSet,
        transform: Callable[[torch.Tensor], torch.Tensor],
        indices: Sequence[int] | None = None,
        reduce_to: int | None = None,
    ) -> None:
        self.images = images
        self.transform = transform
        self.indices = list(range(len(images))) if indices is None else list(indices)
        self.reduce_to = reduce_to

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[torch.Tensor | None, int]:
        index = self.indices[item]
        box = self.images.boxes[index] if self.images.boxes else None
        image, box = read_image_reduced(self.images.files[index], self.reduce_to, box)
        if image is None:
            return None, index
        name = self.images.names[index]
        if box is not None:
            image = crop_box(image, box)
        degrees = self.images.rotations.get(name, 0) % 360
        if degrees:
            image = rotate90(image, degrees)
        return self.transform(image), index


def collate_skipping_failures(
    batch: list[tuple[torch.Tensor | tuple[torch.Tensor, ...] | None, int]],
) -> tuple[torch.Tensor | tuple[torch.Tensor, ...], torch.Tensor, list[int]]:
    """Stack the readable images (a transform giving one tensor per scale: a stack per scale);
    hand on the indices of the unreadable ones."""
    good = [(x, i) for x, i in batch if x is not None]
    failed = [i for x, i in batch if x is None]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), failed
    first = good[0][0]
    images = (
        tuple(torch.stack(scale) for scale in zip(*(x for x, _ in good), strict=True))
        if isinstance(first, tuple)
        else torch.stack([x for x, _ in good])
    )
    return images, torch.tensor([i for _, i in good], dtype=torch.long), failed


def leave_inherited_objects_alone(worker_id: int) -> None:
    """In a forked loader worker, keep the garbage collector off every object inherited from the
    parent: collecting one there runs its destructor in a process that has none of its threads,
    and an onnxruntime session's destructor then waits for its thread pool forever (seen: a
    worker stuck on a futex, the extraction with it)."""
    gc.freeze()


class ImageSetDataModule(pl.LightningDataModule):
    """Predict-only data of one image set (or the `indices` of it still to do); Lightning adds
    the DistributedSampler when several devices share the work."""

    def __init__(
        self,
        images: ImageSet,
        transform: Callable[[torch.Tensor], torch.Tensor],
        *,
        indices: Sequence[int] | None = None,
        batch_size: int = 32,
        num_workers: int = 2,
        reduce_to: int | None = None,
    ) -> None:
        super().__init__()
        self.dataset = ImageSetDataset(images, transform, indices, reduce_to)
        self.batch_size = batch_size
        self.num_workers = num_workers

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=collate_skipping_failures,
            pin_memory=torch.cuda.is_available(),
            worker_init_fn=leave_inherited_objects_alone,
        )
