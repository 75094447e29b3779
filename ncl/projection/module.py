"""Discriminative dimensionality reduction (paper section 5; Simonyan et al., BMVC 2013).

A low-rank W (dim x input dim) and a threshold b are learned so that the squared distance
‖W(x_i - x_j)‖² of a matching pair falls below b and that of a non-matching pair above it, by a
margin: the loss is the mean over pairs of max(0, 1 - y (b - ‖W(x_i - x_j)‖²)), y = ±1.

W starts from the PCA-whitening of the training codes and b halfway between the positives' and
the negatives' mean distances under it (`PairDataModule.initial_projection`), so training starts
from the best unsupervised projection and only has to learn what the pairs add. The initial
values are set in `setup`, which runs before a checkpoint is restored: resuming keeps the trained
W. `ExportProjection` writes the learned W as the compressor that `evaluate.py
compression=projection` applies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from ncl.projection.data import PairBatch, PairDataModule

log = logging.getLogger(__name__)


def squared_distances(weight: Tensor, x_i: Tensor, x_j: Tensor) -> Tensor:
    """‖W(x_i - x_j)‖² per pair."""
    return ((x_i - x_j) @ weight.T).pow(2).sum(dim=1)


def hinge(distance: Tensor, threshold: Tensor, y: Tensor) -> Tensor:
    """Mean of max(0, 1 - y (b - d)) over pairs of squared distances d."""
    return torch.relu(1 - y * (threshold - distance)).mean()


def hinge_loss(weight: Tensor, threshold: Tensor, x_i: Tensor, x_j: Tensor, y: Tensor) -> Tensor:
    """Mean of max(0, 1 - y (b - ‖W(x_i - x_j)‖²)) over the pairs."""
    return hinge(squared_distances(weight, x_i, x_j), threshold, y)


class ProjectionModule(pl.LightningModule):
    """W and b of the large-margin objective; `optimizer` and `scheduler` are factories (Hydra
    `_partial_: true`), the scheduler stepped every epoch."""

    def __init__(
        self,
        dim: int,
        input_dim: int,
        optimizer: Callable[..., Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters({"dim": int(dim), "input_dim": int(input_dim)}, logger=False)
        self.weight = nn.Parameter(torch.zeros(dim, input_dim))
        self.threshold = nn.Parameter(torch.zeros(()))
        self.optimizer = optimizer
        self.scheduler = scheduler

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        data = self.trainer.datamodule
        if not isinstance(data, PairDataModule):
            raise TypeError("ProjectionModule trains on a PairDataModule (data=pairs)")
        weight, threshold = data.initial_projection()
        with torch.no_grad():
            self.weight.copy_(weight)
            self.threshold.fill_(threshold)
        log.info("W from PCA-whitening (%d x %d), b = %.3f", *weight.shape, threshold)

    def _step(self, batch: PairBatch, stage: str) -> Tensor:
        x_i, x_j, y = batch
        distance = squared_distances(self.weight, x_i, x_j)
        loss = hinge(distance, self.threshold, y)
        with torch.no_grad():
            accuracy = ((self.threshold - distance) * y > 0).float().mean()
        self.log(f"{stage}/loss", loss, prog_bar=True, on_epoch=True, batch_size=len(y))
        self.log(f"{stage}/acc", accuracy, prog_bar=True, on_epoch=True, batch_size=len(y))
        return loss

    def training_step(self, batch: PairBatch, batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: PairBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> Any:
        if self.optimizer is None:
            raise ValueError("ProjectionModule: no optimizer factory given (module.optimizer)")
        optimizer = self.optimizer(params=self.parameters())
        if self.scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler(optimizer=optimizer)}


class ExportProjection(pl.Callback):
    """At the end of training, write the learned W (with the data's PCA pre-step) where
    `compression=projection` looks for it: beside the code set it was learned on."""

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking or trainer.fast_dev_run:
            return
        data: PairDataModule = trainer.datamodule
        projection = data.projection(pl_module.weight.detach().cpu().numpy())
        projection.info |= {
            "run": str(trainer.log_dir or trainer.default_root_dir),
            "epochs": trainer.current_epoch,
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        }
        projection.save(data.projection_path)
        log.info("projection written: %s", data.projection_path)
