"""A process pool for per-image work (decoding is CPU-bound and holds the GIL)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    """``[fn(x) for x in items]`` over ``processes`` worker processes, order kept."""
    if processes <= 1 or len(items) < 2 * chunksize:
        return [fn(x) for x in items]
    with ProcessPoolExecutor(max_workers=processes, initializer=_single_threaded_opencv) as pool:
        return list(pool.map(fn, items, chunksize=chunksize))
