"""The teacher stage: frozen-backbone feature cache, head (or end-to-end) training, and
the soft labels every student run reuses.

Keras is imported inside the functions: the Snakefile imports ``resolve_teacher`` while it
parses, and a dry run should not pay for loading a deep-learning framework.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skinkd.atomic import atomic_path
from skinkd.cache import load_splits
from skinkd.errors import ConfigError, DataError
from skinkd.presets import TEACHER_PRESETS
from skinkd.soft_labels import write_soft_labels

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")


def resolve_teacher(teacher: Mapping[str, Any]) -> dict[str, Any]:
    """The validated ``teacher`` config section with the backbone list resolved from the
    preset and ``weights`` expanded to one value per backbone (None for "none")."""
    backbones = list(teacher.get("backbones") or TEACHER_PRESETS[teacher["preset"]])
    weights = teacher["weights"]
    if isinstance(weights, str):
        per_backbone = {name: weights for name in backbones}
    else:
        unknown = sorted(set(weights) - set(backbones))
        if unknown:
            raise ConfigError(
                f"teacher.weights: {unknown} are not among the backbones {backbones}"
            )
        per_backbone = {name: weights.get(name, "imagenet") for name in backbones}
    resolved = {k: v for k, v in teacher.items() if k not in ("preset", "backbones", "weights")}
    resolved["backbones"] = backbones
    resolved["weights"] = {k: (None if v == "none" else v) for k, v in per_backbone.items()}
    return resolved


def cache_features(
    shard_paths: Sequence[str | os.PathLike],
    splits: pd.DataFrame,
    teacher: Mapping[str, Any],
    image_size: int,
    augment: Mapping[str, Any],
    seed: int,
    out: str | os.PathLike,
) -> None:
    """Run the frozen backbones once over every image and save their features.

    Keys: ``<split>/ids``, ``<split>/labels``, ``<split>/<backbone>`` for train, val and
    test, and ``train_view<k>/<backbone>`` for each augmented view of the training images.
    """
    import keras

    from skinkd.backbones.registry import build_backbone
    from skinkd.models import extract_features
    from skinkd.train import augmenter_from_config

    keras.utils.set_random_seed(seed)
    backbones = {
        name: build_backbone(name, image_size, teacher["weights"][name])
        for name in teacher["backbones"]
    }
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
                augmenter = augmenter_from_config(augment, seed + view)
                views = extract_features(backbones, images, batch, augmenter=augmenter)
                for name, features in views.items():
                    arrays[f"train_view{view}/{name}"] = features
                log.info("train view %d cached", view)
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def load_features(
    path: str | os.PathLike, split: str, backbones: Sequence[str], with_views: bool = False
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(features by backbone, labels, ids) of one split; ``with_views`` appends the cached
    augmented views of the training images (labels repeated, ids too)."""
    data = np.load(path)
    if f"{split}/ids" not in data:
        raise DataError(f"{path}: no {split} split in the feature cache")
    ids, labels = data[f"{split}/ids"], data[f"{split}/labels"]
    features = {name: [data[f"{split}/{name}"]] for name in backbones}
    copies = 1
    if with_views:
        view = 1
        while f"{split}_view{view}/{backbones[0]}" in data:
            for name in backbones:
                features[name].append(data[f"{split}_view{view}/{name}"])
            view += 1
        copies = view
    merged = {name: np.concatenate(parts) for name, parts in features.items()}
    return merged, np.tile(labels, copies), np.tile(ids, copies)


