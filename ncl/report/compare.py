"""python -m ncl.report.compare RUN_A RUN_B: did my change help, query by query?

Reads the `results.json` of two evaluation runs on the same benchmark and, for each result row
they share (tap, compression, dim), prints the headline metric of each with its standard error,
the paired mean difference B - A with its standard error over the same queries, and the queries
that gained and lost the most.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ncl.report.stats import estimate, paired_difference
from ncl.report.table import per_query_metric

RowKey = tuple[str, str, int]


def load_run(path: str | Path) -> dict[str, Any]:
    """A run's results.json, given the run folder or the file itself."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    try:
        run = json.loads(file.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{file}: no results.json (is it an evaluate.py run folder?)"
        ) from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}: not valid JSON ({e})") from e
    gallery = file.parent / "gallery.html"
    if gallery.is_file():
        run["gallery"] = str(gallery)
    return run


def _rows(run: Mapping[str, Any]) -> dict[RowKey, Mapping[str, Any]]:
    return {(r["tap"], r["method"], int(r["dim"])): r for r in run["rows"]}


def compare(a: Mapping[str, Any], b: Mapping[str, Any], top: int = 5) -> str:
    """The comparison report of runs `a` and `b` as text."""
    if a["benchmark"] != b["benchmark"]:
        raise ValueError(f"runs on different benchmarks: {a['benchmark']} vs {b['benchmark']}")
    rows_a, rows_b = _rows(a), _rows(b)
    shared = [k for k in rows_a if k in rows_b]
    if not shared:
        raise ValueError(
            f"no result row in common (A: {sorted(rows_a)}; B: {sorted(rows_b)}): compare runs "
            "that evaluate the same tap, compression and dimension"
        )
    names = b.get("query_names") or a.get("query_names")
    lines = [f"{a['benchmark']}: A = {a.get('model')}, B = {b.get('model')}", ""]
    for key in shared:
        metric = per_query_metric(rows_a[key])
        va, vb = rows_a[key]["per_query"][metric], rows_b[key]["per_query"][metric]
        diff = paired_difference(va, vb)
        lines += [
            f"{key[0]} {key[1]} {key[2]}  ({metric} per query)",
            f"  A      {estimate(va)}",
            f"  B      {estimate(vb)}",
            f"  B - A  {diff}" + _verdict(diff.mean, diff.se),
        ]
        lines += _extremes(va, vb, names, top)
        lines.append("")
    for run, label in ((a, "A"), (b, "B")):
        if run.get("gallery"):
            lines.append(f"gallery {label}: {run['gallery']}")
    return "\n".join(lines).rstrip() + "\n"


def _verdict(mean: float, se: float) -> str:
    if not se or se != se:  # no spread to judge by
        return ""
    return "  (more than 2 SE: a real difference)" if abs(mean) > 2 * se else "  (within 2 SE)"


def _extremes(
    va: Sequence[float], vb: Sequence[float], names: Sequence[str] | None, top: int
) -> list[str]:
    diffs = [(y - x, i) for i, (x, y) in enumerate(zip(va, vb, strict=True)) if x == x and y == y]
    diffs.sort()
    label = (lambda i: names[i]) if names else (lambda i: f"query #{i}")
    wins = [
        f"    {label(i)}: {va[i]:.3f} -> {vb[i]:.3f} ({d:+.3f})"
        for d, i in diffs[::-1][:top]
        if d > 0
    ]
    losses = [
        f"    {label(i)}: {va[i]:.3f} -> {vb[i]:.3f} ({d:+.3f})" for d, i in diffs[:top] if d < 0
    ]
    return [
        "  biggest wins:",
        *(wins or ["    none"]),
        "  biggest losses:",
        *(losses or ["    none"]),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ncl.report.compare", description=__doc__)
    parser.add_argument("run_a", help="the baseline run folder (or its results.json)")
    parser.add_argument("run_b", help="the changed run folder (or its results.json)")
    parser.add_argument("--top", type=int, default=5, help="queries listed per direction")
    args = parser.parse_args(argv)
    try:
        print(compare(load_run(args.run_a), load_run(args.run_b), top=args.top), end="")
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
