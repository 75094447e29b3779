"""The first run on a fresh machine: how long its extraction takes with each engine.

python -m benchmarks.first_run [--benchmark demo] [--repeats 1]

`python evaluate.py` on a fresh machine builds the demo, extracts the codes of its three image
sets (database, queries, the training split PCA is fitted on) and evaluates. This runs the
commands a user runs, in fresh folders: the demo is built once (`python -m ncl.demo`, apart),
then for each engine (`extraction.engine=torch`, ncl's default before the engines existed, and
`auto`, today's) `python extract.py` into an empty code store (the extraction alone, the ONNX
export included: a fresh machine pays it once) and `python evaluate.py` on those codes (the rest
of the first run), engines interleaved per repeat, best of R.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("torch", "auto")


def run(script: str, overrides: list[str]) -> float:
    """Seconds of `python <script> <overrides>` (run to completion, output kept on failure)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / script), *overrides], capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"{script} {' '.join(overrides)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--benchmark", default="demo")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ncl-first-run-"))
    common = [f"benchmark={args.benchmark}", f"paths.data_dir={work / 'data'}"]
    start = time.perf_counter()
    if args.benchmark == "demo":
        subprocess.run([sys.executable, "-m", "ncl.demo", str(work / "data" / "demo")], check=True)
    build = time.perf_counter() - start
    extract = dict.fromkeys(ENGINES, float("inf"))
    evaluate = dict.fromkeys(ENGINES, float("inf"))
    for repeat in range(args.repeats):
        for engine in ENGINES:
            codes = work / f"codes-{engine}-{repeat}"
            where = [*common, f"paths.codes_dir={codes}", f"extraction.engine={engine}"]
            seconds = run("extract.py", [*where, f"hydra.run.dir={work / 'x' / codes.name}"])
            extract[engine] = min(extract[engine], seconds)
            seconds = run("evaluate.py", [*where, f"hydra.run.dir={work / 'e' / codes.name}"])
            evaluate[engine] = min(evaluate[engine], seconds)
            shutil.rmtree(codes)
    shutil.rmtree(work, ignore_errors=True)
    print(f"{args.benchmark}: built in {build:.1f} s (the generated demo; a real benchmark: 0)")
    print(
        "| engine | `extract.py`, empty code store, s | `evaluate.py` after it, s | extraction / torch's |"
    )
    print("|---|---|---|---|")
    for engine in ENGINES:
        print(
            f"| {engine} | {extract[engine]:.1f} | {evaluate[engine]:.1f} | "
            f"{extract[engine] / extract['torch']:.2f} |"
        )


if __name__ == "__main__":
    main()
