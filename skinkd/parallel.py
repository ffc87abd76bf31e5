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


def _pool(processes: int) -> ProcessPoolExecutor:
    # Workers start from a fork server, not by forking the caller: a forked copy of a process
    # that has run OpenMP or a model runtime's threads (OpenCV, PyTorch, TFLite, TensorFlow)
    # can deadlock in its first parallel call.
    return ProcessPoolExecutor(
        max_workers=processes,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=_single_threaded_opencv,
    )


def map_in_processes(
    fn: Callable[[T], R], items: Sequence[T], processes: int, chunksize: int = 64
) -> list[R]:
    """``[fn(x) for x in items]`` over ``processes`` worker processes, order kept."""
    if processes <= 1 or len(items) < 2 * chunksize:
        return [fn(x) for x in items]
    with _pool(processes) as pool:
        return list(pool.map(fn, items, chunksize=chunksize))


def map_chunks_in_processes(
    fn: Callable[[T], R], chunks: Iterable[Sequence[T]], processes: int, chunksize: int = 16
) -> Iterator[list[R]]:
    """``[fn(x) for x in chunk]`` for each chunk in order, over ``processes`` workers, with
    the next chunk already being worked on while the caller uses this one (so the caller's
    own work on a chunk overlaps the workers'); at most two chunks are held at once."""
    if processes <= 1:
        for chunk in chunks:
            yield [fn(x) for x in chunk]
        return
    with _pool(processes) as pool:
        pending: deque[Iterator[R]] = deque()
        for chunk in chunks:
            pending.append(pool.map(fn, chunk, chunksize=chunksize))
            if len(pending) > 1:
                yield list(pending.popleft())
        while pending:
            yield list(pending.popleft())