def train_teacher_head(
    features_path: str | os.PathLike,
    teacher: Mapping[str, Any],
    seed: int,
    out_model: Path,
    out_history: Path,
) -> None:
    """Train the fusion head on cached features (training images plus augmented views)."""
    import keras

    from skinkd.backbones.registry import BACKBONES
    from skinkd.models import build_teacher_head
    from skinkd.train import FeatureBatches, fit_classifier, make_optimizer

    keras.utils.set_random_seed(seed)
    names = teacher["backbones"]
    train_x, train_y, _ = load_features(features_path, "train", names, with_views=True)
    val_x, val_y, _ = load_features(features_path, "val", names)
    head = build_teacher_head(
        {name: train_x[name].shape[1:] for name in names},
        {name: BACKBONES[name].kind for name in names},
        se_reduction=teacher["se_reduction"],
    )
    log.info("teacher head: %d trainable parameters", _trainable(head))
    batch = teacher["batch_size"]
    fit_classifier(
        head,
        FeatureBatches(train_x, train_y, batch, shuffle=True, seed=seed),
        FeatureBatches(val_x, val_y, batch),
        make_optimizer(teacher["optimizer"], teacher["learning_rate"]),
        teacher["epochs"],
        out_model,
        out_history,
    )


def train_teacher_end_to_end(
    shard_paths: Sequence[str | os.PathLike],
    splits: pd.DataFrame,
    teacher: Mapping[str, Any],
    image_size: int,
    augment: Mapping[str, Any],
    seed: int,
    out_model: Path,
    out_history: Path,
) -> None:
    """Train backbones and head together on images, augmented on the fly."""
    import keras

    from skinkd.models import build_teacher
    from skinkd.train import ImageBatches, augmenter_from_config, fit_classifier, make_optimizer

    keras.utils.set_random_seed(seed)
    model = build_teacher(
        teacher["backbones"], image_size, teacher["weights"], trainable_backbones=True
    )
    log.info("end-to-end teacher: %d trainable parameters", _trainable(model))
    data = load_splits(shard_paths, splits, ("train", "val"))
    (train_images, train_labels, _), (val_images, val_labels, _) = data["train"], data["val"]
    batch = teacher["batch_size"]
    fit_classifier(
        model,
        ImageBatches(
            train_images,
            train_labels,
            batch,
            augmenter=augmenter_from_config(augment, seed),
            shuffle=True,
            seed=seed,
        ),
        ImageBatches(val_images, val_labels, batch),
        make_optimizer(teacher["optimizer"], teacher["learning_rate"]),
        teacher["epochs"],
        out_model,
        out_history,
    )


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def soft_labels(
    model_path: str | os.PathLike,
    teacher: Mapping[str, Any],
    out: str | os.PathLike,
    *,
    features_path: str | os.PathLike | None = None,
    shard_paths: Sequence[str | os.PathLike] = (),
    splits: pd.DataFrame | None = None,
) -> None:
    """Teacher logits for every image of every split, in one file.

    From the feature cache when the backbones are frozen (the saved model is the head), from
    the images otherwise. Keys: ``image_ids``, ``split``, ``labels``, ``logits`` (n, 2).
    The student reads the train and val rows; the teacher's evaluation reads the test rows.
    """
    from skinkd.inference import keras_logits
    from skinkd.models import load_model

    model = load_model(model_path)
    batch = teacher["batch_size"]
    images_by_split = None if features_path else load_splits(shard_paths, splits, SPLIT_NAMES)
    parts = []
    for split in SPLIT_NAMES:
        if images_by_split is None:
            features, labels, ids = load_features(features_path, split, teacher["backbones"])
            inputs = {name: array.astype(np.float32) for name, array in features.items()}
            logits = model.predict(inputs, batch_size=batch, verbose=0)
        else:
            images, labels, ids = images_by_split[split]
            logits = keras_logits(model, images, batch)
        parts.append((ids, np.full(len(ids), split), labels, np.asarray(logits, np.float32)))
        log.info("%s: %d teacher logits", split, len(ids))
    write_soft_labels(
        out,
        image_ids=np.concatenate([p[0] for p in parts]),
        split=np.concatenate([p[1] for p in parts]),
        labels=np.concatenate([p[2] for p in parts]),
        logits=np.concatenate([p[3] for p in parts]),
    )
