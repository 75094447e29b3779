"""Benchmark readers by name: `load_benchmark("oxford5k", root)` returns a `Benchmark`.

Each entry reads the official on-disk layout under `root`; keyword arguments override the
defaults (e.g. `image_dir`, or `distractor_dirs` where the Flickr 100k images are not in
`root/flickr100k`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from ncl.data.benchmarks.base import Benchmark, BenchmarkFormatError, Query
from ncl.data.benchmarks.holidays import read_holidays
from ncl.data.benchmarks.oxford import read_oxford
from ncl.data.benchmarks.revisited import read_revisited
from ncl.data.benchmarks.ukb import read_ukb

FLICKR100K = "flickr100k"

BENCHMARKS: dict[str, Callable[..., Benchmark]] = {
    "oxford5k": partial(read_oxford, name="oxford5k"),
    "oxford105k": partial(read_oxford, name="oxford105k", distractor_dirs=(FLICKR100K,)),
    "paris6k": partial(read_oxford, name="paris6k"),
    "paris106k": partial(read_oxford, name="paris106k", distractor_dirs=(FLICKR100K,)),
    "roxford5k": partial(read_revisited, name="roxford5k"),
    "rparis6k": partial(read_revisited, name="rparis6k"),
    "holidays": read_holidays,
    "ukb": read_ukb,
}


def load_benchmark(name: str, root: str | Path, **kwargs: Any) -> Benchmark:
    """Read benchmark `name` from `root`; `kwargs` go to its reader."""
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    return BENCHMARKS[name](root, **kwargs)


__all__ = ["BENCHMARKS", "Benchmark", "BenchmarkFormatError", "Query", "load_benchmark"]
