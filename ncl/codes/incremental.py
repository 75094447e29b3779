"""Coding only what changed: a stale code set lends the codes of its unchanged images.

A folder a user searches grows and changes; its code set is stale as soon as one photo is added,
and extracting the whole folder again for it would cost what the first run did. Every code set
records, beside `ids.txt`, one stamp per image (`stamps.txt`: file size and mtime, crop box,
rotation; `ImageSet.stamps`). When a code set is remade and the old one was made from the same
inputs but the images (same network, weights, tap, pooling, dtype, ...), the rows of the images
whose stamp is unchanged are written as ready shards of the new extraction, which then codes only
the images that are new or changed, exactly as it resumes an interrupted run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ncl.atomic import save_npz_atomically
from ncl.cache import Artifact, changed_inputs
from ncl.codes.store import CodeSetError, read_codes
from ncl.data.images import ImageSet

log = logging.getLogger(__name__)

STAMPS = "stamps.txt"


def write_stamps(directory: Path, stamps: list[str]) -> None:
    """`stamps.txt` of a code set being staged, one line per row of its codes."""
    (directory / STAMPS).write_text("".join(f"{s}\n" for s in stamps))


def lendable_rows(artifact: Artifact, images: ImageSet) -> dict[int, int] | None:
    """{index in `images`: row in the stale code set at `artifact.path`} for every image whose
    codes that set holds unchanged; None when it cannot lend (none there, damaged, made by
    another network or settings, or without stamps)."""
    meta = artifact.meta
    if meta is None or changed_inputs(meta.get("inputs") or {}, artifact.inputs) != ["images"]:
        return None
    stamps_file = artifact.path / STAMPS
    try:
        old = read_codes(artifact.path)
        stamps = stamps_file.read_text().splitlines()
    except (CodeSetError, OSError):
        return None
    if len(stamps) != len(old.ids):
        return None
    was = dict(zip(old.ids, zip(stamps, range(len(stamps)), strict=True), strict=True))
    return {
        i: was[name][1]
        for i, (name, stamp) in enumerate(zip(images.names, images.stamps(), strict=True))
        if name in was and was[name][0] == stamp
    }


def carry_over(
    artifacts: Mapping[str, Artifact], images: ImageSet, partial_dir: Path, shard_size: int
) -> int:
    """Write the unchanged images' codes of every tap's stale set into `partial_dir` as done
    shards (only images unchanged in all of them); returns how many images were carried."""
    lent = {tap: lendable_rows(a, images) for tap, a in artifacts.items()}
    if not lent or any(rows is None for rows in lent.values()):
        return 0
    common = sorted(set.intersection(*(set(rows) for rows in lent.values() if rows is not None)))
    if not common:
        return 0
    old = {tap: read_codes(a.path).codes for tap, a in artifacts.items()}
    for n, start in enumerate(range(0, len(common), shard_size)):
        index = np.asarray(common[start : start + shard_size], dtype=np.int64)
        arrays = {"index": index, "failed": np.empty(0, dtype=np.int64)}
        for tap, rows in lent.items():
            assert rows is not None
            arrays[f"tap_{tap}"] = np.asarray(old[tap][[rows[i] for i in index]])
        save_npz_atomically(partial_dir / f"shard-carried-{n:06d}.npz", **arrays)
    log.info(
        "%s: %d of %d images unchanged since their codes were made: coding only the other %d",
        images.name,
        len(common),
        len(images),
        len(images) - len(common),
    )
    return len(common)
