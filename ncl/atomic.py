"""Atomic file writes, the one way ncl writes a file that a later run trusts (caches, fitted
compressors, results, extraction shards, mined pairs): the content goes to a temporary file in the
target's folder, which is then renamed over the target. An interrupted job leaves the old file or
the new one, never half of one, so a rerun can take any file it finds as complete."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write` on a temporary file beside `path` (folders created), then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique name, created with the umask's ordinary permissions (mkstemp's would be private)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text_atomically(path: str | Path, text: str) -> None:
    write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def write_json_atomically(path: str | Path, obj: Any, **dump_kwargs: Any) -> None:
    write_text_atomically(path, json.dumps(obj, **dump_kwargs))


def save_npy_atomically(path: str | Path, array: np.ndarray) -> None:
    write_atomically(path, lambda f: np.save(f, array, allow_pickle=False))


def save_npz_atomically(path: str | Path, **arrays: Any) -> None:
    write_atomically(path, lambda f: np.savez(f, **arrays))
