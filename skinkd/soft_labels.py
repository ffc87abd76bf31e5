"""The teacher's soft labels file: its logits for every image of every split, written once by
the teacher stage and read by every student run and by the teacher's evaluation.

Keys: ``image_ids``, ``split``, ``labels``, ``logits`` (n, C), ``malignant`` (C,) which of
the C classes are malignant, and, when the teacher saw augmented views of the training
images, ``view_image_ids`` (n_train,), ``view_transforms`` (K, n_train, 2, 3) and
``view_logits`` (K, n_train, C): what consistent distillation trains on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from skinkd.atomic import atomic_path
from skinkd.classes import binary_logits
from skinkd.errors import ConfigError, DataError
from skinkd.inference import malignant_probability


class SoftLabels(NamedTuple):
    logits: np.ndarray  # (n, C)
    malignant: tuple[bool, ...]  # (C,)


def write_soft_labels(
    out: str | os.PathLike,
    *,
    image_ids: np.ndarray,
    split: np.ndarray,
    labels: np.ndarray,
    logits: np.ndarray,
    malignant: Sequence[bool],
    views: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> None:
    """Write the file atomically; ``views`` = (image ids, transforms, logits) of the views."""
    arrays = dict(
        image_ids=image_ids,
        split=split,
        labels=labels,
        logits=logits,
        malignant=np.asarray(malignant, dtype=bool),
    )
    if views is not None:
        arrays.update(view_image_ids=views[0], view_transforms=views[1], view_logits=views[2])
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def _positions(
    path: str | os.PathLike, ids_in_file: np.ndarray, wanted: Sequence[str], what: str
) -> np.ndarray:
    position = pd.Series(np.arange(len(ids_in_file)), index=ids_in_file)
    missing = [i for i in wanted if i not in position.index]
    if missing:
        raise DataError(
            f"{path}: no teacher logits for {len(missing)} {what} image(s), e.g. {missing[:3]}"
        )
    return position.loc[list(wanted)].to_numpy()


def read_soft_labels(
    path: str | os.PathLike, split: str, image_ids: Sequence[str]
) -> SoftLabels:
    """Teacher logits for ``image_ids`` of one split, in that order, and the classes'
    malignancy."""
    with np.load(path, allow_pickle=False) as data:
        rows = np.flatnonzero(data["split"] == split)
        take = _positions(path, data["image_ids"][rows], image_ids, split)
        logits = data["logits"][rows[take]]
        malignant = tuple(bool(m) for m in data["malignant"])
    return SoftLabels(logits, malignant)


def read_teacher_views(
    path: str | os.PathLike, image_ids: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(transforms (K, n, 2, 3), logits (K, n, C)) of the teacher's views of ``image_ids``
    (training images), in that order."""
    with np.load(path, allow_pickle=False) as data:
        if "view_logits" not in data:
            raise ConfigError(
                f"student.distillation: consistent needs the teacher's logits on augmented "
                f"views of the training images, and {path} has none: set "
                "teacher.augmented_views to 1 or more"
            )
        take = _positions(path, data["view_image_ids"], image_ids, "training-view")
        return data["view_transforms"][:, take], data["view_logits"][:, take]


def teacher_probabilities(path: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, the teacher's P(malignant)) of every image of one split."""
    with np.load(path, allow_pickle=False) as data:
        rows = data["split"] == split
        labels, logits = data["labels"][rows], data["logits"][rows]
        malignant = data["malignant"]
    if not len(labels):
        raise DataError(f"{path}: no {split} images")
    return labels, malignant_probability(binary_logits(logits, malignant))
