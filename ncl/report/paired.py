"""A sweep read honestly: every row's figure with its standard error over queries, and its paired
difference to a reference row on the same queries.

On small benchmarks a difference of a few points can be noise; the paired difference (each query
against itself) and its standard error say whether it is not. Rows are compared within a group of
the same benchmark and model and the same size class: the full codes with each other, and each
compressed dimension with its own. In each group the reference is the first row that matches
`reference` (by default the network's pooled pre-logits `pool`, PCA where compressed, no
re-ranking: the paper's way of making codes), and a row more than two standard errors away from
it is marked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ncl.report.stats import Estimate, estimate, paired_difference
from ncl.report.table import per_query_metric, search_name

REFERENCE = {"tap": "pool", "method": ("none", "pca"), "rerank": "none"}


def compression_label(row: Mapping[str, Any]) -> str:
    """The method, with PCA-whitening and its power spelled out (they share the method "pca")."""
    info = row.get("compressor") or {}
    if row["method"] == "pca" and info.get("whiten"):
        power = info.get("whiten_power", 1.0)
        return "pca-whiten" if power == 1 else f"pca-whiten{power:g}"
    return str(row["method"])


def _entries(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for res in results:
        for row in res["rows"]:
            metric = per_query_metric(row)
            out.append(
                {
                    "benchmark": res["benchmark"],
                    "model": res["model"],
                    "tap": row["tap"],
                    "method": row["method"],
                    "compression": compression_label(row),
                    "dim": int(row["dim"]),
                    "rerank": search_name(row),
                    "metric": metric,
                    "values": row["per_query"][metric],
                    "size": "full" if row["method"] == "none" else int(row["dim"]),
                }
            )
    return out


def _matches(entry: Mapping[str, Any], reference: Mapping[str, Any]) -> bool:
    for key, wanted in reference.items():
        allowed = wanted if isinstance(wanted, (tuple, list)) else (wanted,)
        if entry[key] not in allowed:
            return False
    return True


def _cell(e: Estimate, marked: bool = False) -> str:
    text = f"{e.mean:+.4f} ± {e.se:.4f}" if marked else f"{e.mean:.4f} ± {e.se:.4f}"
    return f"**{text}**" if marked and abs(e.mean) > 2 * e.se else text


def paired_table(
    results: Sequence[Mapping[str, Any]], reference: Mapping[str, Any] = REFERENCE
) -> str:
    """Markdown: per group, each row's figure ± SE and its paired difference to the reference
    (bold where it exceeds twice its standard error)."""
    entries = _entries(results)
    groups: dict[tuple, dict[tuple, dict[str, Any]]] = {}
    for e in entries:
        group = groups.setdefault((e["benchmark"], e["model"], str(e["size"])), {})
        # the same row from several jobs of a sweep (e.g. `pool` beside each pooling) once
        group.setdefault((e["tap"], e["compression"], e["dim"], e["rerank"]), e)
    header = "| benchmark | model | size | tap | compression | dim | rerank | figure ± SE | Δ vs reference ± SE |"
    lines = [header, "|" + "---|" * 9]
    for (bench, model, size), rows in sorted(
        groups.items(), key=lambda g: (g[0][0], g[0][1], g[0][2] != "full", g[0][2].zfill(6))
    ):
        group = list(rows.values())
        ref = next((e for e in group if _matches(e, reference)), None)
        ordered = ([ref] if ref else []) + [e for e in group if e is not ref]
        for e in ordered:
            figure = f"{e['metric']} {_cell(estimate(e['values']))}"
            if ref is None:
                delta = "(no reference)"
            elif e is ref:
                delta = "reference"
            else:
                delta = _cell(paired_difference(ref["values"], e["values"]), marked=True)
            cells = [
                bench,
                model,
                size,
                e["tap"],
                e["compression"],
                str(e["dim"]),
                e["rerank"],
                figure,
                delta,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
