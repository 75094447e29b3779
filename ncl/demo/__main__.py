"""`python -m ncl.demo ROOT [--seed N] [--difficulty D] [--no-opencv]`: build (or reuse) the demo
benchmark and print its counts, to build it ahead of a job or to see what a setting gives."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from ncl.demo.build import build_demo
from ncl.demo.params import DemoParams
from ncl.demo.sources import default_sources, opencv_doc_dir


def main(argv: Sequence[str] | None = None) -> None:
    """Parse `argv`, build or reuse the demo at ROOT, print its seed, split rule and counts."""
    parser = argparse.ArgumentParser(
        prog="python -m ncl.demo",
        description="Build the embedded demo benchmark (Oxford layout) from installed photos.",
    )
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--difficulty", type=float, default=DemoParams.difficulty)
    parser.add_argument("--no-opencv", action="store_true", help="leave out opencv-doc's photos")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sources = default_sources(None if args.no_opencv else opencv_doc_dir())
    start = time.perf_counter()
    info = build_demo(args.root, seed=args.seed, difficulty=args.difficulty, sources=sources)
    seconds = time.perf_counter() - start
    print(
        f"demo benchmark at {info.root}: seed {info.seed}, split by {info.split}, {seconds:.1f} s"
    )
    for name, value in info.counts.items():
        print(f"  {name:18s} {value}")
    print(f"  sources            {', '.join(info.sources)}")


if __name__ == "__main__":
    main()
