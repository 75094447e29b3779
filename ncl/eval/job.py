"""`evaluate.py` behind its Hydra entry point: config in, results JSON, logs and a table out."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ncl.atomic import write_json_atomically
from ncl.codes.source import code_source
from ncl.config import as_list
from ncl.data.benchmarks.base import Benchmark
from ncl.data.images import folder_image_set
from ncl.eval.run import CompressionSpec, ResultRow, evaluate, rows_as_dicts
from ncl.report.table import headline_metric, print_rows

log = logging.getLogger(__name__)


def compression_spec(cfg: DictConfig) -> CompressionSpec:
    c = cfg.compression
    fit_on = c.get("fit_on")
    on_self = fit_on == "self"
    return CompressionSpec(
        method=c.method,
        dims=[None if d is None else int(d) for d in as_list(c.dim)],
        whiten=bool(c.get("whiten", False)),
        max_components=int(c.get("max_components", 1024)),
        fit_on=None
        if (on_self or not fit_on or c.method == "none")
        else folder_image_set(fit_on.name, fit_on.root),
        fit_on_benchmark=on_self,
    )


def fit_on_record(cfg: DictConfig) -> Any:
    """What the compressor was fitted on, for the results: fitting on the benchmark is flagged."""
    fit_on = cfg.compression.get("fit_on")
    if cfg.compression.method == "none" or not fit_on:
        return None
    if fit_on == "self":
        return "self (the benchmark itself)"
    return OmegaConf.to_container(fit_on, resolve=True)


def log_rows(cfg: DictConfig, rows: list[ResultRow]) -> None:
    for logger in instantiate(cfg.get("logger") or {}).values():
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        for step, row in enumerate(rows):
            logger.log_metrics(
                {f"{row.tap}/{row.method}{row.dim}/{k}": v for k, v in row.metrics.items()},
                step=step,
            )
        logger.finalize("success")


def run_evaluation(cfg: DictConfig) -> float:
    started = time.perf_counter()
    benchmark: Benchmark = instantiate(cfg.benchmark.reader)
    source = code_source(cfg)
    rows = evaluate(
        benchmark,
        source,
        compression_spec(cfg),
        crop_queries=cfg.crop_queries,
        depth=cfg.search.depth,
        use_gpu=cfg.search.gpu,
        database_rotations=[int(r) for r in as_list(cfg.search.get("database_rotations") or [])],
    )
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomically(
        output_dir / "results.json",
        {
            "benchmark": benchmark.name,
            "model": source.name,
            "queries": len(benchmark.queries),
            "database": len(benchmark.database),
            "fit_on": fit_on_record(cfg),
            "rows": rows_as_dicts(rows),
            "seconds": time.perf_counter() - started,
            "config": OmegaConf.to_container(cfg, resolve=True),
        },
        indent=1,
    )
    log_rows(cfg, rows)
    print_rows(f"{benchmark.name} · {source.name}", rows)
    log.info("results: %s", output_dir / "results.json")
    return headline_metric(rows[0].metrics)[1]
