"""Shared test fixtures: paths to the project and to the real data beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT.parent / "shared" / "data"


@pytest.fixture
def project() -> Path:
    return PROJECT


# The longest test files, started first so that, on the two workers of `make test`, the
# Slurm test's waits on the queue overlap the rest of the suite.
LONGEST_FIRST = ("test_slurm.py", "test_workflow.py", "test_faults.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


def require_shared(name: str) -> Path:
    """The real dataset folder ``../shared/data/<name>``, or skip the test saying why."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} not found: real-data test skipped (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny preset run once, end to end (shared: the fault and Slurm tests compare with it)."""
    from test_workflow import TEST_PRESET, snakemake

    workdir = tmp_path_factory.mktemp("tiny")
    snakemake(workdir, "--cores", "2", "--configfile", TEST_PRESET)
    return workdir
