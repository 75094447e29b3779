"""Mining matching pairs over a class-folder image set (`<root>/<class>/<image>`): the slow step,
parallel over classes (`ncl.io.pool`), resumable per class (`ncl.pairs.classes`).

Every pair of photos within a class is verified: n(n-1)/2 pairs for n photos, which is why this
step is slow and why everything it computes is kept on disk. In the output folder:

  keypoints/...        per-image SIFT keypoints (`ncl.features.keypoints`)
  classes/<q>.json     per class, every verified pair's inlier count (`ncl.pairs.classes`)
  pairs.tsv            the selected pairs (`ncl.pairs.pairs_file`)
  summary.json         pairs, graph edges and degrees per class, candidates, settings

The matching graph, candidates and greedy selection (`ncl.pairs.graph`) are cheap and rebuilt
from the class files on every run, finished classes included.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from ncl.atomic import write_text_atomically
from ncl.cache import file_stamp
from ncl.features.keypoints import KeypointSettings
from ncl.io import pool
from ncl.io.names import class_of
from ncl.io.progress import progress_bar
from ncl.pairs import classes
from ncl.pairs.classes import ClassGraph, ClassTask, class_file, read_class_file
from ncl.pairs.graph import adjacency, candidates, degree_stats, select_greedy
from ncl.pairs.matching import MatchSettings
from ncl.pairs.pairs_file import Pair, write_pairs

if TYPE_CHECKING:  # not imported at run time: workers would pay for torch, which it imports
    from ncl.data.images import ImageSet

log = logging.getLogger(__name__)

PAIRS_FILE = "pairs.tsv"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class MiningSettings:
    """Everything that decides which pairs are mined. `min_inliers`: the inliers a verified
    pair needs to be an edge of the matching graph."""

    keypoints: KeypointSettings = field(default_factory=KeypointSettings)
    matching: MatchSettings = field(default_factory=MatchSettings)
    min_inliers: int = 15

    def __post_init__(self) -> None:
        if self.min_inliers < 1:
            raise ValueError(f"min_inliers must be >= 1, got {self.min_inliers}")


@dataclass(frozen=True)
class MiningResult:
    """What `mine_pairs` wrote: the selected pairs, the summary, and this run's work."""

    out_dir: Path
    pairs: list[Pair]
    summary: dict[str, Any]
    classes_mined: int
    classes_reused: int
    pairs_verified: int
    seconds: float

    @property
    def pairs_file(self) -> Path:
        return self.out_dir / PAIRS_FILE


def _select(graph: ClassGraph, min_inliers: int) -> tuple[list[Pair], dict[str, Any]]:
    adj = adjacency(len(graph.images), graph.inliers, min_inliers)
    found = candidates(adj)
    kept = select_greedy(found, graph.images)
    pairs = [Pair(graph.images[a], graph.images[b], graph.label, n) for a, b, n in kept]
    stats = {
        "images": len(graph.images) + len(graph.unreadable),
        "unreadable": len(graph.unreadable),
        "pairs_verified": graph.pairs_verified,
        **degree_stats(adj),
        "candidates": len(found),
        "pairs": len(pairs),
        "mining_seconds": graph.seconds,
    }
    return pairs, stats


def _tasks(
    images: ImageSet, out_dir: Path, cache_dir: Path, settings: MiningSettings
) -> tuple[list[ClassTask], list[str]]:
    """One task per class, and the images outside any class folder."""
    by_class: dict[str, list[tuple[str, Path]]] = {}
    outside = []
    for name, file in zip(images.names, images.files, strict=True):
        label = class_of(name)
        if label is None:
            outside.append(name)
        else:
            by_class.setdefault(label, []).append((name, file))
    tasks = []
    for label in sorted(by_class):
        members = sorted(by_class[label])
        tasks.append(
            ClassTask(
                label=label,
                names=tuple(n for n, _ in members),
                files=tuple(str(f) for _, f in members),
                stamps=tuple(file_stamp(f) for _, f in members),
                file=str(class_file(out_dir, label)),
                cache_dir=str(cache_dir),
                keypoints=settings.keypoints,
                matching=settings.matching,
            )
        )
    return tasks, outside


