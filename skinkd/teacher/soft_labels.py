"""The teacher's soft labels file: its logits for every image of every split, written once by
the teacher stage and read by every student run and by the teacher's evaluation.

Keys: ``image_ids``, ``split``, ``labels``, ``logits`` (n, C), ``malignant`` (C,) which of
the C classes are malignant, and, when the teacher saw augmented views of the training
images, ``view_image_ids`` (n_train,), ``view_transforms`` (K, n_train, 2, 3) and
``view_logits`` (K, n_train, C): what consistent distillation trains on. With test-time
augmentation (``teacher.tta``), ``logits`` are the mean over the eight flips and right-angle
rotations of each image and ``dihedral_logits`` (8, n, C) hold each of them, the identity
first (its row 0 is what the teacher says without TTA).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from skinkd.atomic import atomic_path
from skinkd.data.augment import Augmentation, dihedral_transforms, view_transforms
from skinkd.data.cache import load_splits
from skinkd.data.classes import binary_logits, malignant_probability
from skinkd.errors import ConfigError, DataError
from skinkd.teacher.features import SPLIT_NAMES, frozen_backbones, head_logits, load_features

log = logging.getLogger(__name__)

# Logits of a teacher for a set of images, seen through one view per image (None: as they are).
LogitsOf = Callable[[np.ndarray | None], np.ndarray]


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
    dihedral_logits: np.ndarray | None = None,
) -> None:
    """Write the file atomically; ``views`` = (image ids, transforms, logits) of the views,
    ``dihedral_logits`` the per-view logits that test-time augmentation averaged."""
    arrays = dict(
        image_ids=image_ids,
        split=split,
        labels=labels,
        logits=logits,
        malignant=np.asarray(malignant, dtype=bool),
    )
    if views is not None:
        arrays.update(view_image_ids=views[0], view_transforms=views[1], view_logits=views[2])
    if dihedral_logits is not None:
        arrays["dihedral_logits"] = dihedral_logits
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
                "teacher.distillation_views (or teacher.augmented_views) to 1 or more"
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


def dihedral_logits(logits_of: LogitsOf, n: int) -> np.ndarray:
    """The teacher's logits (8, n, C) of the eight flips and right-angle rotations of each of
    ``n`` images, the identity first."""
    views = []
    for transforms in dihedral_transforms(n):
        views.append(logits_of(transforms))
        log.info("dihedral view %d of 8: %d images", len(views), n)
    return np.stack(views)


def _image_logits(model: Any, images: np.ndarray, batch: int, backbones: Mapping | None,
                  names: Sequence[str]) -> LogitsOf:  # fmt: skip
    """``LogitsOf`` for uint8 images: through the frozen ``backbones`` and the head
    ``model``, or through ``model`` alone (an image model) when ``backbones`` is None."""
    from skinkd.nn.models import keras_logits
    from skinkd.teacher.models import extract_features

    def logits_of(transforms: np.ndarray | None) -> np.ndarray:
        if backbones is None:
            return keras_logits(model, images, batch, transforms=transforms)
        features = extract_features(backbones, images, batch, transforms=transforms)
        return head_logits(model, features, names, batch)

    return logits_of


def soft_labels(
    model_path: str | os.PathLike,
    teacher: Mapping[str, Any],
    out: str | os.PathLike,
    *,
    augment: Mapping[str, Any],
    seed: int,
    features_path: str | os.PathLike | None = None,
    shard_paths: Sequence[str | os.PathLike] = (),
    splits: pd.DataFrame | None = None,
) -> None:
    """Teacher logits for every image of every split, and for the K augmented views of each
    training image (``teacher.distillation_views``, or ``augmented_views``), in one file
    (``skinkd.teacher.soft_labels``).

    With ``features_path`` the saved model is the head of frozen backbones: the plain images'
    logits and the first views come from the feature cache, anything else (views beyond the
    cache's, ``teacher.tta``) from the images (``shard_paths``) through the backbones rebuilt
    with ``seed``. Otherwise the saved model takes images. Views are drawn from the one
    seeded stream (``view_transforms``) the cache used. The student reads the train and val
    rows and the views; the teacher's evaluation reads the test rows.
    """
    from skinkd.teacher.models import load_teacher

    model = load_teacher(model_path)
    batch, names = teacher["batch_size"], teacher["backbones"]
    k_views = teacher["distillation_views"]
    k_views = teacher["augmented_views"] if k_views is None else k_views
    cached_views = min(k_views, teacher["augmented_views"]) if features_path else 0
    need_images = not features_path or teacher["tta"] or k_views > cached_views
    if need_images and not shard_paths:
        raise ConfigError(
            f"teacher.tta, teacher.distillation_views: {model_path} labels views its feature "
            f"cache does not hold (tta {teacher['tta']}, {k_views} views, {cached_views} "
            "cached), so it needs the preprocessed images"
        )
    images_by_split = load_splits(shard_paths, splits, SPLIT_NAMES) if need_images else None
    backbones = frozen_backbones(teacher, seed) if features_path and need_images else None

    def images_logits(split: str) -> LogitsOf:
        return _image_logits(model, images_by_split[split][0], batch, backbones, names)

    parts, dihedral = [], []
    for split in SPLIT_NAMES:
        if features_path:
            features, labels, ids = load_features(features_path, split, names)
        else:
            _, labels, ids = images_by_split[split]
        if teacher["tta"]:
            dihedral.append(dihedral_logits(images_logits(split), len(ids)))
            logits = dihedral[-1].mean(axis=0)
        elif features_path:
            logits = head_logits(model, features, names, batch)
        else:
            logits = images_logits(split)(None)
        parts.append((ids, np.full(len(ids), split), labels, logits))
        log.info("%s: %d teacher logits", split, len(ids))

    train_ids = parts[0][0]
    transforms, view_logits = [], []
    augmentation = Augmentation.from_config(augment)
    for view in range(1, k_views + 1):
        if view <= cached_views:
            with np.load(features_path, allow_pickle=False) as data:
                features = {name: data[f"train_view{view}/{name}"] for name in names}
                transforms.append(data[f"train_view{view}/transforms"])
            view_logits.append(head_logits(model, features, names, batch))
        else:
            transforms.append(view_transforms(augmentation, len(train_ids), seed, view))
            view_logits.append(images_logits("train")(transforms[-1]))
        log.info("train view %d: %d teacher logits", view, len(train_ids))
    write_soft_labels(
        out,
        image_ids=np.concatenate([p[0] for p in parts]),
        split=np.concatenate([p[1] for p in parts]),
        labels=np.concatenate([p[2] for p in parts]),
        logits=np.concatenate([p[3] for p in parts]),
        malignant=teacher["malignant"],
        views=(train_ids, np.stack(transforms), np.stack(view_logits)) if transforms else None,
        dihedral_logits=np.concatenate(dihedral, axis=1) if dihedral else None,
    )


def teacher_logits(
    model_path: str | os.PathLike,
    teacher: Mapping[str, Any],
    images: np.ndarray,
    *,
    frozen: bool,
    seed: int,
) -> np.ndarray:
    """The teacher's logits for uint8 images preprocessed as its own cache, averaged over
    the eight dihedral views with ``teacher.tta``. ``frozen``: the saved model is the head,
    fed by the backbones as the feature cache built them (same ``seed``); otherwise the
    saved model takes images."""
    return teacher_labeller(model_path, teacher, frozen=frozen, seed=seed)(images)


def teacher_labeller(
    model_path: str | os.PathLike, teacher: Mapping[str, Any], *, frozen: bool, seed: int
) -> Callable[[np.ndarray], np.ndarray]:
    """``teacher_logits`` with the teacher loaded (and frozen backbones built) once, for
    callers that label many batches."""
    from skinkd.teacher.models import load_teacher

    model = load_teacher(model_path)
    backbones = frozen_backbones(teacher, seed) if frozen else None

    def label(images: np.ndarray) -> np.ndarray:
        logits_of = _image_logits(model, images, teacher["batch_size"], backbones,
                                  teacher["backbones"])  # fmt: skip
        if teacher["tta"]:
            return dihedral_logits(logits_of, len(images)).mean(axis=0)
        return logits_of(None)

    return label
