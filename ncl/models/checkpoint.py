"""Reading a backbone out of a training checkpoint.

The training module keeps its network as `self.backbone` and saves `backbone.config` among its
hyper-parameters, so a Lightning checkpoint holds both halves of a backbone:
`hyper_parameters["backbone"]` (name, kwargs, num_classes: the architecture) and the
`backbone.`-prefixed entries of `state_dict` (the weights). Other entries (a projection, metrics)
are ignored.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")
PREFIX = "backbone."


def is_checkpoint_path(name: str) -> bool:
    return Path(name).suffix in CHECKPOINT_SUFFIXES


def read_backbone_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(backbone config, backbone state dict without its prefix) saved in `path`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    # Lightning checkpoints pickle hyper-parameters (dicts, OmegaConf containers): not tensors only.
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {e})") from e
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, Mapping) else {}
    config = hparams.get("backbone") if isinstance(hparams, Mapping) else None
    if not isinstance(config, Mapping) or "name" not in config:
        raise ValueError(
            f"{path}: no backbone config in hyper_parameters['backbone'] "
            "(expected a checkpoint of a module that saved backbone.config)"
        )
    state = {
        k[len(PREFIX) :]: v
        for k, v in checkpoint.get("state_dict", {}).items()
        if k.startswith(PREFIX)
    }
    if not state:
        raise ValueError(f"{path}: no '{PREFIX}*' weights in its state_dict")
    config = {
        "name": str(config["name"]),
        "kwargs": dict(config.get("kwargs") or {}),
        "num_classes": int(config["num_classes"]),
    }
    return config, state
