"""`extract.py` behind its Hydra entry point."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from ncl.data.images import ImageSet, database_image_set, folder_image_set, query_image_set
from ncl.jobs.config import build
from ncl.jobs.parts import check_options, code_source

log = logging.getLogger(__name__)


def image_sets(cfg: DictConfig) -> list[ImageSet]:
    if cfg.images.root:
        return [folder_image_set(cfg.images.name or Path(cfg.images.root).name, cfg.images.root)]
    benchmark = build(cfg.benchmark.reader)
    sets = [database_image_set(benchmark)]
    if not benchmark.queries_in_database:
        sets.append(query_image_set(benchmark, cfg.crop_queries))
    if cfg.fit_set and cfg.benchmark.get("fit_on"):
        sets.append(build(cfg.benchmark.fit_on))
    return sets


def run_extraction(cfg: DictConfig) -> None:
    """Codes of every image set of the job: a network's taps, or a baseline with `encoder=...`."""
    check_options(cfg)
    sets = image_sets(cfg)  # the reader first: it generates the demo, whose split is the fit set
    source = code_source(cfg, build_backbone=True)
    for images in sets:
        for tap, codes in source.codes(images).items():
            failed = codes.meta.get("failed", [])
            log.info(
                "%s %s: %d x %d codes in %s%s",
                images.name,
                tap,
                len(codes),
                codes.dim,
                codes.path,
                f" ({len(failed)} unreadable left out)" if failed else "",
            )
