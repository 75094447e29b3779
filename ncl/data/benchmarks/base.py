"""What every benchmark reader returns: the images to index, the queries and the protocol.

Readers only parse the official on-disk layouts; scoring lives in `ncl.protocols.official`. A
benchmark is the contract between `extract.py` (which images, which crops, which rotations) and
`evaluate.py` (which ranked lists, scored how).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ncl.io.geometry import BBox
from ncl.protocols import Protocol

log = logging.getLogger(__name__)

PARTIAL_NOTE = "partial: not comparable with published figures"


def partial_record(
    name: str, named: set[str], present: Collection[str], kept: int, dropped: dict[str, str]
) -> dict[str, Any]:
    """What a partial benchmark is, for the results (`Benchmark.partial`): images of the ground
    truth (`named`) present and missing, queries kept and dropped with why; and, once, the log's
    warning, naming a few dropped queries (the record lists them all)."""
    found = len(named & set(present))
    shown = "; ".join(f"{q} ({why})" for q, why in list(dropped.items())[:5]) or "none"
    if len(dropped) > 5:
        shown += f"; and {len(dropped) - 5} more, listed in results.json"
    log.warning(
        "%s: partial benchmark (%s): %d of %d queries kept; dropped: %s",
        name,
        PARTIAL_NOTE,
        kept,
        kept + len(dropped),
        shown,
    )
    return {
        "note": PARTIAL_NOTE,
        "images": {"present": len(present), "gt_present": found, "gt_missing": len(named) - found},
        "queries": {"kept": kept, "dropped": len(dropped), "dropped_why": dropped},
    }


class BenchmarkFormatError(ValueError):
    """A benchmark file is missing or malformed; the message names the file and the problem."""


@dataclass(frozen=True)
class Query:
    """One query of a benchmark.

    `name` is the id the ground truth uses (`all_souls_1` for Oxford, `100000` for Holidays,
    `ukbench00000` for UKB, the `qimlist` entry for the revisited sets); `image` is the image
    name without extension and `path` its file; `bbox` is (x1, y1, x2, y2) in pixels of the
    original image where the protocol crops queries.
    """

    name: str
    image: str
    path: Path
    bbox: BBox | None = None


@dataclass(frozen=True)
class Benchmark:
    """A retrieval benchmark as read from disk.

    `database` holds image names without extension, `database_files` their paths, in the order
    the protocol's indices refer to. `queries_in_database` is true where each query is a database
    image used as it is (Holidays, UKB), so its code is the database code of the same name.
    `rotations` maps an image name to degrees counter-clockwise that make it upright (Holidays'
    rotated version); images not listed stay as they are. `partial` is None for a whole
    benchmark; for one read with only some of its images present, a record of what was kept and
    dropped (its figures are not comparable with published ones: results and tables say so).
    """

    name: str
    database: list[str]
    database_files: list[Path]
    queries: list[Query]
    protocol: Protocol
    queries_in_database: bool = False
    rotations: dict[str, int] = field(default_factory=dict)
    partial: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if len(self.database) != len(self.database_files):
            raise ValueError(
                f"{self.name}: {len(self.database)} names for {len(self.database_files)} files"
            )
