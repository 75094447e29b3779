"""Running classes over a process pool, with one progress bar counting verified image pairs.

Classes are independent, so they are the unit of parallelism: each worker mines whole classes
(`ncl.pairs.classes.mine_class`), largest first as the caller orders them, so that a big class
does not start last. Workers report progress every few pairs through a queue, so the bar moves
inside a long class too.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

import cv2

from ncl.pairs import classes
from ncl.pairs.classes import ClassGraph, ClassTask

_progress: Any = None  # a worker's queue to the parent's progress bar


def _init_worker(progress: Any) -> None:
    global _progress
    _progress = progress
    cv2.setNumThreads(1)  # one OpenCV thread per process: the pool already uses every core


def _mine_in_worker(task: ClassTask) -> ClassGraph:
    return classes.mine_class(task, _progress.put)


def run_classes(
    tasks: Sequence[ClassTask], workers: int, advance: Callable[[int], None]
) -> Iterator[ClassGraph]:
    """Mine `tasks`, yielding each class as it finishes; the progress bar counts verified
    pairs, and a class's unverifiable pairs (unreadable photos) when it finishes."""
    if workers <= 1 or len(tasks) <= 1:
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for task in tasks:
                graph = classes.mine_class(task, advance)
                advance(task.pair_count - graph.pairs_verified)
                yield graph
        finally:
            cv2.setNumThreads(threads)
        return
    # spawn, not fork: the parent may hold torch/OpenMP threads, which fork does not survive.
    context = multiprocessing.get_context("spawn")
    progress = context.Queue()

    def drain() -> None:
        try:
            while True:
                advance(progress.get_nowait())
        except queue.Empty:
            pass

    with ProcessPoolExecutor(
        min(workers, len(tasks)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(progress,),
    ) as pool:
        futures: dict[Future[ClassGraph], ClassTask] = {
            pool.submit(_mine_in_worker, t): t for t in tasks
        }
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                drain()
                for future in finished:
                    graph = future.result()
                    advance(futures[future].pair_count - graph.pairs_verified)
                    yield graph
        finally:
            for future in pending:
                future.cancel()
    drain()
