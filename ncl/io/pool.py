"""Running independent tasks over a process pool, the one pool of ncl (local-feature extraction,
pair mining), with progress reported from inside the tasks.

`run_tasks(work, tasks, workers, report)` calls `work(task, report)` for every task and yields
each task with its result as it finishes. In a worker, `report(n)` goes through a queue to the
parent, which passes it on to its own `report` (e.g. a progress bar's advance) while it waits, so
a bar moves inside a long task too. Tasks are submitted in the order given, a few more than there
are workers at a time, so the first ones start first (e.g. the largest classes) and waiting stays
cheap for hundreds of thousands of tasks.

Workers are spawned, not forked: the parent may hold torch/OpenMP threads, which fork does not
survive; a worker that cannot start raises BrokenProcessPool instead of hanging the pool. `work`
must be a module-level function, and its module cheap to import in a fresh process. OpenCV runs
one thread per task, in a worker (the pool already uses every core) and in this process alike, so
results do not depend on `workers`.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

import cv2

T = TypeVar("T")
R = TypeVar("R")
Report = Callable[[int], None]

_progress: Any = None  # a worker's queue to the parent


def _init_worker(progress: Any) -> None:
    global _progress
    _progress = progress
    cv2.setNumThreads(1)


def _call(work: Callable[[T, Report], R], task: T) -> R:
    return work(task, _progress.put)


def run_tasks(
    work: Callable[[T, Report], R],
    tasks: Sequence[T],
    workers: int,
    report: Report = lambda n: None,
) -> Iterator[tuple[T, R]]:
    """(task, `work(task, report)`) for every task, as each finishes, over `workers` processes
    (in this process when `workers` <= 1 or there is at most one task). An error in a task is
    raised here, and the tasks not started yet are cancelled."""
    if workers <= 1 or len(tasks) <= 1:
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for task in tasks:
                yield task, work(task, report)
        finally:
            cv2.setNumThreads(threads)
        return
    context = multiprocessing.get_context("spawn")
    progress = context.Queue()

    def drain() -> None:
        try:
            while True:
                report(progress.get_nowait())
        except queue.Empty:
            pass

    n = min(workers, len(tasks))
    todo = iter(tasks)
    running: dict[Future[R], T] = {}
    with ProcessPoolExecutor(
        n, mp_context=context, initializer=_init_worker, initargs=(progress,)
    ) as pool:

        def submit() -> None:
            for task in todo:
                running[pool.submit(_call, work, task)] = task
                if len(running) >= 2 * n:
                    return

        try:
            submit()
            while running:
                finished, _ = wait(running, timeout=0.25, return_when=FIRST_COMPLETED)
                drain()
                for future in finished:
                    task = running.pop(future)
                    yield task, future.result()
                submit()
        finally:
            for future in running:
                future.cancel()
    drain()
