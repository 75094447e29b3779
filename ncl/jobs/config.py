"""Helpers for reading Hydra configs."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import ListConfig


def as_list(value: Any) -> list[Any]:
    """A config value that may be one item or a list of them (so a multirun can pass one)."""
    if isinstance(value, (list, tuple, ListConfig)):
        return list(value)
    return [value]


def build(node: Any, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, surfacing the part's own error: Hydra wraps every error of a
    `_target_` in an InstantiationException, but a part's error already names the file or option
    at fault (e.g. "<folder>: image folder not found"), and its type is what a caller catches."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        if e.__cause__ is not None:
            raise e.__cause__ from None
        raise
