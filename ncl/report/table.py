"""Result rows as a console table and as flat records for sweep reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from ncl.report.paper import CODES_NAMES, paper_figure
from ncl.report.stats import estimate

# The number a table shows first for each protocol.
NOT_METRICS = ("benchmark", "model", "tap", "method", "dim", "rerank", "paper_codes")
HEADLINE_METRICS = ("mAP", "medium/mAP", "N-S")


def headline_metric(metrics: Mapping[str, float]) -> tuple[str, float]:
    for key in HEADLINE_METRICS:
        if key in metrics:
            return key, float(metrics[key])
    key = next(iter(metrics))
    return key, float(metrics[key])


def rerank_name(row: Mapping[str, Any]) -> str:
    """A row's re-ranker by name ("none" for results written before re-ranking existed)."""
    return str((row.get("rerank") or {}).get("name", "none"))


def search_name(row: Mapping[str, Any]) -> str:
    """What ran after compression: the re-ranker, and the index with its settings where it is
    not the exact flat one ("none", "dba", "@ivf_pq nlist=16 m=64 nbits=8 nprobe=16",
    "dba @hnsw m=32 ..."), so rows of a sweep over indexes or their settings stay apart."""
    rerank = rerank_name(row)
    index = row.get("index") or {}
    if index.get("name", "flat") == "flat":
        return rerank
    found = str(index.get("label") or index["name"])  # results before labels: the name
    return f"@{found}" if rerank == "none" else f"{rerank} @{found}"


def with_rerank(label: str, rerank: str) -> str:
    """A compression's label with the re-ranker after it, e.g. "pca 32 +dba+alpha_qe"."""
    return label if rerank == "none" else f"{label} +{rerank}"


WIDE = 240  # columns of a table printed to a file or a pipe


def per_query_metric(row: Mapping[str, Any]) -> str:
    """The per-query values behind the row's headline metric (mAP -> AP, medium/mAP ->
    medium/AP, N-S -> N-S)."""
    name, _ = headline_metric(row["metrics"])
    return name.replace("mAP", "AP")


def print_rows(title: str, rows: Sequence[Any], console: Console | None = None) -> None:
    """One line per (tap, compression, re-ranker): every metric of the protocol, to 4 decimals,
    and the standard error over queries of the headline one (small benchmarks are noisy)."""
    metric_names = list(rows[0].metrics)
    headline = headline_metric(rows[0].metrics)[0]
    table = Table(title=title)
    for column in ("tap", "compression", "dim", "rerank", *metric_names, f"± SE ({headline})"):
        left = column in ("tap", "compression", "rerank")
        table.add_column(column, justify="left" if left else "right")
    for r in rows:
        se = estimate(r.per_query.get(per_query_metric(r.__dict__), [])).se
        table.add_row(
            r.tap,
            r.method,
            str(r.dim),
            search_name(r.__dict__),
            *(f"{r.metrics[m]:.4f}" for m in metric_names),
            f"{se:.4f}",
        )
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log or a pipe: full width, never columns cut to "…"
            console = Console(width=WIDE)
    console.print(table)


def records(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flatten results.json payloads into one record per row (per-query values dropped)."""
    out = []
    for res in results:
        for row in res["rows"]:
            out.append(
                {
                    "benchmark": res["benchmark"],
                    "model": res["model"],
                    "tap": row["tap"],
                    "method": row["method"],
                    "dim": row["dim"],
                    "rerank": search_name(row),
                    "paper_codes": (res.get("config") or {}).get("model", {}).get("paper_codes"),
                    **row["metrics"],
                }
            )
    return out


def markdown_table(recs: Sequence[Mapping[str, Any]]) -> str:
    """Rows (benchmark, model, tap) x columns (compression, dim, re-ranker) of the headline metric.

    Under a row whose model reproduces a network of the paper (`paper_codes` in its config), a
    `paper:` row gives the paper's figures for the same cells (`ncl.report.paper`).

    Where the uncompressed codes differ in size from row to row (taps of different widths, or
    neural codes beside the baselines' 64- to 8192-d codes), they share one `full` column and a
    `dim` column gives each row's size, as the paper's Table 3 lays them out.
    """
    full_dims = {r["dim"] for r in recs if r["method"] == "none"}
    shared_full = len(full_dims) > 1

    def column(r: Mapping[str, Any]) -> tuple[str, int | None, str]:
        dim = None if shared_full and r["method"] == "none" else r["dim"]
        return r["method"], dim, r.get("rerank", "none")

    columns = sorted(
        {column(r) for r in recs},
        key=lambda c: (c[0] != "none", c[0], c[1] or 0, c[2] != "none", c[2]),
    )
    keys = sorted({(r["benchmark"], r["model"], r["tap"]) for r in recs})
    value = {}
    codes: dict[tuple[str, str, str], str | None] = {}
    size: dict[tuple[str, str, str], int] = {}
    for r in recs:
        name, v = headline_metric({k: v for k, v in r.items() if k not in NOT_METRICS})
        key = (r["benchmark"], r["model"], r["tap"])
        codes[key] = r.get("paper_codes")
        if shared_full and r["method"] == "none":
            size[key] = r["dim"]
        value[(*key, *column(r))] = (name, v)
    metric = next(iter(value.values()))[0] if value else ""
    header = [
        "benchmark",
        "model",
        "tap",
        *(["dim"] if shared_full else []),
        *(
            with_rerank(f"{m} {d}" if m != "none" else "full" if d is None else f"full {d}", rr)
            for m, d, rr in columns
        ),
    ]
    lines = [f"metric: {metric}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in keys:
        cells = [f"{value[(*key, *c)][1]:.4f}" if (*key, *c) in value else "" for c in columns]
        dim = [str(size.get(key, ""))] if shared_full else []
        lines.append("| " + " | ".join([*key, *dim, *cells]) + " |")
        paper = [
            paper_figure(key[0], codes[key], key[2], m, d) if rr == "none" else None
            for m, d, rr in columns
        ]
        if any(v is not None for v in paper):
            name = f"paper: AlexNet {CODES_NAMES[codes[key]]}"
            cells = ["" if v is None else f"{v:.3f}" for v in paper]
            lines.append("| " + " | ".join([key[0], name, key[2], *dim, *cells]) + " |")
    return "\n".join(lines) + "\n"
