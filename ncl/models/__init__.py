"""Backbones with named layer taps: `create_backbone(name)`, `list_backbones()`.

Importing the network modules registers them (see `ncl.models.registry`).
"""

from ncl.models import (  # noqa: F401  (registration)
    alexnet,
    efficientnet_lite,
    mobilenet,
    retrieval,
    timm_any,
    torchvision_any,
)
from ncl.models.backbone import Backbone
from ncl.models.registry import (
    backbone_from_checkpoint,
    create_backbone,
    list_backbones,
    register_backbone,
)
from ncl.models.spec import BackboneSpec
from ncl.models.weights import WeightsNotFoundError

__all__ = [
    "Backbone",
    "BackboneSpec",
    "WeightsNotFoundError",
    "backbone_from_checkpoint",
    "create_backbone",
    "list_backbones",
    "register_backbone",
]
