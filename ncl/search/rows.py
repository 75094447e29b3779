"""A database larger than memory: the rows of several code arrays read a chunk at a time.

The database of an evaluation is the benchmark's code set, its turned copies and any distractors,
all memory-mapped `codes.npy` files (float32 or float16), then compressed. `CodeRows` stands for
their concatenation, compressed, without making it: every index, the exact flat one included, is
built from `chunks()`, so besides the index only one chunk is ever in memory as float32 (a float16
set is never copied whole to float32); `numpy.asarray(rows)` makes the whole matrix where a
re-ranker needs it (query expansion, DBA), filling it chunk by chunk. A database of at most one chunk is compressed in one call,
exactly as before there were chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

# rows compressed at once: 16,384 x 4,096 float32 codes are 256 MiB, x 256 are 16 MiB; a build
# holds three such temporaries beside the index, which at 1M x 256 IVF-PQ codes is 70 MB
CHUNK = 1 << 14


@dataclass(frozen=True)
class CodeRows:
    """The rows of `parts` one after another, each chunk passed through `transform` (codes in,
    `dim`-d float32 codes out: a compressor), `chunk` rows at a time."""

    parts: Sequence[np.ndarray]
    transform: Callable[[np.ndarray], np.ndarray]
    dim: int
    chunk: int = CHUNK

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.dim)

    def raw(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop of the concatenated parts, as stored (read from the memory maps)."""
        pieces, offset = [], 0
        for part in self.parts:
            lo, hi = max(start - offset, 0), min(stop - offset, len(part))
            if lo < hi:
                pieces.append(part[lo:hi])
            offset += len(part)
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The transformed codes of the given rows (sorted row indices), as float32."""
        offsets = np.cumsum([0, *(len(p) for p in self.parts)])
        pieces = [
            part[rows[(rows >= lo) & (rows < hi)] - lo]
            for part, lo, hi in zip(self.parts, offsets[:-1], offsets[1:], strict=True)
        ]
        return np.asarray(self.transform(np.concatenate(pieces)), dtype=np.float32)

    def chunks(self) -> Iterator[np.ndarray]:
        """The transformed rows, in order, as contiguous float32 chunks."""
        n = len(self)
        for start in range(0, n, self.chunk):
            out = self.transform(self.raw(start, min(start + self.chunk, n)))
            yield np.ascontiguousarray(out, dtype=np.float32)

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.float32)
        start = 0
        for block in self.chunks():
            out[start : start + len(block)] = block
            start += len(block)
        return out if dtype is None else out.astype(dtype, copy=False)


def row_chunks(database: np.ndarray | CodeRows, chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """An array's or a `CodeRows`' rows as contiguous float32 chunks (a memory-mapped or float16
    array is converted one chunk at a time)."""
    if isinstance(database, CodeRows):
        yield from database.chunks()
        return
    for start in range(0, len(database), chunk):
        yield np.ascontiguousarray(database[start : start + chunk], dtype=np.float32)


def sample_rows(database: np.ndarray | CodeRows, count: int, seed: int = 0) -> np.ndarray:
    """At most `count` of the database's rows, drawn with `seed` (kept in database order), as
    float32: what an index trained on the database itself learns from."""
    n = len(database)
    if n <= count:
        return np.asarray(database, dtype=np.float32)
    rows = np.sort(np.random.default_rng(seed).choice(n, count, replace=False))
    if isinstance(database, CodeRows):
        return database.take(rows)
    return np.asarray(database[rows], dtype=np.float32)
