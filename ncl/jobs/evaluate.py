"""`evaluate.py` behind its Hydra entry point: config in, results JSON, logs and a table out."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import WandbLogger

from ncl.atomic import write_json_atomically
from ncl.codes.distractors import Distractors
from ncl.data.benchmarks.base import Benchmark
from ncl.eval.compression import Compression
from ncl.eval.run import ResultRow, evaluate, rows_as_dicts
from ncl.jobs.config import build
from ncl.jobs.parts import check_options, code_source
from ncl.report.gallery import Thumb, gallery, thumbnail_folder, write_gallery
from ncl.report.table import headline_metric, print_rows
from ncl.rerank import Reranking
from ncl.search.search import Search

log = logging.getLogger(__name__)


def log_rows(cfg: DictConfig, rows: list[ResultRow], run_dir: Path) -> None:
    for logger in build(cfg.get("logger") or {}).values():
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        for step, row in enumerate(rows):
            logger.log_metrics(
                {f"{row.tap}/{row.method}{row.dim}/{k}": v for k, v in row.metrics.items()},
                step=step,
            )
        if cfg.gallery and isinstance(logger, WandbLogger):
            log_gallery_table(logger, run_dir)
        logger.finalize("success")


def log_gallery_table(logger: WandbLogger, run_dir: Path, k: int = 5) -> None:
    """The gallery of the first result row as a wandb Table (query, its value, the top k with
    their ground-truth frame in the caption), so that a dashboard shows the rankings too."""
    import wandb

    run = json.loads((run_dir / "results.json").read_text())
    page = gallery(run, thumbnail_folder(run, run_dir), k=k)

    def image(thumb: Thumb) -> wandb.Image | None:
        if thumb.path is None:
            return None
        return wandb.Image(str(thumb.path), caption=f"{thumb.frame}: {thumb.caption}")

    logger.log_table(
        key="gallery",
        columns=["query", "name", page.metric or "value", *(f"#{i + 1}" for i in range(k))],
        data=[
            [image(line.query), line.name, line.value]
            + [image(t) for t in line.results]
            + [None] * (k - len(line.results))
            for line in page.lines
        ],
    )


def run_evaluation(cfg: DictConfig) -> float:
    started = time.perf_counter()
    check_options(cfg)
    # the reader first: it generates the demo, whose training split is the fit set
    benchmark: Benchmark = build(cfg.benchmark.reader)
    search: Search = build(cfg.search)
    compression: Compression = build(cfg.compression)
    rerank: Reranking = build(cfg.rerank)
    distractors: Distractors | None = build(cfg.distractors) if cfg.get("distractors") else None
    source = code_source(cfg)
    rows = evaluate(
        benchmark,
        source,
        compression,
        search,
        rerank,
        crop_queries=cfg.crop_queries,
        distractors=distractors,
    )
    # with distractors the database is another one: every table and report says which
    name = benchmark.name if distractors is None else f"{benchmark.name}+{distractors.name}"
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomically(
        output_dir / "results.json",
        {
            "benchmark": name,
            "model": source.name,
            "queries": len(benchmark.queries),
            "query_names": [q.name for q in benchmark.queries],
            "database": len(benchmark.database),
            "distractors": None if distractors is None else distractors.record(),
            "partial": benchmark.partial,
            "query_images": [
                {"name": q.name, "path": str(q.path), "bbox": q.bbox if cfg.crop_queries else None}
                for q in benchmark.queries
            ],
            "gallery_images": {  # distractors (indices past the database) show no picture
                str(i): str(benchmark.database_files[i])
                for i in sorted({i for row in rows for top in row.top for i in top})
                if i < len(benchmark.database_files)
            },
            "fit_on": compression.record(),
            "rows": rows_as_dicts(rows),
            "seconds": time.perf_counter() - started,
            "config": OmegaConf.to_container(cfg, resolve=True),
        },
        indent=1,
    )
    if cfg.gallery:
        log.info("gallery: %s", write_gallery(output_dir))
    log_rows(cfg, rows, output_dir)
    title = f"{name} · {source.name}"
    if benchmark.partial:
        title += f" · {benchmark.partial['note']}"
    print_rows(title, rows)
    log.info("results: %s", output_dir / "results.json")
    return headline_metric(rows[0].metrics)[1]