def mine_pairs(
    images: ImageSet,
    out_dir: str | Path,
    *,
    settings: MiningSettings | None = None,
    workers: int = os.cpu_count() or 1,
    cache_dir: str | Path | None = None,
) -> MiningResult:
    """Mine training pairs from the class-folder image set `images` (`<root>/<class>/<image>`)
    into `out_dir`: `pairs.tsv`, `summary.json`, and the per-class files a rerun resumes from.

    Classes are mined over `workers` processes (in this process when `workers` <= 1);
    keypoints are cached in `cache_dir` (default `<out_dir>/keypoints`). Images outside any
    class folder, and unreadable images, are reported by name and left out.
    """
    start = time.perf_counter()
    settings = settings or MiningSettings()
    out_dir = Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else out_dir / "keypoints"
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks, outside = _tasks(images, out_dir, cache_dir, settings)
    if outside:
        log.warning(
            "%d images outside any class folder left out (e.g. %s); expected <root>/<class>/<image>",
            len(outside),
            ", ".join(outside[:5]),
        )
    if not tasks:
        raise ValueError(f"image set {images.name}: no class folders (<root>/<class>/<image>)")

    graphs: dict[str, ClassGraph] = {}
    todo = []
    stale: dict[str, list[str]] = {}
    for task in tasks:
        graph, why = read_class_file(Path(task.file), task.inputs())
        if graph is not None:
            graphs[task.label] = graph
        else:
            stale.setdefault(why, []).append(task.label)
            todo.append(task)
    for why, labels in stale.items():
        if why != "not mined yet":
            more = f" and {len(labels) - 5} more" if len(labels) > 5 else ""
            log.info("%d classes %s: %s%s", len(labels), why, ", ".join(labels[:5]), more)
    reused = len(graphs)
    todo.sort(key=lambda t: (-t.pair_count, t.label))
    log.info(
        "mining %s: %d classes (%d finished before), %d image pairs to verify, %d workers",
        images.name,
        len(tasks),
        reused,
        sum(t.pair_count for t in todo),
        workers,
    )
    verified = 0
    if todo:
        with progress_bar(f"pairs → {images.name}", sum(t.pair_count for t in todo)) as advance:
            for task, graph in pool.run_tasks(classes.mine_class, todo, workers, advance):
                # the pairs of unreadable photos were never verified: count them done
                advance(task.pair_count - graph.pairs_verified)
                graphs[graph.label] = graph
                verified += graph.pairs_verified

    pairs: list[Pair] = []
    per_class: dict[str, dict[str, Any]] = {}
    unreadable: dict[str, str] = {}
    for task in tasks:
        graph = graphs[task.label]
        for name, reason in graph.unreadable.items():
            log.warning("unreadable image skipped: %s (%s)", name, reason)
        unreadable.update(graph.unreadable)
        selected, per_class[task.label] = _select(graph, settings.min_inliers)
        pairs += selected
    seconds = time.perf_counter() - start
    summary = _summary(images, settings, per_class, unreadable, outside, len(pairs))
    summary["run"] = {
        "classes_mined": len(todo),
        "classes_reused": reused,
        "pairs_verified": verified,
        "workers": workers,
        "seconds": round(seconds, 3),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_pairs(out_dir / PAIRS_FILE, pairs)
    write_text_atomically(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return MiningResult(out_dir, pairs, summary, len(todo), reused, verified, seconds)


def _summary(
    images: ImageSet,
    settings: MiningSettings,
    per_class: dict[str, dict[str, Any]],
    unreadable: dict[str, str],
    outside: list[str],
    n_pairs: int,
) -> dict[str, Any]:
    rows = per_class.values()
    nodes = sum(s["images"] - s["unreadable"] for s in rows)
    return {
        "image_set": images.name,
        "root": _root_of(images),
        "settings": {**asdict(settings), "opencv": cv2.__version__},
        "evidence": "max over common neighbours c of min(inliers(a, c), inliers(c, b))",
        "totals": {
            "classes": len(per_class),
            "images": sum(s["images"] for s in rows),
            "unreadable": len(unreadable),
            "outside_classes": len(outside),
            "pairs_verified": sum(s["pairs_verified"] for s in rows),
            "edges": sum(s["edges"] for s in rows),
            "candidates": sum(s["candidates"] for s in rows),
            "pairs": n_pairs,
            "classes_with_pairs": sum(1 for s in rows if s["pairs"]),
            "degree_mean": round(2 * sum(s["edges"] for s in rows) / max(nodes, 1), 3),
        },
        "classes": per_class,
        "unreadable": unreadable,
        "outside_classes": outside,
    }


def _root_of(images: ImageSet) -> str | None:
    """The folder the image names are relative to: an image named `a/b/c` is the file
    `<root>/a/b/c.<ext>`."""
    if not images.files:
        return None
    return str(Path(images.files[0]).parents[len(Path(images.names[0]).parts) - 1])
