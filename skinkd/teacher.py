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
from skinkd.augment import Augmentation, view_transforms
from skinkd.cache import load_splits
from skinkd.checkpoint import Checkpoint
from skinkd.classes import class_labels, malignant_mask
from skinkd.errors import ConfigError, DataError
from skinkd.presets import TEACHER_PRESETS
from skinkd.soft_labels import write_soft_labels

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")


def resolve_teacher(teacher: Mapping[str, Any], mapping: str, image_size: int) -> dict[str, Any]:
    """The validated ``teacher`` config section with the backbone list resolved from the
    preset, ``weights`` expanded to one value per backbone (None for "none"), ``image_size``
    set (the student's unless given) and ``malignant``: which output classes are malignant
    under the dataset's ``mapping``."""
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
    resolved["image_size"] = teacher.get("image_size") or image_size
    resolved["malignant"] = list(malignant_mask(teacher["classes"], mapping))
    return resolved


def frozen_backbones(teacher: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The frozen backbones by name, built after seeding with ``seed``: backbones without
    pretrained weights come out the same for the cache and for later images."""
    import keras

    from skinkd.backbones.registry import build_backbone

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
    from skinkd.models import extract_features

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


def train_teacher_head(
    features_path: str | os.PathLike,
    splits: pd.DataFrame,
    teacher: Mapping[str, Any],
    seed: int,
    out_model: Path,
    out_history: Path,
    checkpoint: Checkpoint | None = None,
) -> None:
    """Train the fusion head on cached features (training images plus augmented views);
    resumable with a ``checkpoint``."""
    import keras

    from skinkd.backbones.registry import BACKBONES
    from skinkd.models import build_teacher_head
    from skinkd.train import FeatureBatches, fit_classifier, make_optimizer

    keras.utils.set_random_seed(seed)
    names, classes, malignant = teacher["backbones"], teacher["classes"], teacher["malignant"]
    train_x, _, train_ids = load_features(features_path, "train", names, with_views=True)
    val_x, _, val_ids = load_features(features_path, "val", names)
    head = build_teacher_head(
        {name: train_x[name].shape[1:] for name in names},
        {name: BACKBONES[name].kind for name in names},
        se_reduction=teacher["se_reduction"],
        num_classes=len(malignant),
    )
    log.info("teacher head: %d trainable parameters, %s classes", _trainable(head), classes)
    batch = teacher["batch_size"]
    fit_classifier(
        head,
        FeatureBatches(
            train_x, class_labels(splits, train_ids, classes), batch, shuffle=True, seed=seed
        ),
        FeatureBatches(val_x, class_labels(splits, val_ids, classes), batch),
        make_optimizer(teacher["optimizer"], teacher["learning_rate"]),
        teacher["epochs"],
        out_model,
        out_history,
        malignant=malignant,
        binary_output=False,
        checkpoint=checkpoint,
    )


def _image_teacher(teacher: Mapping[str, Any], seed: int):
    """The image-to-logits teacher with trainable backbones, seeded."""
    import keras

    from skinkd.models import build_teacher

    keras.utils.set_random_seed(seed)
    return build_teacher(
        teacher["backbones"],
        teacher["image_size"],
        teacher["weights"],
        trainable_backbones=True,
        se_reduction=teacher["se_reduction"],
        num_classes=len(teacher["malignant"]),
    )


def _fit_on_images(
    model,
    shard_paths: Sequence[str | os.PathLike],
    splits: pd.DataFrame,
    teacher: Mapping[str, Any],
    augment: Mapping[str, Any],
    seed: int,
    learning_rate: float,
    epochs: int,
    out_model: Path,
    out_history: Path,
    checkpoint: Checkpoint | None,
) -> None:
    """Train an image teacher on the training images, augmented on the fly; best on val."""
    from skinkd.train import ImageBatches, fit_classifier, make_optimizer

    classes, batch = teacher["classes"], teacher["batch_size"]
    data = load_splits(shard_paths, splits, ("train", "val"))
    (train_images, _, train_ids), (val_images, _, val_ids) = data["train"], data["val"]
    fit_classifier(
        model,
        ImageBatches(
            train_images,
            class_labels(splits, train_ids, classes),
            batch,
            augmentation=Augmentation.from_config(augment),
            shuffle=True,
            seed=seed,
        ),
        ImageBatches(val_images, class_labels(splits, val_ids, classes), batch),
        make_optimizer(teacher["optimizer"], learning_rate),
        epochs,
        out_model,
        out_history,
        malignant=teacher["malignant"],
        binary_output=False,
        checkpoint=checkpoint,
    )


def train_teacher_end_to_end(
    shard_paths: Sequence[str | os.PathLike],
    splits: pd.DataFrame,
    teacher: Mapping[str, Any],
    augment: Mapping[str, Any],
    seed: int,
    out_model: Path,
    out_history: Path,
    checkpoint: Checkpoint | None = None,
) -> None:
    """Train backbones and head together on images, augmented on the fly; resumable with a
    ``checkpoint``."""
    model = _image_teacher(teacher, seed)
    log.info("end-to-end teacher: %d trainable parameters", _trainable(model))
    _fit_on_images(
        model, shard_paths, splits, teacher, augment, seed,
        teacher["learning_rate"], teacher["epochs"], out_model, out_history, checkpoint,
    )  # fmt: skip


def fine_tune_teacher(
    shard_paths: Sequence[str | os.PathLike],
    splits: pd.DataFrame,
    teacher: Mapping[str, Any],
    augment: Mapping[str, Any],
    seed: int,
    head_path: str | os.PathLike,
    out_model: Path,
    out_history: Path,
    checkpoint: Checkpoint | None = None,
) -> None:
    """The trained head on top of MobileNetV2, its last ``fine_tune_blocks`` blocks trained
    end to end on images at ``fine_tune_learning_rate`` (the rest stays frozen)."""
    from skinkd.backbones.mobilenetv2 import unfreeze_last_blocks
    from skinkd.models import load_model

    if teacher["backbones"] != ["mobilenetv2"]:
        raise ConfigError(
            "teacher.fine_tune_blocks: only the mobilenetv2 backbone (preset pretrained) is "
            f"fine-tuned block by block, not {teacher['backbones']}"
        )
    model = _image_teacher(teacher, seed)
    model.get_layer("teacher_head").set_weights(load_model(head_path).get_weights())
    unfrozen = unfreeze_last_blocks(model.get_layer("mobilenetv2"), teacher["fine_tune_blocks"])
    log.info(
        "fine-tuning %d layers of MobileNetV2 (%s .. %s), %d trainable parameters",
        len(unfrozen), unfrozen[0], unfrozen[-1], _trainable(model),
    )  # fmt: skip
    _fit_on_images(
        model, shard_paths, splits, teacher, augment, seed,
        teacher["fine_tune_learning_rate"], teacher["fine_tune_epochs"], out_model, out_history,
        checkpoint,
    )  # fmt: skip


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def head_logits(
    model: Any, features: Mapping[str, np.ndarray], backbones: Sequence[str], batch_size: int
) -> np.ndarray:
    """Logits of a teacher head for cached (float16) features of its backbones."""
    inputs = {name: features[name].astype(np.float32) for name in backbones}
    return np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0), np.float32)


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
    training image (``teacher.augmented_views``), in one file (``skinkd.soft_labels``).

    From the feature cache when the backbones are frozen (the saved model is the head; the
    views are the cache's), from the images otherwise (the views drawn from the same
    stream, ``view_transforms``). The student reads the train and val rows and the views;
    the teacher's evaluation reads the test rows.
    """
    from skinkd.inference import keras_logits
    from skinkd.models import load_model

    model = load_model(model_path)
    batch = teacher["batch_size"]
    names = teacher["backbones"]

    images_by_split = None if features_path else load_splits(shard_paths, splits, SPLIT_NAMES)
    parts = []
    for split in SPLIT_NAMES:
        if images_by_split is None:
            features, labels, ids = load_features(features_path, split, names)
            logits = head_logits(model, features, names, batch)
        else:
            images, labels, ids = images_by_split[split]
            logits = keras_logits(model, images, batch)
        parts.append((ids, np.full(len(ids), split), labels, logits))
        log.info("%s: %d teacher logits", split, len(ids))

    train_ids = parts[0][0]
    transforms, view_logits = [], []
    augmentation = Augmentation.from_config(augment)
    for view in range(1, teacher["augmented_views"] + 1):
        if images_by_split is None:
            with np.load(features_path, allow_pickle=False) as data:
                features = {name: data[f"train_view{view}/{name}"] for name in names}
                transforms.append(data[f"train_view{view}/transforms"])
            view_logits.append(head_logits(model, features, names, batch))
        else:
            transforms.append(view_transforms(augmentation, len(train_ids), seed, view))
            images = images_by_split["train"][0]
            view_logits.append(keras_logits(model, images, batch, transforms=transforms[-1]))
        log.info("train view %d: %d teacher logits", view, len(train_ids))
    write_soft_labels(
        out,
        image_ids=np.concatenate([p[0] for p in parts]),
        split=np.concatenate([p[1] for p in parts]),
        labels=np.concatenate([p[2] for p in parts]),
        logits=np.concatenate([p[3] for p in parts]),
        malignant=teacher["malignant"],
        views=(train_ids, np.stack(transforms), np.stack(view_logits)) if transforms else None,
    )


def teacher_logits(
    model_path: str | os.PathLike,
    teacher: Mapping[str, Any],
    images: np.ndarray,
    *,
    frozen: bool,
    seed: int,
) -> np.ndarray:
    """The teacher's logits for uint8 images preprocessed as its own cache. ``frozen``: the
    saved model is the head, fed by the backbones as the feature cache built them (same
    ``seed``); otherwise the saved model takes images."""
    from skinkd.inference import keras_logits
    from skinkd.models import extract_features, load_model

    model = load_model(model_path)
    batch = teacher["batch_size"]
    if not frozen:
        return keras_logits(model, images, batch)
    features = extract_features(frozen_backbones(teacher, seed), images, batch)
    return head_logits(model, features, teacher["backbones"], batch)
