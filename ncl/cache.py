"""The artifact cache: the one answer to "is this file still current?" for everything ncl keeps.

An artifact is a directory whose content is a function of some inputs: files (stood in for by
their size and modification time), weights, settings. Its `key` digests those inputs; the
directory's `meta.json` records the key and the inputs themselves, and is written last, inside a
staging directory that is renamed into place whole. So a reader finds either a complete artifact
or none, a changed input gives another key and the artifact is remade (and the log says which
input changed), and an unchanged one is reused. A lock per artifact makes two processes that want
the same artifact at once build it once: the second waits, then reuses the first's.

Code sets, PCA bases, projections' fit codes, vocabularies, local-feature caches, keypoints,
mined pairs and the generated demo all go through here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock

log = logging.getLogger(__name__)

META = "meta.json"
T = TypeVar("T")


def file_stamp(path: str | Path) -> str:
    """What stands in for a file's content: its size and modification time in ns ("missing" when
    there is no file), so a rewritten file is told apart even within the same second."""
    try:
        st = Path(path).stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def digest(value: Any, length: int = 16) -> str:
    """A short stable hash of any JSON-able value (keys sorted; paths and others as strings)."""
    payload = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(payload.encode()).hexdigest()[:length]


def changed_inputs(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The names of the inputs that differ between `before` (as recorded) and `now`, sorted."""
    return sorted(k for k in {*before, *now} if before.get(k) != now.get(k))


class ArtifactError(RuntimeError):
    """An artifact on disk cannot be used; the message names its directory."""


def read_meta(path: str | Path) -> dict[str, Any] | None:
    """The `meta.json` of the artifact at `path`, or None when there is none or it is damaged."""
    meta_file = Path(path) / META
    try:
        meta = json.loads(meta_file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("%s: unreadable (%s); the artifact will be remade", meta_file, e)
        return None
    return meta if isinstance(meta, dict) else None


@dataclass(frozen=True)
class Artifact:
    """The directory `path`, made from `inputs` (a JSON-able mapping, recorded in meta.json)."""

    path: Path
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def key(self) -> str:
        return digest(self.inputs)

    @property
    def meta(self) -> dict[str, Any] | None:
        return read_meta(self.path)

    def is_current(self) -> bool:
        meta = self.meta
        return meta is not None and meta.get("key") == self.key

    def why_stale(self) -> str:
        """Which inputs changed since the artifact on disk was made (for the log)."""
        meta = self.meta
        if meta is None:
            return "not made yet"
        changed = changed_inputs(meta.get("inputs") or {}, self.inputs)
        return f"changed: {', '.join(changed)}" if changed else "made by another version"

    def lock(self) -> FileLock:
        """Held while the artifact is checked and built: one builder per artifact at a time."""
        return lock_for(self.path)

    @contextmanager
    def staging(self, extra_meta: Mapping[str, Any] | None = None) -> Iterator[Path]:
        """A fresh directory beside `path` to build into; on success meta.json (key, inputs and
        `extra_meta`, read when the block ends, so the builder may still add to it) is written
        into it and it replaces `path` whole; on error it is removed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.tmp-", dir=self.path.parent))
        try:
            yield tmp
            meta = {**(extra_meta or {}), "key": self.key, "inputs": dict(self.inputs)}
            (tmp / META).write_text(json.dumps(meta, indent=2, default=str))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        publish(tmp, self.path)

    def get(self, make: Callable[[Path], Mapping[str, Any] | None], what: str = "") -> Path:
        """The artifact's directory, made by `make(staging_dir)` first unless it is current.
        `make` may return more to record in meta.json."""
        with self.lock():
            if self.is_current():
                return self.path
            if self.path.exists():
                log.info("%s: remaking %s (%s)", self.path, what or "it", self.why_stale())
            extra: dict[str, Any] = {}
            with self.staging(extra) as tmp:
                extra.update(make(tmp) or {})
            return self.path

    def load(
        self, make: Callable[[Path], Mapping[str, Any] | None], read: Callable[[Path], T], what: str
    ) -> T:
        """`read(directory)` of the artifact, made first unless current; one that is current
        but fails to load (a damaged file) is moved aside, named in the log, and made again."""
        path = self.get(make, what)
        try:
            return read(path)
        except DAMAGE as e:
            self.set_aside(f"{what} failed to load: {type(e).__name__}: {e}")
        return read(self.get(make, what))

    def set_aside(self, reason: str) -> Path:
        """Move a damaged artifact out of the way (kept for inspection, never read again)."""
        with self.lock():
            aside = self.path.with_name(f".{self.path.name}.damaged-{time.time_ns()}")
            if self.path.exists():
                os.replace(self.path, aside)
            log.warning("%s: %s; moved aside to %s, making it again", self.path, reason, aside)
            return aside


# what loading a damaged file raises: truncated zip/npz, bad JSON or header, missing member
DAMAGE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)


def lock_for(path: Path) -> FileLock:
    """An inter-process lock for whatever is made at `path` (the file `.<name>.lock` beside it,
    left in place: removing a lock file while another process waits on it would break it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path.parent / f".{path.name}.lock")


def publish(tmp: Path, path: Path) -> None:
    """Rename the complete directory `tmp` to `path`, replacing whatever was there."""
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
