"""Code sets on disk: the one format between extraction and evaluation.

A code set is a directory holding
  ids.txt    one image name per line (no extension), the row order of the codes
  codes.npy  N x dim, float32 or float16, readable by ``numpy.load(..., mmap_mode="r")`` alone
  meta.json  what made it: the artifact cache's key and inputs, model, tap, transform, count,
             dtype, command; written last
  stamps.txt what each row was coded from (file size and mtime, box, rotation), written by
             extraction, so that a remade set codes only new or changed images (optional)
A set is an artifact of `ncl.cache`: only ever published by renaming a complete staging directory
into place, so a reader never sees a half-written one, and remade when its inputs change; `read_codes` still checks that the three files agree.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ncl.cache import Artifact, file_stamp

CODE_DTYPES = ("float32", "float16")


class CodeSetError(ValueError):
    """A code set is missing, incomplete or inconsistent; the message names the file."""


@dataclass(frozen=True)
class CodeSet:
    path: Path
    ids: list[str]
    codes: np.ndarray
    meta: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.codes.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def identity(self) -> list[Any]:
        """What stands in for the codes as an input of an artifact made from them: the set's
        directory, its cache key and its codes file's stamp."""
        return [str(self.path.resolve()), self.meta.get("key"), file_stamp(self.path / "codes.npy")]

    def rows(self, names: Sequence[str]) -> np.ndarray:
        """Row indices of `names`, in that order; an unknown name is an error naming the set."""
        index = {name: i for i, name in enumerate(self.ids)}
        missing = [n for n in names if n not in index]
        if missing:
            raise CodeSetError(
                f"{self.path}: no codes for {len(missing)} image(s), e.g. {missing[:3]}"
            )
        return np.fromiter((index[n] for n in names), dtype=np.int64, count=len(names))


def read_codes(path: str | Path, *, mmap: bool = True) -> CodeSet:
    path = Path(path)
    meta_file, ids_file, codes_file = path / "meta.json", path / "ids.txt", path / "codes.npy"
    for f in (meta_file, ids_file, codes_file):
        if not f.is_file():
            raise CodeSetError(f"{f}: missing; {path} is not a complete code set")
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as e:
        raise CodeSetError(f"{meta_file}: not valid JSON ({e})") from e
    ids = ids_file.read_text().splitlines()
    try:
        codes = np.load(codes_file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as e:
        raise CodeSetError(f"{codes_file}: not a readable .npy array ({e})") from e
    if codes.ndim != 2 or codes.dtype.name not in CODE_DTYPES:
        raise CodeSetError(
            f"{codes_file}: expected a 2-d float32/float16 array, got {codes.dtype}{codes.shape}"
        )
    if not (len(ids) == codes.shape[0] == meta.get("count")):
        raise CodeSetError(
            f"{path}: ids.txt has {len(ids)} lines, codes.npy {codes.shape[0]} rows, "
            f"meta.json count {meta.get('count')}"
        )
    return CodeSet(path=path, ids=ids, codes=codes, meta=meta)


def write_codes(
    path: str | Path,
    ids: Sequence[str],
    codes: np.ndarray,
    meta: dict[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
) -> CodeSet:
    """Write a code set atomically, replacing any set at `path`; `inputs` are what the codes
    were made from (the artifact cache reuses the set while they stay the same)."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or len(ids) != codes.shape[0]:
        raise ValueError(f"{path}: {len(ids)} ids for codes of shape {codes.shape}")
    if codes.dtype.name not in CODE_DTYPES:
        codes = codes.astype(np.float32)
    artifact = Artifact(Path(path), inputs or {})
    with artifact.staging(code_set_meta(ids, codes.shape[1], codes.dtype.name, meta)) as tmp:
        np.save(tmp / "codes.npy", np.ascontiguousarray(codes))
        write_ids(tmp, ids)
    return read_codes(path)


def allocate_codes(tmp: Path, count: int, dim: int, dtype: str) -> np.memmap:
    """`codes.npy` of a code set being staged, its disk space reserved up front and mapped for
    writing. Writing a memory map past the end of a full disk kills the process with SIGBUS; a
    reservation fails first, as an OSError naming the file ([Errno 28] No space left on device)."""
    path = tmp / "codes.npy"
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {**header, "shape": (count, dim)})
        offset = f.tell()
        size = offset + count * dim * np.dtype(dtype).itemsize
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError as e:
            raise OSError(e.errno, f"{e.strerror}: {path} ({size} bytes)") from e
    return np.memmap(path, dtype=dtype, mode="r+", offset=offset, shape=(count, dim))


def write_ids(tmp: Path, ids: Sequence[str]) -> None:
    """ids.txt of a code set being staged, one image name per line."""
    bad = [i for i in ids if not i or "\n" in i]
    if bad:
        raise ValueError(f"{tmp}: image names must be non-empty single lines, got {bad[:3]}")
    (tmp / "ids.txt").write_text("".join(f"{i}\n" for i in ids))


def code_set_meta(
    ids: Sequence[str], dim: int, dtype: str, meta: Mapping[str, Any] | None
) -> dict[str, Any]:
    """What a code set's meta.json records beside the cache's key and inputs."""
    return {
        **(meta or {}),
        "count": len(ids),
        "dim": dim,
        "dtype": dtype,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": (meta or {}).get("command", " ".join(sys.argv)),
    }


def slug(name: str) -> str:
    """A directory-safe key for a model or image-set name (a checkpoint path becomes its stem
    plus a short hash of the full path, so two `last.ckpt` files do not collide)."""
    if "/" in name or name.endswith((".ckpt", ".pt", ".pth")):
        digest = hashlib.sha1(str(Path(name).resolve()).encode()).hexdigest()[:8]
        name = f"{Path(name).stem}-{digest}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class CodeStore:
    """Code sets laid out as ``root/<model>/<image set>/<tap>/``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, model: str, image_set: str, tap: str) -> Path:
        return self.root / slug(model) / image_set / tap

    def exists(self, model: str, image_set: str, tap: str) -> bool:
        return (self.path(model, image_set, tap) / "meta.json").is_file()

    def artifact(self, model: str, image_set: str, tap: str, inputs: Mapping[str, Any]) -> Artifact:
        """The code set of (model, image set, tap) as made from `inputs`."""
        return Artifact(self.path(model, image_set, tap), inputs)

    def read(self, model: str, image_set: str, tap: str) -> CodeSet:
        path = self.path(model, image_set, tap)
        if not (path / "meta.json").is_file():
            raise CodeSetError(
                f"{path}: no codes for model {model!r}, image set {image_set!r}, tap {tap!r}; "
                "run extract.py for them first"
            )
        return read_codes(path)
