"""Checks that fail before any work, with an error naming the path and what was expected there."""

from __future__ import annotations

from pathlib import Path


def require_dir(path: str | Path, what: str, error: type[Exception] = FileNotFoundError) -> Path:
    """`path` as a Path, or `error` naming it: a mistyped root fails before any work starts."""
    path = Path(path)
    if not path.is_dir():
        raise error(f"{path}: {what} folder not found")
    return path


def require_file(path: str | Path, what: str, error: type[Exception] = FileNotFoundError) -> Path:
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    return path
