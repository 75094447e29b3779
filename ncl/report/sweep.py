"""Gather a sweep's results.json files into report.md, report.csv and report.png."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from ncl.report.paired import paired_table
from ncl.report.paper import paper_figure
from ncl.report.table import NOT_METRICS, headline_metric, markdown_table, records, with_rerank


def load_results(root: str | Path) -> list[dict[str, Any]]:
    files = sorted(Path(root).rglob("results.json"))
    if not files:
        raise FileNotFoundError(
            f"{root}: no results.json below it (is it a run or sweep directory?)"
        )
    return [json.loads(f.read_text()) for f in files]


def plot_metric_vs_dim(recs: Sequence[dict[str, Any]], path: Path) -> None:
    """A line per (benchmark, model, tap, method) over the compressed dims, full codes dashed;
    the paper's figures for the same cells, where it has them, dotted."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    metric = ""
    groups: dict[tuple, list[tuple[int, float]]] = {}
    paper: dict[tuple, list[tuple[int, float]]] = {}
    for r in recs:
        metric, v = headline_metric({k: x for k, x in r.items() if k not in NOT_METRICS})
        key = (
            r["benchmark"],
            r["model"],
            r["tap"],
            with_rerank(r["method"], r.get("rerank", "none")),
        )
        groups.setdefault(key, []).append((r["dim"], v))
        figure = paper_figure(r["benchmark"], r.get("paper_codes"), r["tap"], r["method"], r["dim"])
        if figure is not None and r["method"] != "none" and r.get("rerank", "none") == "none":
            paper.setdefault((r["benchmark"], r["tap"], r["method"]), []).append((r["dim"], figure))
    for (bench, model, tap, method), points in sorted(groups.items()):
        points.sort()
        label = f"{bench} {model} {tap} {method}"
        if method.split(" +")[0] == "none":
            ax.axhline(
                points[0][1], linestyle="--", linewidth=1, label=f"{label} ({points[0][0]}-d)"
            )
        else:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    for (bench, tap, method), points in sorted(paper.items()):
        points = sorted(set(points))
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            linestyle=":",
            marker="x",
            label=f"paper: {bench} {tap} {method}",
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("dimensions")
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(root: str | Path) -> Path:
    root = Path(root)
    results = load_results(root)
    recs = records(results)
    text = markdown_table(recs)
    if all(row.get("per_query") for res in results for row in res["rows"]):
        text += "\n## Each row with its standard error, paired with the reference\n\n"
        text += paired_table(results)
    (root / "report.md").write_text(text)
    fields = list(dict.fromkeys(k for r in recs for k in r))
    with open(root / "report.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(recs)
    plot_metric_vs_dim(recs, root / "report.png")
    return root / "report.md"
