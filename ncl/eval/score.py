"""Score ranked lists of image names with a benchmark's official protocol, from the command line.

    python -m ncl.eval.score PROTOCOL GROUND_TRUTH RANKS [--json]

PROTOCOL is one of oxford5k, paris6k, holidays, ukb, roxford5k, rparis6k. GROUND_TRUTH is the gt
folder (Oxford, Paris), an image folder or a text file of image names one a line (Holidays, UKB;
e.g. Holidays' `holidays_images.dat`), or the `gnd_*.pkl` (revisited). No image is opened, so
results computed elsewhere (another system, a paper's released lists) can be checked with the
same code as `evaluate.py` uses.

RANKS has one line per query, `query_name: name1 name2 ...`, best first, possibly truncated;
names carry no extension (a `.jpg` suffix is tolerated). Query names are the gt prefix for
Oxford/Paris (`all_souls_1`), the image name for Holidays and UKB, the `qimlist` entry for the
revisited sets. Ranked names the ground truth does not know are simply non-relevant (distractors).
Every query must have exactly one line. Errors exit with status 1 and a message naming the file.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ncl.data.benchmarks._files import image_names
from ncl.data.benchmarks.base import BenchmarkFormatError
from ncl.data.benchmarks.holidays import holidays_ground_truth
from ncl.data.benchmarks.oxford import oxford_protocol, read_oxford_gt
from ncl.data.benchmarks.revisited import read_revisited_gnd
from ncl.data.benchmarks.ukb import ukb_ground_truth
from ncl.protocols.official import Protocol, RevisitedProtocol, Scores


class RanksFormatError(ValueError):
    """The ranks file is malformed or does not match the ground truth; names file and line."""


@dataclass(frozen=True)
class GroundTruth:
    """The query names (in protocol order), the image names the protocol's indices refer to,
    and the protocol itself."""

    queries: list[str]
    names: list[str]
    protocol: Protocol


def _oxford(path: Path) -> GroundTruth:
    truths = read_oxford_gt(path)
    names = list(dict.fromkeys(n for t in truths for n in (t.image, *t.positives, *t.junk)))
    protocol = oxford_protocol(truths, {n: i for i, n in enumerate(names)})
    return GroundTruth(queries=[t.name for t in truths], names=names, protocol=protocol)


def _holidays(path: Path) -> GroundTruth:
    gt = holidays_ground_truth(image_names(path, "Holidays image list"), path)
    return GroundTruth(
        queries=[gt.names[q] for q in gt.queries], names=gt.names, protocol=gt.protocol
    )


def _ukb(path: Path) -> GroundTruth:
    gt = ukb_ground_truth(image_names(path, "UKB image list"), path)
    return GroundTruth(queries=gt.names, names=gt.names, protocol=gt.protocol)


def _revisited(path: Path) -> GroundTruth:
    gt = read_revisited_gnd(path)
    return GroundTruth(queries=gt.qimlist, names=gt.imlist, protocol=gt.protocol)


LOADERS: dict[str, Callable[[Path], GroundTruth]] = {
    "oxford5k": _oxford,
    "paris6k": _oxford,
    "holidays": _holidays,
    "ukb": _ukb,
    "roxford5k": _revisited,
    "rparis6k": _revisited,
}


def _strip_jpg(name: str) -> str:
    return name[: -len(".jpg")] if name.lower().endswith(".jpg") else name


def read_ranks(path: Path, gt: GroundTruth) -> np.ndarray:
    """The (n_queries, depth) index array of `path`'s lists, in `gt.queries` order, -1 padded.

    Names unknown to the ground truth get fresh indices past the database, so they count as
    non-relevant without being confused with each other.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RanksFormatError(f"{path}: cannot read ranks file: {e}") from e
    index = {n: i for i, n in enumerate(gt.names)}
    row_of = {q: i for i, q in enumerate(gt.queries)}
    lists: dict[int, list[int]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        query, sep, rest = line.partition(":")
        query = _strip_jpg(query.strip())
        if not sep or not query:
            raise RanksFormatError(f"{path}:{number}: expected 'query_name: name1 name2 ...'")
        if query not in row_of:
            raise RanksFormatError(f"{path}:{number}: unknown query {query!r}")
        if row_of[query] in lists:
            raise RanksFormatError(f"{path}:{number}: second line for query {query!r}")
        names = [_strip_jpg(n) for n in rest.split()]
        if len(set(names)) != len(names):
            raise RanksFormatError(f"{path}:{number}: query {query!r} lists an image twice")
        lists[row_of[query]] = [index.setdefault(n, len(index)) for n in names]
    missing = [q for q, i in row_of.items() if i not in lists]
    if missing:
        raise RanksFormatError(
            f"{path}: no line for query {missing[0]!r} ({len(missing)} of {len(gt.queries)} queries missing)"
        )
    depth = max((len(v) for v in lists.values()), default=0)
    ranks = np.full((len(gt.queries), depth), -1, dtype=np.int64)
    for i, ids in lists.items():
        ranks[i, : len(ids)] = ids
    return ranks


def _number(value: float) -> float | None:
    """JSON has no NaN: a setup without scored queries is null."""
    return None if math.isnan(value) else value


def summarise(protocol: Protocol, scores: Scores) -> dict:
    """The headline metrics: `{"mAP": x}`, `{"N-S": x}`, or per revisited setup
    `{"easy": {"mAP": x, "mP@1": x, ...}, ...}`."""
    if isinstance(protocol, RevisitedProtocol):
        return {
            setup: {
                key.split("/", 1)[1]: _number(value)
                for key, value in scores.metrics.items()
                if key.startswith(f"{setup}/")
            }
            for setup in protocol.SETUPS
        }
    return {key: _number(value) for key, value in scores.metrics.items()}


def format_text(summary: dict) -> str:
    """`mAP: 0.xxxxxx` lines; revisited setups one line each, `easy: mAP 0.xxxxxx, mP@1 ...`."""

    def fmt(value: float | None) -> str:
        return "nan" if value is None else f"{value:.6f}"

    lines = []
    for key, value in summary.items():
        if isinstance(value, dict):
            lines.append(f"{key}: " + ", ".join(f"{k} {fmt(v)}" for k, v in value.items()))
        else:
            lines.append(f"{key}: {fmt(value)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ncl.eval.score",
        description="Score ranked lists with a benchmark's official protocol.",
    )
    parser.add_argument("protocol", choices=sorted(LOADERS), help="benchmark protocol")
    parser.add_argument(
        "ground_truth",
        type=Path,
        help="gt folder (Oxford/Paris), image folder or name list (Holidays/UKB), gnd pkl (revisited)",
    )
    parser.add_argument("ranks", type=Path, help="one line per query: 'query: name1 name2 ...'")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        gt = LOADERS[args.protocol](args.ground_truth)
        scores = gt.protocol.score(read_ranks(args.ranks, gt))
    except (BenchmarkFormatError, RanksFormatError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    summary = summarise(gt.protocol, scores)
    print(json.dumps(summary) if args.json else format_text(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
