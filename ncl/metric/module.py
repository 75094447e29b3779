"""Metric learning of a whole network for retrieval: siamese fine-tuning on mined pairs with
hard negatives (Radenović et al. 2016, 2018; cirtorch).

The network is a `RetrievalNet` (`ncl.models.retrieval`): a backbone's `conv` map, a pooling
(GeM, its p learned), an optional whitening layer, L2. Each batch holds tuples (query, positive,
n hard negatives) from a `TupleDataModule`; the loss part (`module/loss`: contrastive or
triplet, `ncl.metric.losses`) pulls the positive close and pushes the negatives away.

As in cirtorch, batch normalisation keeps its ImageNet statistics (`freeze_batchnorm`): a batch
of a few tuples, each mostly one scene, estimates them badly. The backbone's classifier takes no
part in the descriptor and is frozen (DDP also refuses parameters that get no gradient). Pooling
and whitening learn at `head_lr_scale` times the body's rate, without weight decay (cirtorch:
10x for p). The whitening layer starts from the learned whitening Lw of the first epoch's codes
and pairs (`whitening_init: lw`, `whitening_shrinkage` for few pairs), or from the identity's
leading rows (`identity`); it is set in `setup`, before Lightning restores a checkpoint, so that
resuming keeps the trained one.

The hyper-parameters hold the network's `config` in place of the name it was built from, so a
checkpoint is a backbone by its path (`ncl.models.checkpoint`): `python evaluate.py
model.name=<run>/checkpoints/last.ckpt taps=[global]`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from ncl.compress.whitening import LearnedWhitening
from ncl.metric.losses import TupleLoss
from ncl.metric.tuples import TupleDataModule
from ncl.models import create_backbone
from ncl.models.checkpoint import is_checkpoint_path
from ncl.models.pooling import GeM, Pooling
from ncl.models.retrieval import RetrievalNet

log = logging.getLogger(__name__)

PRETRAINED = "pretrained"
WHITENING_INITS = ("lw", "identity")


def build_retrieval_net(
    backbone: str | Mapping[str, Any],
    init_from: str | None,
    backbone_kwargs: Mapping[str, Any],
    pooling: Pooling | None,
    whitening: int | None,
) -> RetrievalNet:
    """A saved architecture (a `RetrievalNet.config`: randomly initialised, a checkpoint's weights
    follow), or the registered `backbone` from its published weights (`init_from: pretrained`),
    a checkpoint of any training module, or nothing, with `pooling` and `whitening`."""
    if isinstance(backbone, Mapping):
        return create_backbone(
            backbone["name"],
            pretrained=False,
            num_classes=backbone["num_classes"],
            **backbone.get("kwargs", {}),
        )
    if init_from is not None and is_checkpoint_path(init_from):
        base = create_backbone(init_from)
        if base.name != backbone:
            raise ValueError(
                f"init_from={init_from} holds a {base.name}, but the module is configured for "
                f"{backbone}: set module.backbone to match"
            )
    elif init_from in (PRETRAINED, None):
        base = create_backbone(backbone, pretrained=init_from == PRETRAINED, **backbone_kwargs)
    else:
        raise ValueError(
            f"module.init_from must be {PRETRAINED}, a checkpoint path or null, not {init_from!r}"
        )
    return RetrievalNet(base, pooling or GeM(), whitening)


def freeze_batchnorm(net: nn.Module) -> None:
    """Batch-norm layers in eval mode: their running statistics used and kept as they are."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


class MetricLearningModule(pl.LightningModule):
    """A `RetrievalNet` trained on tuples with `loss`; `optimizer` and `scheduler` are factories
    (Hydra `_partial_: true`), the scheduler stepped every epoch."""

    def __init__(
        self,
        backbone: str | Mapping[str, Any] = "efficientnet_lite0",
        loss: TupleLoss | None = None,
        init_from: str | None = PRETRAINED,
        backbone_kwargs: Mapping[str, Any] | None = None,
        pooling: Pooling | None = None,
        whitening: int | None = None,
        whitening_init: str = "lw",
        whitening_shrinkage: float = 0.1,
        freeze_batchnorm: bool = True,
        head_lr_scale: float = 10.0,
        optimizer: Callable[..., Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
    ) -> None:
        super().__init__()
        if whitening_init not in WHITENING_INITS:
            raise ValueError(
                f"module.whitening_init must be one of {WHITENING_INITS}, not {whitening_init!r}"
            )
        if loss is None:
            raise ValueError("MetricLearningModule: no loss given (module/loss=contrastive)")
        self.backbone = build_retrieval_net(
            backbone, init_from, backbone_kwargs or {}, pooling, whitening
        )
        self.backbone.head.requires_grad_(False)
        self.loss = loss
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.save_hyperparameters(
            {
                "backbone": self.backbone.config,
                "init_from": None,
                "whitening_init": whitening_init,
                "whitening_shrinkage": float(whitening_shrinkage),
                "freeze_batchnorm": bool(freeze_batchnorm),
                "head_lr_scale": float(head_lr_scale),
            },
            logger=False,
        )

    def forward(self, images: Tensor) -> Tensor:
        """The `global` descriptors of a batch of images."""
        return self.backbone.describe(images)

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        # channels_last: the faster convolution kernels on CPU and GPU (as for extraction); set
        # here, before DDP wraps the module and lays out its gradient buckets
        self.backbone.to(memory_format=torch.channels_last)
        if self.backbone.whitening is None:
            return
        if self.hparams.whitening_init == "identity":
            dim = self.backbone.whitening.in_features
            self.backbone.set_whitening(np.zeros(dim), np.eye(dim))
            return
        data = self.trainer.datamodule
        if not isinstance(data, TupleDataModule):
            raise TypeError("whitening_init=lw fits on a TupleDataModule's pairs (data=tuples)")
        self.backbone.to(self.trainer.strategy.root_device)
        codes, pairs = data.whitening_fit(
            self.backbone, lambda images: self.backbone.describe(images, whiten=False)
        )
        lw = LearnedWhitening.fit(
            codes, pairs[:, 0], pairs[:, 1], shrinkage=self.hparams.whitening_shrinkage
        )
        self.backbone.set_whitening(lw.mean, lw.projection)
        log.info("whitening from Lw of %d codes and %d pairs", len(codes), len(pairs))

    def on_train_epoch_start(self) -> None:
        if self.hparams.freeze_batchnorm:
            freeze_batchnorm(self.backbone)
        if isinstance(self.backbone.pooling, GeM):
            self.log("train/gem_p", self.backbone.pooling.p.detach(), on_epoch=True)

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        tuples, size = batch.shape[0], batch.shape[1]
        images = batch.flatten(0, 1).contiguous(memory_format=torch.channels_last)
        descriptors = self.backbone.describe(images).view(tuples, size, -1)
        loss = self.loss(descriptors)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=tuples)
        return loss

    def configure_optimizers(self) -> Any:
        if self.optimizer is None:
            raise ValueError("MetricLearningModule: no optimizer factory given (module.optimizer)")
        groups = [{"params": list(self.backbone.body_parameters())}]
        head = list(self.backbone.head_parameters())
        if head:
            groups.append({"params": head, "weight_decay": 0.0})
        optimizer = self.optimizer(params=groups)
        if head:
            optimizer.param_groups[1]["lr"] *= self.hparams.head_lr_scale
        if self.scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler(optimizer=optimizer)}
