"""Helpers for reading Hydra configs."""

from __future__ import annotations

from typing import Any

from omegaconf import ListConfig


def as_list(value: Any) -> list[Any]:
    """A config value that may be one item or a list of them (so a multirun can pass one)."""
    if isinstance(value, (list, tuple, ListConfig)):
        return list(value)
    return [value]
