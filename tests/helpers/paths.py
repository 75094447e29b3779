"""Where things are: the repository, its Hydra configs, and the real benchmark samples."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "conf"
SHARED_DATA = Path(os.environ.get("NCL_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared(path: str) -> Path:
    """A file or folder of the real benchmark samples beside the checkout (skip if absent)."""
    target = SHARED_DATA / path
    if not target.exists():
        pytest.skip(f"{target} not available")
    return target
