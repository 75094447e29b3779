"""Building a compressed index once: trained, filled chunk by chunk, written beside the codes.

An index other than the exact flat one is an artifact of `ncl.cache` in the database's code-set
directory, `index-<kind>-<digest>/index.faiss`, keyed by what identifies the codes searched
(`DatabaseKey`: the code sets' keys and stamps, the compressor), the codes the index was trained
on, its kind and its build settings. A later run, or another job of a sweep over search-time
settings, memory-maps it (`faiss.IO_FLAG_MMAP`) instead of building it again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ncl.cache import Artifact, digest
from ncl.io.progress import progress_bar
from ncl.search.index import IndexKind
from ncl.search.rows import CodeRows, row_chunks

INDEX_FILE = "index.faiss"


@dataclass(frozen=True)
class DatabaseKey:
    """Where artifacts made from a database's codes are cached (`directory`, the code set's)
    and what identifies the codes searched (`inputs`: the code sets' keys and stamps, the
    compressor)."""

    directory: Path
    inputs: Mapping[str, Any]

    def with_inputs(self, **more: Any) -> DatabaseKey:
        """The same database with more inputs (e.g. the re-ranking that changed its codes)."""
        return DatabaseKey(self.directory, {**self.inputs, **more})


def make_index(
    kind: IndexKind, database: np.ndarray | CodeRows, train: np.ndarray | None
) -> faiss.Index:
    """A new CPU index of `kind`, trained on `train`, the database added a chunk at a time (in
    one call where the kind needs it, HNSW: the whole set is then made as float32 once)."""
    dim = database.shape[1]
    index = faiss.index_factory(dim, kind.factory(dim), faiss.METRIC_L2)
    kind.prepare(index)
    if not index.is_trained:
        if train is None or len(train) == 0:
            raise ValueError(f"a {kind.name} index needs codes to train on, got none")
        need, settings = kind.training_need()
        if len(train) < need:
            raise ValueError(
                f"search.index: {kind.label()} needs at least {need} codes to train on "
                f"(k-means: one a centroid, for {settings}), got {len(train)}; lower the "
                "setting or train on more codes (search.index.train_on)"
            )
        index.train(np.ascontiguousarray(train, dtype=np.float32))
    if kind.trains:
        reserve_lists(index, database)
    with progress_bar(f"index {kind.name}", len(database)) as advance:
        if kind.adds_at_once:
            index.add(np.ascontiguousarray(database, dtype=np.float32))
            advance(len(database))
        else:
            for chunk in row_chunks(database):
                index.add(chunk)
                advance(len(chunk))
    return index


def reserve_lists(index: faiss.Index, database: np.ndarray | CodeRows) -> None:
    """Give each inverted list of a trained IVF index the exact room for the codes it will
    get, counted by assigning the database to its lists first.

    faiss's lists grow by doubling their capacity as codes arrive, so a built IVF-PQ index held
    up to twice its size in memory (132 MB for a 70 MB index at 1M codes); one more pass of the
    coarse quantiser over the memory-mapped codes costs a few seconds per million. Fast-scan
    lists (`BlockInvertedLists`) are left alone: faiss frees the room given to their emptied codes
    and holds them in power-of-two capacities as they grow, so the pass bought nothing there (300k
    codes: 13 MB after the build either way) and doubled the time of the adds."""
    ivf = faiss.extract_index_ivf(index)
    invlists = faiss.downcast_InvertedLists(ivf.invlists)
    if isinstance(invlists, faiss.BlockInvertedLists):
        return
    counts = np.zeros(ivf.nlist, dtype=np.int64)
    for chunk in row_chunks(database):
        if isinstance(index, faiss.IndexPreTransform):  # OPQ: lists hold rotated codes
            for i in range(index.chain.size()):
                chunk = index.chain.at(i).apply_py(chunk)
        _, lists = ivf.quantizer.search(chunk, 1)
        counts += np.bincount(lists.ravel(), minlength=ivf.nlist)
    for list_no in np.flatnonzero(counts):  # a vector shrunk back to 0 keeps its capacity
        invlists.resize(int(list_no), int(counts[list_no]))
        invlists.resize(int(list_no), 0)


def index_bytes(index: faiss.Index) -> int:
    return int(faiss.serialize_index(index).nbytes)


def built_index(
    kind: IndexKind,
    database: np.ndarray | CodeRows,
    train: np.ndarray | None,
    key: DatabaseKey | None,
    train_identity: Any = None,
) -> tuple[faiss.Index, dict[str, Any]]:
    """The index of `kind` over `database` and what to record of it (bytes, seconds, where it
    is kept). With a `key` it is made once, kept beside the codes and memory-mapped when
    current; `train_identity` stands for the training codes in its key."""
    started = time.perf_counter()
    if key is None:
        index = make_index(kind, database, train)
        seconds = time.perf_counter() - started
        return index, {"bytes": index_bytes(index), "build_seconds": seconds, "reused": False}
    inputs = {
        **key.inputs,
        "shape": list(database.shape),
        "index": kind.name,
        "factory": kind.factory(database.shape[1]),
        **kind.build_params(),
        "train": train_identity,
    }
    artifact = Artifact(key.directory / f"index-{kind.name}-{digest(inputs)}", inputs)
    built: dict[str, Any] = {}

    def make(tmp: Path) -> dict[str, Any]:
        faiss.write_index(make_index(kind, database, train), str(tmp / INDEX_FILE))
        built["build_seconds"] = time.perf_counter() - started
        return built

    def read(path: Path) -> faiss.Index:
        return faiss.read_index(str(path / INDEX_FILE), faiss.IO_FLAG_MMAP)

    index = artifact.load(make, read, f"{kind.name} index")
    if index.ntotal != len(database):
        raise ValueError(
            f"{artifact.path / INDEX_FILE}: holds {index.ntotal} codes, not {len(database)}"
        )
    meta = artifact.meta or {}
    return index, {
        "bytes": (artifact.path / INDEX_FILE).stat().st_size,
        "build_seconds": meta.get("build_seconds"),
        "load_seconds": time.perf_counter() - started,
        "reused": not built,
        "path": str(artifact.path),
    }
