"""The process pools keep order, and the chunked one gives every chunk whole."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from skinkd.parallel import map_chunks_in_processes, map_in_processes


def square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


@pytest.mark.parametrize("processes", [1, 2])
def test_map_in_processes_keeps_order(processes):
    items = list(range(300))
    assert [r[0] for r in map_in_processes(square_and_pid, items, processes)] == [x * x for x in items]


@pytest.mark.parametrize("processes", [1, 2])
def test_chunks_come_back_whole_and_in_order(processes):
    chunks = [list(range(k * 10, k * 10 + n)) for k, n in enumerate([7, 10, 1, 0, 5])]
    results = list(map_chunks_in_processes(square_and_pid, chunks, processes, chunksize=3))
    assert [[r[0] for r in chunk] for chunk in results] == [[x * x for x in c] for c in chunks]
    pids = {pid for chunk in results for _, pid in chunk}
    assert (os.getpid() in pids) == (processes == 1)


def blurred_mean(seed: int) -> float:
    image = np.random.default_rng(seed).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    return float(cv2.GaussianBlur(image, (0, 0), 3).mean())


def test_forked_workers_use_opencv_after_the_caller_did_and_its_threads_come_back():
    # The caller's OpenCV pool is busy first, as in a test session or a rule that warped
    # images; the forked workers then run OpenCV themselves.
    cv2.setNumThreads(2)
    image = np.zeros((512, 512, 3), np.uint8)
    for _ in range(20):
        cv2.warpAffine(image, np.eye(2, 3), (512, 512))
    seeds = list(range(200))
    assert map_in_processes(blurred_mean, seeds, 2) == [blurred_mean(s) for s in seeds]
    assert cv2.getNumThreads() == 2
