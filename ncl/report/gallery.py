"""python -m ncl.report.gallery RUN_DIR: the rankings of an evaluation as a page a person can
look at, before believing its number (and the results of `search.py`, which has no ground truth).

Per query, worst first: the query (its box drawn where the protocol crops), its AP, and its top
results as thumbnails framed by the ground truth (green positive, orange junk, red negative), the
run's settings at the top. The page is static (it opens from the file system, no server) and
light: thumbnails are small JPEGs, made once per image and reused by every later gallery (named by
a digest of the file, its stamp and the box, so an edited image gets a new one).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ncl.atomic import write_atomically, write_text_atomically
from ncl.cache import digest, file_stamp
from ncl.io.decode import UnreadableImage, read_rgb
from ncl.report.stats import estimate
from ncl.report.table import per_query_metric, search_name

THUMB = 128  # pixels, the longer side
FRAMES = {
    "positive": "#2e9d3a",
    "junk": "#e0a100",
    "negative": "#c62828",
    "query": "#1f5fbf",
    "result": "#777777",  # a search without ground truth
}


def thumbnail(path: str | Path, folder: Path, box: Sequence[float] | None = None) -> Path | None:
    """A small JPEG of `path` (with `box` drawn) in `folder`, made unless already there; None
    for an unreadable image."""
    name = digest([str(Path(path).resolve()), file_stamp(path), list(box or []), THUMB]) + ".jpg"
    out = folder / name
    if out.is_file():
        return out
    try:
        image = read_rgb(path)
    except UnreadableImage:
        return None
    scale = THUMB / max(image.shape[:2])
    small = cv2.resize(
        image,
        (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
        interpolation=cv2.INTER_AREA,
    )
    if box is not None:
        x1, y1, x2, y2 = (round(v * scale) for v in box)
        small = np.ascontiguousarray(small)
        cv2.rectangle(small, (x1, y1), (x2, y2), (255, 255, 0), 2)
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80]
    )
    if not ok:
        return None
    write_atomically(out, lambda f: f.write(data.tobytes()))
    return out


@dataclass(frozen=True)
class Thumb:
    """One picture of a gallery: its thumbnail (None: unreadable), frame and caption."""

    path: Path | None
    frame: str
    caption: str


@dataclass(frozen=True)
class QueryLine:
    """One query of a gallery: its name, the value it is judged by, and its pictures."""

    name: str
    heading: str
    value: float | None
    query: Thumb
    results: list[Thumb]


@dataclass(frozen=True)
class Gallery:
    title: str
    metric: str | None  # what each query's value is (AP, N-S); None without ground truth
    note: str  # the order of the queries
    legend: list[str]
    lines: list[QueryLine]


def gallery(run: Mapping[str, Any], thumbs: Path, row_index: int = 0, k: int = 20) -> Gallery:
    """The queries of one result row as pictures: an evaluation's worst first, each with its AP
    and its results framed by the ground truth; a search's (no ground truth) in order, each
    result with its distance. The page and the wandb table both show this."""
    row = run["rows"][row_index]
    names = run.get("query_names") or [f"query #{i}" for i in range(len(row["top"]))]
    queries = run.get("query_images") or []
    images = run.get("gallery_images") or {}
    title = (
        f"{run['benchmark']} · {run['model']} · tap {row['tap']} · {row['method']} {row['dim']}"
        f" · rerank {search_name(row)}"
    )
    if row.get("per_query"):
        metric = per_query_metric(row)
        values: list[float | None] = list(row["per_query"][metric])
        order = sorted(range(len(values)), key=lambda i: (np.nan_to_num(values[i], nan=np.inf), i))
        title += f" · {metric} {estimate(values)}"
        headings = [f"{metric} {v:.3f}" for v in values]
        note, legend = "queries worst first", ["positive", "junk", "negative", "query"]
        judged_by: str | None = metric
    else:
        values = [None] * len(names)
        order = list(range(len(names)))
        headings = [f"{len(top)} results" for top in row["top"]]
        note, legend = "no ground truth: results by distance", ["query", "result"]
        judged_by = None
    distances = row.get("top_distance") or [[None] * len(top) for top in row["top"]]
    lines = []
    for q in order:
        query = queries[q] if q < len(queries) else {}
        path = query.get("path")
        results = []
        for index, label, distance in zip(
            row["top"][q][:k], row["top_relevance"][q][:k], distances[q][:k], strict=True
        ):
            found = images.get(str(index))
            caption = Path(found or "?").stem + ("" if distance is None else f" {distance:.3f}")
            results.append(Thumb(thumbnail(found, thumbs) if found else None, label, caption))
        lines.append(
            QueryLine(
                names[q],
                headings[q],
                values[q],
                Thumb(
                    thumbnail(path, thumbs, query.get("bbox")) if path else None, "query", names[q]
                ),
                results,
            )
        )
    return Gallery(title, judged_by, note, legend, lines)


def _img(thumb: Thumb, page_dir: Path) -> str:
    style = f"border:4px solid {FRAMES[thumb.frame]}"
    caption = html.escape(thumb.caption)
    if thumb.path is None:
        return f'<div class="r" style="{style}">unreadable<br>{caption}</div>'
    src = html.escape(Path(os.path.relpath(thumb.path, page_dir)).as_posix())
    return f'<figure class="r"><img src="{src}" style="{style}" loading="lazy"><figcaption>{caption}</figcaption></figure>'


def gallery_html(
    run: Mapping[str, Any], page_dir: Path, thumbs: Path, row_index: int = 0, k: int = 20
) -> str:
    page = gallery(run, thumbs, row_index, k)
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(page.title)}</title>",
        "<style>body{font-family:sans-serif;margin:1em}.q{display:flex;flex-wrap:wrap;align-items:flex-start;"
        "gap:4px;margin:6px 0;border-top:1px solid #ccc;padding-top:6px}.r{margin:0;font-size:10px;"
        "width:136px;text-align:center}.r img{max-width:128px;max-height:128px}"
        ".h{width:150px;font-size:12px}</style>",
        f"<h2>{html.escape(page.title)}</h2>",
        f"<p>{page.note}; frames: "
        + " ".join(f"<span style='color:{FRAMES[n]}'>■ {n}</span>" for n in page.legend)
        + "</p>",
    ]
    for line in page.lines:
        cells = [
            f'<div class="h"><b>{html.escape(line.name)}</b><br>{line.heading}</div>',
            _img(line.query, page_dir),
            *(_img(t, page_dir) for t in line.results),
        ]
        parts.append('<div class="q">' + "".join(cells) + "</div>")
    return "\n".join(parts) + "\n"


def thumbnail_folder(
    run: Mapping[str, Any], run_dir: Path, thumbs: str | Path | None = None
) -> Path:
    """Where a run's thumbnails are kept: `thumbs`, else <data_dir>/thumbnails/<benchmark>,
    shared by every gallery of the benchmark."""
    data_dir = (run.get("config") or {}).get("paths", {}).get("data_dir")
    folder = (
        Path(thumbs)
        if thumbs
        else Path(data_dir) / "thumbnails"
        if data_dir
        else run_dir / "thumbnails"
    )
    return folder / run["benchmark"]


def write_gallery(
    run_dir: str | Path, thumbs: str | Path | None = None, row_index: int = 0, k: int = 20
) -> Path:
    """`gallery.html` in the run folder, for its `row_index`-th result row."""
    run_dir = Path(run_dir)
    results = run_dir / "results.json"
    if not results.is_file():
        raise FileNotFoundError(f"{results}: no results.json (is it an evaluate.py run folder?)")
    run = json.loads(results.read_text())
    if not run["rows"][row_index].get("top"):
        raise ValueError(
            f"{results}: its rows keep no rankings (made by an older ncl): evaluate again"
        )
    page = run_dir / "gallery.html"
    write_text_atomically(
        page, gallery_html(run, run_dir, thumbnail_folder(run, run_dir, thumbs), row_index, k)
    )
    return page


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ncl.report.gallery", description=__doc__)
    parser.add_argument("run_dir", help="an evaluate.py run folder (holding results.json)")
    parser.add_argument("--row", type=int, default=0, help="which result row (default: the first)")
    parser.add_argument("--k", type=int, default=20, help="results shown per query")
    parser.add_argument(
        "--thumbnails", help="where thumbnails are kept (default: <data_dir>/thumbnails)"
    )
    args = parser.parse_args(argv)
    try:
        print(write_gallery(args.run_dir, args.thumbnails, args.row, args.k))
    except (FileNotFoundError, ValueError, IndexError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
