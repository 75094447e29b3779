"""University of Kentucky Benchmark (Nistér & Stewénius 2006): `ukbench00000.jpg` …
`ukbench10199.jpg`, four views per object (group = number // 4). Every image is a query over all
images; the N-S score counts the query's group, itself included, in its top 4 (perfect: 4.0).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ncl.data.benchmarks._files import image_folder, list_jpegs
from ncl.data.benchmarks.base import Benchmark, BenchmarkFormatError, Query
from ncl.protocols.official import UKBProtocol

_NAME = re.compile(r"ukbench(\d+)")
GROUP_SIZE = 4


@dataclass(frozen=True)
class UKBGroundTruth:
    """`names` sorted by number: the database order, and query i is database image i."""

    names: list[str]
    protocol: UKBProtocol


def ukb_ground_truth(names: Iterable[str], source: Path) -> UKBGroundTruth:
    """Groups and protocol from the image names alone; `source` names them in errors.

    Every group must be complete: N-S assumes four relevant images per query, so a partial
    group would silently lower the best reachable score.
    """
    numbers: dict[int, str] = {}
    for name in names:
        match = _NAME.fullmatch(name)
        if not match:
            raise BenchmarkFormatError(f"{source}: {name!r} is not a UKB image name (ukbenchNNNNN)")
        number = int(match.group(1))
        if number in numbers:
            raise BenchmarkFormatError(
                f"{source}: {name!r} and {numbers[number]!r} have one number"
            )
        numbers[number] = name
    if not numbers:
        raise BenchmarkFormatError(f"{source}: no UKB images (ukbenchNNNNN.jpg)")
    order = sorted(numbers)
    groups = np.array(order, dtype=np.int64) // GROUP_SIZE
    ids, counts = np.unique(groups, return_counts=True)
    if (counts != GROUP_SIZE).any():
        g = int(ids[counts != GROUP_SIZE][0])
        raise BenchmarkFormatError(
            f"{source}: object {g} has {counts[ids == g][0]} of its {GROUP_SIZE} images "
            f"(ukbench{g * GROUP_SIZE:05d} … ukbench{g * GROUP_SIZE + GROUP_SIZE - 1:05d})"
        )
    return UKBGroundTruth(names=[numbers[n] for n in order], protocol=UKBProtocol(groups))


def read_ukb(root: str | Path, *, image_dir: str | Path = "full", name: str = "ukb") -> Benchmark:
    """UKB under `root`: images in `root/image_dir` (the official `full/`) or directly in `root`;
    `name` tells a part of it (e.g. the 1,000-image sample) from the whole in stores and results."""
    root = Path(root)
    folder = image_folder(root, image_dir, "UKB")
    images = list_jpegs(folder, recursive=False)
    gt = ukb_ground_truth(images, folder)
    files = [images[n] for n in gt.names]
    return Benchmark(
        name=name,
        database=gt.names,
        database_files=files,
        queries=[Query(name=n, image=n, path=p) for n, p in zip(gt.names, files, strict=True)],
        protocol=gt.protocol,
        queries_in_database=True,
    )
