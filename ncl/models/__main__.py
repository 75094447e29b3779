"""python -m ncl.models: the registered backbones, their taps, and whether their published
weights are on this machine (nothing is downloaded: a missing file is named with where to put it)."""

from __future__ import annotations

import logging

import timm

from ncl.models import WeightsNotFoundError, create_backbone, list_backbones
from ncl.models.registry import has_published_weights
from ncl.models.torchvision_any import architectures


def weights_status(name: str) -> str:
    if not has_published_weights(name):
        return "none published: train it with train.py, then model.name=<checkpoint>"
    try:
        create_backbone(name, pretrained=True)
    except WeightsNotFoundError as e:
        return f"missing: {e}"
    return "present"


def main() -> None:
    logging.disable(logging.WARNING)
    for name in list_backbones():
        if name in ("timm", "torchvision"):
            continue
        taps = ", ".join(create_backbone(name, pretrained=False).tap_dims)
        print(f"{name:20s} taps: conv, {taps}\n{'':20s} weights: {weights_status(name)}")
    count = len(timm.list_models())
    print(
        f"{'timm':20s} any of its {count} architectures: model=timm model.name=<architecture>, "
        "weights from model.weights=<file> or the Hugging Face / torch hub cache"
    )
    print(
        f"{'torchvision':20s} any of its {len(architectures())} classifiers: model=torchvision "
        "model.name=<architecture>, weights from model.weights=<file or IMAGENET1K_V1, ...> "
        "or the torch hub cache"
    )


if __name__ == "__main__":
    main()
