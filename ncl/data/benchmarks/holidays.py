"""INRIA Holidays (Jégou et al. 2008): 1,491 images `NNNNMM.jpg` in 500 groups.

The group is int(name) // 100 and its query is the image whose number is a multiple of 100.
Scoring follows `holidays_map.py`: the query is removed from its own ranked list (later ranks
move up one) and the rest of its group are the positives. Here the query's own index is its only
junk, which skips it in the same way.

Many Holidays images are stored rotated by ±90°. The paper evaluates on a manually rotated
upright version; a rotation list (`<image name> <degrees>` per line, degrees counter-clockwise
that make the image upright, one of 0, 90, 180, 270 or -90) gives the same effect without
rewriting the images. Its values land in `Benchmark.rotations`, normalised to 0, 90, 180, 270.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ncl.data.benchmarks._files import image_folder, list_jpegs, read_lines
from ncl.data.benchmarks.base import Benchmark, BenchmarkFormatError, Query
from ncl.protocols.official import APProtocol

_NUMBER = re.compile(r"\d+")
_ROTATIONS = (0, 90, 180, 270, -90)


@dataclass(frozen=True)
class HolidaysGroundTruth:
    """`names` sorted by number (the database order), `queries` their database indices."""

    names: list[str]
    queries: list[int]
    protocol: APProtocol


def holidays_ground_truth(names: Iterable[str], source: Path) -> HolidaysGroundTruth:
    """Groups, queries and protocol from the image names alone; `source` names them in errors."""
    names = list(names)
    bad = [n for n in names if not _NUMBER.fullmatch(n)]
    if bad:
        raise BenchmarkFormatError(
            f"{source}: Holidays image names must be numbers (NNNNMM), got {bad[0]!r}"
        )
    names.sort(key=int)
    numbers = np.array([int(n) for n in names], dtype=np.int64)
    if len(np.unique(numbers)) != len(numbers):
        raise BenchmarkFormatError(f"{source}: two Holidays images with one number")
    if not names:
        raise BenchmarkFormatError(f"{source}: no Holidays images")
    groups = numbers // 100
    queries = np.flatnonzero(numbers % 100 == 0)
    orphans = np.setdiff1d(groups, groups[queries])
    if orphans.size:
        raise BenchmarkFormatError(
            f"{source}: group {orphans[0]} has no query image (number {orphans[0] * 100})"
        )
    positives = [
        np.flatnonzero((groups == groups[q]) & (np.arange(len(names)) != q)) for q in queries
    ]
    protocol = APProtocol(positives, [[q] for q in queries])
    return HolidaysGroundTruth(names=names, queries=queries.tolist(), protocol=protocol)


def read_rotations(path: Path, names: Iterable[str]) -> dict[str, int]:
    """Image name -> degrees counter-clockwise (0, 90, 180, 270) from a rotation list file."""
    known = set(names)
    rotations: dict[str, int] = {}
    for line in read_lines(path, "rotation list"):
        fields = line.split()
        if len(fields) != 2 or fields[1] not in {str(d) for d in _ROTATIONS}:
            raise BenchmarkFormatError(
                f"{path}: expected '<image> <degrees>' with degrees in {_ROTATIONS}, got {line!r}"
            )
        name = fields[0][: -len(".jpg")] if fields[0].lower().endswith(".jpg") else fields[0]
        if name not in known:
            raise BenchmarkFormatError(f"{path}: image {name!r} is not a Holidays image")
        rotations[name] = int(fields[1]) % 360
    return rotations


def read_holidays(
    root: str | Path, *, image_dir: str | Path = "jpg", rotation_file: str | Path | None = None
) -> Benchmark:
    """Holidays under `root`: images in `root/image_dir` (or directly in `root`), optionally a
    rotation list (relative to `root`). Queries are database images, used whole."""
    root = Path(root)
    folder = image_folder(root, image_dir, "Holidays")
    images = list_jpegs(folder, recursive=False)
    gt = holidays_ground_truth(images, folder)
    rotations = read_rotations(root / rotation_file, gt.names) if rotation_file is not None else {}
    queries = [
        Query(name=gt.names[q], image=gt.names[q], path=images[gt.names[q]]) for q in gt.queries
    ]
    return Benchmark(
        name="holidays",
        database=gt.names,
        database_files=[images[n] for n in gt.names],
        queries=queries,
        protocol=gt.protocol,
        queries_in_database=True,
        rotations=rotations,
    )
