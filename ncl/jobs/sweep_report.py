"""A Hydra callback that writes the sweep report when a multirun ends."""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ncl.report.sweep import write_report

log = logging.getLogger(__name__)


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        path = write_report(config.hydra.sweep.dir)
        log.info("sweep report: %s (and report.csv, report.png)", path)
