"""Backbones by name (or by checkpoint path), timm-style.

A factory registers under a name with `register_backbone` and builds the ImageNet (1000-class)
network, loading its published weights when asked to; `create_backbone` resizes the last layer
afterwards when another `num_classes` is wanted, so "pretrained body, new head" (the paper's
retraining on Landmarks) is one call.

`pretrained=None` (the default) means "the weights this network ships with": published ImageNet
weights for the networks that have them, a random initialisation for the paper's `alexnet`, which
has none (they come from `train.py`; pass that checkpoint's path as the name). `pretrained=True`
insists on published weights and fails clearly where there are none; `pretrained=False` always
initialises randomly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ncl.models.backbone import Backbone
from ncl.models.checkpoint import is_checkpoint_path, read_backbone_checkpoint

log = logging.getLogger(__name__)

Factory = Callable[..., Backbone]
F = TypeVar("F", bound=Factory)


@dataclass(frozen=True)
class _Entry:
    factory: Factory
    has_weights: bool


_REGISTRY: dict[str, _Entry] = {}


def register_backbone(name: str, *, has_weights: bool = True) -> Callable[[F], F]:
    """Register `factory(*, pretrained: bool, **kwargs) -> Backbone` under `name`.

    `has_weights` is False for networks with no published weights: `pretrained=None` then builds
    them randomly initialised.
    """

    def decorate(factory: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is registered twice")
        _REGISTRY[name] = _Entry(factory, has_weights)
        return factory

    return decorate


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def has_published_weights(name: str) -> bool:
    """Whether `name` has published weights at all (the paper's AlexNet has none)."""
    return _REGISTRY[name].has_weights


def create_backbone(
    name: str,
    *,
    pretrained: bool | None = None,
    num_classes: int | None = None,
    **kwargs: Any,
) -> Backbone:
    """The backbone `name` (a registered name or a checkpoint path), with `num_classes` outputs.

    `kwargs` go to the factory and are recorded in `config`. A checkpoint path (`.ckpt`, `.pt`,
    `.pth`) restores the architecture and weights saved by training; it takes no kwargs.
    """
    if is_checkpoint_path(name):
        if kwargs or pretrained is False:
            raise ValueError(
                f"{name}: a checkpoint fixes its architecture and weights; "
                "it takes no kwargs and pretrained=False does not apply"
            )
        backbone = backbone_from_checkpoint(name)
    else:
        entry = _REGISTRY.get(name)
        if entry is None:
            raise ValueError(
                f"unknown backbone {name!r}; available: {', '.join(list_backbones())} "
                "(or a path to a .ckpt/.pt/.pth checkpoint written by train.py)"
            )
        if pretrained is None and not entry.has_weights:
            log.warning(
                "%s has no published weights: randomly initialised (train it with train.py, "
                "then pass the checkpoint path as the backbone name)",
                name,
            )
        backbone = entry.factory(
            pretrained=entry.has_weights if pretrained is None else pretrained, **kwargs
        )
        backbone.name = name
        backbone.arch_kwargs = dict(kwargs)
    if num_classes is not None and num_classes != backbone.num_classes:
        backbone.reset_classifier(num_classes)
    return backbone


def backbone_from_checkpoint(path: str | Path) -> Backbone:
    """The backbone a training checkpoint holds, rebuilt from its config, weights loaded strictly."""
    config, state = read_backbone_checkpoint(path)
    backbone = create_backbone(
        config["name"], pretrained=False, num_classes=config["num_classes"], **config["kwargs"]
    )
    backbone.load_state_dict(state, strict=True)
    return backbone
