"""The teacher's soft labels file: its logits for every image of every split, written once by
the teacher stage and read by every student run and by the teacher's evaluation."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from skinkd.atomic import atomic_path
from skinkd.errors import DataError


def write_soft_labels(
    out: str | os.PathLike,
    *,
    image_ids: np.ndarray,
    split: np.ndarray,
    labels: np.ndarray,
    logits: np.ndarray,
) -> None:
    """Keys ``image_ids``, ``split``, ``labels``, ``logits`` (n, classes), atomically."""
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, image_ids=image_ids, split=split, labels=labels, logits=logits)


def read_soft_labels(
    path: str | os.PathLike, split: str, image_ids: Sequence[str]
) -> np.ndarray:
    """Teacher logits for ``image_ids`` of one split, in that order."""
    data = np.load(path)
    rows = data["split"] == split
    position = pd.Series(np.flatnonzero(rows), index=data["image_ids"][rows])
    missing = [i for i in image_ids if i not in position.index]
    if missing:
        raise DataError(
            f"{path}: no teacher logits for {len(missing)} {split} image(s), e.g. {missing[:3]}"
        )
    return data["logits"][position.loc[list(image_ids)].to_numpy()]
