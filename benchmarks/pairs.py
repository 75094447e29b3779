"""Pair-mining throughput: image pairs verified per second, with and without the keypoint cache,
on 1 and 2 workers, in one run.

python -m benchmarks.pairs [--classes N] [--max-keypoints K]

Mines the demo benchmark's training split (built in the temp folder when missing; its classes
are 12 generated views of one photo region each, 66 image pairs per class) with `mine_pairs`,
end to end: listing, keypoints, matching, selection and the output files. Every run writes to a
fresh output folder, so no class is resumed. *cold*: an empty keypoint cache, so SIFT runs on
every image; *cached*: the keypoints a previous run of the same settings stored, so only the
matching is left. CPU s counts this process and its workers; pairs per CPU second do not depend
on the other jobs on the machine, whose load (the 1-minute load average at the start of each
run) slows every wall-clock figure.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2

from ncl.demo import build_demo
from ncl.pairs import KeypointSettings, MiningSettings, mine_pairs

if TYPE_CHECKING:
    from ncl.data.images import ImageSet


def demo_train(classes: int | None) -> ImageSet:
    # Imported here: the spawned workers re-import this module, and ncl.data.images imports
    # torch, which would add seconds to every worker's start.
    from ncl.data.images import ImageSet, folder_image_set

    demo = Path(tempfile.gettempdir()) / "ncl-bench-demo"
    build_demo(demo)
    images = folder_image_set("demo_train", demo / "train")
    keep = sorted({n.split("/")[0] for n in images.names})[:classes]
    chosen = [
        (n, f) for n, f in zip(images.names, images.files, strict=True) if n.split("/")[0] in keep
    ]
    return ImageSet("demo_train", [n for n, _ in chosen], [f for _, f in chosen])


def _busy(n: int) -> float:
    start = time.perf_counter()
    x = 0
    for i in range(n):
        x += i
    return time.perf_counter() - start


def cores_available(n: int = 20_000_000) -> float:
    """How many cores two processes get right now: 2 x (one busy loop's time alone) / (the
    time of two run at once). 2.0 on an idle two-core machine; about 1 where other jobs keep
    the cores busy, and then a second worker cannot help."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        pool.map(_busy, [1000, 1000])  # start both before timing
        alone = pool.apply(_busy, (n,))
        start = time.perf_counter()
        pool.map(_busy, [n, n], chunksize=1)
        together = time.perf_counter() - start
    return 2 * alone / together


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the pool's workers
    are joined when `mine_pairs` returns)."""
    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(
    images: ImageSet, work: Path, cache: Path, settings: MiningSettings, workers: int
) -> tuple[str, ...]:
    out = Path(tempfile.mkdtemp(dir=work))
    load = os.getloadavg()[0]
    cpu_before = cpu_seconds()
    start = time.perf_counter()
    result = mine_pairs(images, out, settings=settings, workers=workers, cache_dir=cache)
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_before
    shutil.rmtree(out)
    return (
        f"{result.pairs_verified:,}",
        f"{seconds:.1f}",
        f"{result.pairs_verified / seconds:.1f}",
        f"{cpu:.1f}",
        f"{result.pairs_verified / cpu:.1f}",
        str(len(result.pairs)),
        f"{load:.1f}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=None, help="the first N classes only")
    parser.add_argument("--max-keypoints", type=int, default=KeypointSettings.max_keypoints)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    images = demo_train(args.classes)
    settings = MiningSettings(keypoints=KeypointSettings(max_keypoints=args.max_keypoints))
    n_classes = len({n.split("/")[0] for n in images.names})
    print(
        f"{len(images)} images in {n_classes} classes, max_keypoints {args.max_keypoints}, "
        f"opencv {cv2.__version__}, {os.cpu_count()} cores\n"
    )
    header = (
        "workers",
        "keypoints",
        "image pairs",
        "seconds",
        "pairs/s",
        "CPU s",
        "pairs/CPU s",
        "pairs mined",
        "load",
    )
    before = cores_available()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for workers in (1, 2):
            cache = work / f"keypoints-{workers}"
            rows.append((str(workers), "cold", *run(images, work, cache, settings, workers)))
            rows.append((str(workers), "cached", *run(images, work, cache, settings, workers)))
    print(f"cores available to two processes: {before:.2f} before, {cores_available():.2f} after\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
