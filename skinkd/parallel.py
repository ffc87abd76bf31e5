"""A process pool for per-image work (decoding is CPU-bound and holds the GIL)."""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import cv2

T = TypeVar("T")
R = TypeVar("R")


def _single_threaded_opencv() -> None:
    # Each worker is one core; OpenCV's own threads would oversubscribe the machine.
    cv2.setNumThreads(1)


def map_in_processes(
    fn: Callable[[T], R], items: Sequence[T], processes: int, chunksize: int = 64
) -> list[R]:
    """``[fn(x) for x in items]`` over ``processes`` worker processes, order kept.

    Workers are forked: a Snakemake rule script is the main module, and a fork server
    would re-run it in every worker. OpenCV's idle worker threads do not survive a fork,
    and a child that touches the pool they wait in hangs for good (seen in pytest after
    tests that warped images), so the caller drops its OpenCV pool while the workers run.
    """
    if processes <= 1 or len(items) < 2 * chunksize:
        return [fn(x) for x in items]
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with ProcessPoolExecutor(
            max_workers=processes, initializer=_single_threaded_opencv
        ) as pool:
            return list(pool.map(fn, items, chunksize=chunksize))
    finally:
        cv2.setNumThreads(threads)


def map_chunks_in_processes(
    fn: Callable[[T], R], chunks: Iterable[Sequence[T]], processes: int, chunksize: int = 16
) -> Iterator[list[R]]:
    """``[fn(x) for x in chunk]`` for each chunk in order, over ``processes`` workers, with
    the next chunk already being worked on while the caller uses this one (so the caller's
    own work on a chunk overlaps the workers'); at most two chunks are held at once.

    Workers start from a fork server, not by forking the caller: the caller typically holds
    a model runtime's threads (TFLite, TensorFlow), and a forked copy of those deadlocks."""
    if processes <= 1:
        for chunk in chunks:
            yield [fn(x) for x in chunk]
        return
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(
        max_workers=processes, mp_context=context, initializer=_single_threaded_opencv
    ) as pool:
        pending: deque[Iterator[R]] = deque()
        for chunk in chunks:
            pending.append(pool.map(fn, chunk, chunksize=chunksize))
            if len(pending) > 1:
                yield list(pending.popleft())
        while pending:
            yield list(pending.popleft())
