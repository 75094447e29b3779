"""One class of an image set: the unit of pair mining's work, of its parallelism and of resuming.

A class's photos are matched pair by pair (`ncl.pairs.matching`) by one process, which also
extracts their keypoints, so no two processes write one file. The result is written atomically to

  <out>/classes/<q>.json   (<q> the URL-quoted class name)

with the inlier count of every verified pair that has at least one inlier (indices into the
class's readable photos), the unreadable photos and why, and, as `ncl.cache` records an
artifact's, the *inputs* it was made from (the keypoint and matching settings and every photo's
name and `file_stamp`) with their `digest`, the *key*. A later run reuses the file only under the
same key; a class mined with other settings, or whose images changed, is mined again (recomputed,
never refused; the log says which inputs changed). `min_inliers` is not an input: the graph is
built from the stored counts, so the threshold can change without matching anything again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ncl.atomic import write_text_atomically
from ncl.cache import changed_inputs, digest
from ncl.features.keypoints import KeypointCache, KeypointSettings, UnreadableImage
from ncl.pairs.graph import Weighted
from ncl.pairs.matching import MatchSettings, PairVerifier

CLASS_FORMAT = 2  # 1: the inputs themselves as the key, stamps as (size, mtime)
# Pairs verified between two progress reports.
REPORT_EVERY = 32


def class_file(out_dir: Path, label: str) -> Path:
    return out_dir / "classes" / f"{quote(label, safe='')}.json"


@dataclass(frozen=True)
class ClassTask:
    """One class to mine: its images (sorted by name) with the `file_stamp`s of their files
    ("missing" for a file that is not there)."""

    label: str
    names: tuple[str, ...]
    files: tuple[str, ...]
    stamps: tuple[str, ...]
    file: str
    cache_dir: str
    keypoints: KeypointSettings
    matching: MatchSettings

    @property
    def pair_count(self) -> int:
        return len(self.names) * (len(self.names) - 1) // 2

    def inputs(self) -> dict[str, Any]:
        """What the class file is made from (JSON-normal, as the file gives it back)."""
        return {
            "format": CLASS_FORMAT,
            "keypoints": asdict(self.keypoints),
            "matching": asdict(self.matching),
            "images": [[n, s] for n, s in zip(self.names, self.stamps, strict=True)],
        }


@dataclass(frozen=True)
class ClassGraph:
    """A mined class: `images` the readable photos (the graph's nodes, sorted), `unreadable`
    the others with the reason, `inliers` every verified pair (indices into `images`, a < b)
    with at least one inlier."""

    label: str
    images: tuple[str, ...]
    unreadable: dict[str, str]
    inliers: tuple[Weighted, ...]
    pairs_verified: int
    seconds: float


def read_class_file(path: Path, inputs: dict[str, Any]) -> tuple[ClassGraph | None, str]:
    """The finished class at `path` if it was made from `inputs`; else None and why not."""
    if not path.is_file():
        return None, "not mined yet"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("key") != digest(inputs):
            changed = changed_inputs(data.get("inputs") or {}, inputs)
            what = " and ".join(changed) if changed else "another version"
            return None, f"mined with other {what}, mining them again"
        return ClassGraph(
            label=data["label"],
            images=tuple(data["images"]),
            unreadable=dict(data["unreadable"]),
            inliers=tuple((int(a), int(b), int(n)) for a, b, n in data["inliers"]),
            pairs_verified=int(data["pairs_verified"]),
            seconds=float(data["seconds"]),
        ), "finished"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"with an unreadable class file ({type(e).__name__}), mining them again"


def write_class_file(path: Path, inputs: dict[str, Any], graph: ClassGraph) -> None:
    data = {"key": digest(inputs), "inputs": inputs, **asdict(graph)}
    data["inliers"] = [list(t) for t in graph.inliers]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(data, separators=(",", ":")) + "\n")


def mine_class(task: ClassTask, report: Callable[[int], None]) -> ClassGraph:
    """Extract (or load) the class's keypoints, verify every pair, write the class file.

    `report(n)` is told every few pairs how many more were verified.
    """
    start = time.perf_counter()
    cache = KeypointCache(Path(task.cache_dir), task.keypoints)
    verifier = PairVerifier(task.matching)
    names, prepared, unreadable = [], [], {}
    for name, file in zip(task.names, task.files, strict=True):
        try:
            prepared.append(verifier.prepare(cache.get(name, Path(file))))
            names.append(name)
        except UnreadableImage as e:
            unreadable[name] = str(e)
    inliers: list[Weighted] = []
    done = pending = 0
    for a in range(len(prepared)):
        for b in range(a + 1, len(prepared)):
            count = verifier.inliers(prepared[a], prepared[b])
            if count > 0:
                inliers.append((a, b, count))
            done += 1
            pending += 1
            if pending == REPORT_EVERY:
                report(pending)
                pending = 0
    if pending:
        report(pending)
    graph = ClassGraph(
        label=task.label,
        images=tuple(names),
        unreadable=unreadable,
        inliers=tuple(inliers),
        pairs_verified=done,
        seconds=round(time.perf_counter() - start, 3),
    )
    write_class_file(Path(task.file), task.inputs(), graph)
    return graph
