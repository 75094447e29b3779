"""`train.py` behind its Hydra entry point: data, module, callbacks, loggers, trainer, fit.

The order matters: the data is scanned first because the class count sizes the network's last
layer (`module.num_classes: null`), and a missing dataset root fails before any network is built.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from ncl.data.datamodule import LabelledDataModule
from ncl.jobs.config import build
from ncl.metric.module import MetricLearningModule
from ncl.modules.classifier import ClassifierModule
from ncl.projection.data import PairDataModule

log = logging.getLogger(__name__)


def num_classes(cfg: DictConfig, datamodule: LabelledDataModule) -> int:
    """`module.num_classes`, or the data's class count when null; the two must agree."""
    found = datamodule.num_classes
    wanted = cfg.module.get("num_classes")
    if wanted is not None and int(wanted) != found:
        raise ValueError(
            f"module.num_classes={wanted}, but the data has {found} classes: "
            "leave module.num_classes null to take the data's count"
        )
    return found


def module_arguments(cfg: DictConfig, datamodule: pl.LightningDataModule) -> dict[str, Any]:
    """What the data decides about the module: a classifier's class count (and the network it
    starts from), a projection's input dimension."""
    if isinstance(datamodule, LabelledDataModule):
        return {"num_classes": num_classes(cfg, datamodule), "init_from": init_from(cfg)}
    if isinstance(datamodule, PairDataModule):
        return datamodule.module_arguments()
    return {}


def init_from(cfg: DictConfig) -> str | None:
    """The network to start from; None when resuming (the checkpoint restores every weight)."""
    if OmegaConf.is_missing(cfg.module, "init_from"):
        raise ValueError(
            f"{cfg.task_name} fine-tunes an ImageNet network: pass its checkpoint with "
            "module.init_from=/path/to/last.ckpt (train one with `python train.py "
            "experiment=alexnet_imagenet`), or module.init_from=pretrained for a network with "
            "published weights"
        )
    source = cfg.module.get("init_from")
    if source is not None and cfg.get("ckpt_path"):
        log.info("resuming from %s: init_from=%s is not read", cfg.ckpt_path, source)
        return None
    return source


def instantiate_all(group: DictConfig | None) -> list[Any]:
    """The objects of a config group that holds one `_target_` node per entry (callbacks,
    loggers); entries left null are skipped."""
    return [build(node) for node in (group or {}).values() if node is not None]


def run_training(cfg: DictConfig) -> float | None:
    """Fit (and test when `test`), returning `optimized_metric` for Hydra sweepers."""
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True)
    datamodule: pl.LightningDataModule = build(cfg.data)
    module: pl.LightningModule = build(
        cfg.module, **module_arguments(cfg, datamodule), _convert_="all"
    )
    callbacks = instantiate_all(cfg.get("callbacks"))
    if cfg.trainer.get("fast_dev_run"):
        # a smoke test writes nothing: Lightning still saves a ModelCheckpoint's last.ckpt
        callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
    loggers = instantiate_all(cfg.get("logger"))
    trainer: pl.Trainer = build(cfg.trainer, callbacks=callbacks, logger=loggers)
    for logger in trainer.loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    try:
        if cfg.get("train", True):
            trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
            report_checkpoints(trainer, module)
        if cfg.get("test", False):
            best = (
                trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            )
            trainer.test(module, datamodule=datamodule, ckpt_path=best or None)
    finally:
        finish_wandb()
    metric = trainer.callback_metrics.get(cfg.get("optimized_metric") or "")
    return None if metric is None else float(metric)


def report_checkpoints(trainer: pl.Trainer, module: pl.LightningModule) -> None:
    """Say where a network's checkpoints are and how to evaluate their codes."""
    callback = trainer.checkpoint_callback
    trained_network = isinstance(module, (ClassifierModule, MetricLearningModule))
    if callback is None or not trainer.is_global_zero or not trained_network:
        return
    path = callback.last_model_path or callback.best_model_path
    if not path or not Path(path).is_file():  # fast_dev_run writes none
        return
    taps = ",".join(module.backbone.feature_dims)
    log.info("best checkpoint: %s", callback.best_model_path or "-")
    log.info("evaluate its codes: python evaluate.py model.name=%s taps=[<one of %s>]", path, taps)


def finish_wandb() -> None:
    """Close a wandb run so that its files are complete (and a multirun's next job starts a new
    run); Lightning's WandbLogger leaves it open."""

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()
