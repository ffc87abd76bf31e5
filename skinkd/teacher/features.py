"""The frozen backbones' feature cache: every image's features (and those of the augmented
views of the training images) computed once, so that the head trains on the cache.

Keras is imported inside the functions: a dry run should not pay for loading a
deep-learning framework.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from skinkd.atomic import atomic_path
from skinkd.data.augment import Augmentation, view_transforms
from skinkd.data.cache import load_splits
from skinkd.errors import DataError

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")


def frozen_backbones(teacher: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The frozen backbones by name, built after seeding with ``seed``: backbones without
    pretrained weights come out the same for the cache and for later images."""
    import keras

    from skinkd.teacher.backbones.registry import build_backbone

    keras.utils.set_random_seed(seed)
    return {
        name: build_backbone(name, teacher["image_size"], teacher["weights"][name])
        for name in teacher["backbones"]
    }


def cache_features(
    shard_paths: Sequence[str | os.PathLike],
    splits: pd.DataFrame,
    teacher: Mapping[str, Any],
    augment: Mapping[str, Any],
    seed: int,
    out: str | os.PathLike,
) -> None:
    """Run the frozen backbones once over every image and save their features.

    Keys: ``<split>/ids``, ``<split>/labels``, ``<split>/<backbone>`` for train, val and
    test; for each augmented view k of the training images ``train_view<k>/<backbone>`` and
    ``train_view<k>/transforms`` (the view, so that soft labels can name it).
    """
    from skinkd.teacher.models import extract_features

    backbones = frozen_backbones(teacher, seed)
    augmentation = Augmentation.from_config(augment)
    batch = teacher["batch_size"]
    arrays: dict[str, np.ndarray] = {}
    for split, (images, labels, ids) in load_splits(shard_paths, splits, SPLIT_NAMES).items():
        arrays[f"{split}/ids"] = ids
        arrays[f"{split}/labels"] = labels
        for name, features in extract_features(backbones, images, batch).items():
            arrays[f"{split}/{name}"] = features
        log.info("%s: %d images", split, len(ids))
        if split == "train":
            for view in range(1, teacher["augmented_views"] + 1):
                transforms = view_transforms(augmentation, len(ids), seed, view)
                views = extract_features(backbones, images, batch, transforms=transforms)
                for name, features in views.items():
                    arrays[f"train_view{view}/{name}"] = features
                arrays[f"train_view{view}/transforms"] = transforms
                log.info("train view %d cached", view)
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def _view_count(data: Mapping[str, np.ndarray], backbone: str) -> int:
    count = 0
    while f"train_view{count + 1}/{backbone}" in data:
        count += 1
    return count


def load_features(
    path: str | os.PathLike, split: str, backbones: Sequence[str], with_views: bool = False
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(features by backbone, labels, ids) of one split; ``with_views`` appends the cached
    augmented views of the training images (labels repeated, ids too)."""
    with np.load(path, allow_pickle=False) as data:
        if f"{split}/ids" not in data:
            raise DataError(f"{path}: no {split} split in the feature cache")
        ids, labels = data[f"{split}/ids"], data[f"{split}/labels"]
        views = _view_count(data, backbones[0]) if with_views and split == "train" else 0
        keys = [split] + [f"train_view{view}" for view in range(1, views + 1)]
        merged = {name: np.concatenate([data[f"{key}/{name}"] for key in keys]) for name in backbones}
    return merged, np.tile(labels, len(keys)), np.tile(ids, len(keys))


def head_logits(
    model: Any, features: Mapping[str, np.ndarray], backbones: Sequence[str], batch_size: int
) -> np.ndarray:
    """Logits of a teacher head for cached (float16) features of its backbones."""
    inputs = {name: features[name].astype(np.float32) for name in backbones}
    return np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0), np.float32)
