"""Classifier training of any registered backbone: the paper's ImageNet training and its
retraining on Landmarks and on the Multi-view RGB-D turntable views (sections 3-4).

The network is `self.backbone`, and the hyper-parameters hold `backbone.config` (name, kwargs,
class count) in place of the name it was built from: a checkpoint alone then rebuilds the
architecture, for `ClassifierModule.load_from_checkpoint(path)` as for
`ncl.models.create_backbone(path)` (which is how `extract.py` / `evaluate.py` take
`model.name=<path to .ckpt>`).

Fine-tuning (`init_from`): every layer but the last comes from the network's published ImageNet
weights (`"pretrained"`) or from a checkpoint of this module; the last layer is re-created for the
new classes (the paper: "initialized by the original ILSVRC CNN, except for the last layer"). The
body may learn more slowly than the new head (`body_lr_scale`). Once used, `init_from` is stored
as None: loading a checkpoint must not read the source network again, which may be gone.

Only plain values are saved as hyper-parameters (the optimizer and scheduler factories are not),
so checkpoints load with `torch.load(weights_only=True)`, Lightning's default.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
from torch import Tensor
from torch.nn import functional as F
from torch.optim import Optimizer
from torchmetrics.classification import MulticlassAccuracy

from ncl.models import Backbone, create_backbone

log = logging.getLogger(__name__)

OptimizerFactory = Callable[..., Optimizer]
SchedulerFactory = Callable[..., Any]
Batch = tuple[Tensor, Tensor, list[int]]
PRETRAINED = "pretrained"


def build_backbone(
    backbone: str | Mapping[str, Any],
    num_classes: int | None,
    init_from: str | None,
    backbone_kwargs: Mapping[str, Any],
) -> Backbone:
    """The network to train: a saved architecture (a `Backbone.config` mapping, randomly
    initialised: a checkpoint's weights follow), or the registry name `backbone` with
    `num_classes` outputs, from scratch or initialised by `init_from` with a new last layer."""
    if isinstance(backbone, Mapping):
        return create_backbone(
            backbone["name"],
            pretrained=False,
            num_classes=backbone["num_classes"],
            **backbone.get("kwargs", {}),
        )
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(
            f"num_classes must be a positive int, not {num_classes!r} "
            "(train.py counts the classes of the data when module.num_classes is null)"
        )
    kwargs = dict(backbone_kwargs)
    if init_from is None:
        return create_backbone(backbone, pretrained=False, num_classes=num_classes, **kwargs)
    if init_from == PRETRAINED:
        net = create_backbone(backbone, pretrained=True, **kwargs)
    else:
        net = create_backbone(init_from)
        if net.name != backbone or net.arch_kwargs != kwargs:
            raise ValueError(
                f"init_from={init_from} holds a {net.name} {net.arch_kwargs or ''}, but the "
                f"module is configured for {backbone} {kwargs or ''}: set module.backbone to match"
            )
    log.info("%s: body from %s, a new %d-class last layer", backbone, init_from, num_classes)
    net.reset_classifier(num_classes)
    return net


class ClassifierModule(pl.LightningModule):
    """Cross-entropy training of `backbone` with top-1 / top-5 accuracy.

    `optimizer` and `scheduler` are factories (Hydra `_partial_: true`): the optimizer is called
    with two parameter groups, the body and the last layer, and the body's learning rate is
    multiplied by `body_lr_scale`; the scheduler is called with the optimizer and stepped every
    `scheduler_interval` ("epoch" or "step").
    """

    def __init__(
        self,
        backbone: str | Mapping[str, Any] = "alexnet",
        num_classes: int | None = None,
        init_from: str | None = None,
        backbone_kwargs: Mapping[str, Any] | None = None,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        body_lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.backbone = build_backbone(backbone, num_classes, init_from, backbone_kwargs or {})
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.save_hyperparameters(
            {
                "backbone": self.backbone.config,
                "num_classes": self.backbone.num_classes,
                "init_from": None,
                "scheduler_interval": scheduler_interval,
                "body_lr_scale": float(body_lr_scale),
            },
            logger=False,
        )
        n = self.backbone.num_classes
        self.train_acc = MulticlassAccuracy(num_classes=n, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=n, average="micro")
        # top-5 needs five classes; smaller problems report top-n
        self.val_acc_top5 = MulticlassAccuracy(num_classes=n, top_k=min(5, n), average="micro")

    def forward(self, images: Tensor) -> Tensor:
        return self.backbone(images)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor | None:
        images, labels, _ = batch
        if images.numel() == 0:  # every image of the batch was unreadable (each was reported)
            return None
        logits = self.backbone(images)
        loss = F.cross_entropy(logits, labels)
        self.train_acc(logits, labels)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: Batch, stage: str) -> None:
        images, labels, _ = batch
        if images.numel() == 0:
            return
        logits = self.backbone(images)
        self.val_acc(logits, labels)
        self.val_acc_top5(logits, labels)
        self.log(f"{stage}/loss", F.cross_entropy(logits, labels), sync_dist=True, prog_bar=True)
        self.log(f"{stage}/acc", self.val_acc, prog_bar=True)
        self.log(f"{stage}/acc_top5", self.val_acc_top5)

    def configure_optimizers(self) -> Any:
        if self.optimizer is None:
            raise ValueError("ClassifierModule: no optimizer factory given (module.optimizer)")
        groups = [
            {"params": list(self.backbone.body_parameters())},
            {"params": list(self.backbone.head_parameters())},
        ]
        optimizer = self.optimizer(params=groups)
        optimizer.param_groups[0]["lr"] *= self.hparams.body_lr_scale
        if self.scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": self.scheduler(optimizer=optimizer),
                "interval": self.hparams.scheduler_interval,
                "monitor": "val/loss",  # read by ReduceLROnPlateau only
            },
        }
