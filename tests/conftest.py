"""Shared test fixtures: paths to the project and to the real data beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT.parent / "shared" / "data"


@pytest.fixture
def project() -> Path:
    return PROJECT


def require_shared(name: str) -> Path:
    """The real dataset folder ``../shared/data/<name>``, or skip the test saying why."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} not found: real-data test skipped (see ../shared/data/README.md)")
    return path
