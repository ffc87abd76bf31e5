"""The process pools keep order, and the chunked one gives every chunk whole."""

from __future__ import annotations

import os

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
