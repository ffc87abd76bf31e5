"""Training the teacher: its fusion head on the feature cache, or the whole teacher end to
end on images, and fine-tuning a pretrained backbone's last blocks after the head.

Keras is imported inside the functions: a dry run should not pay for loading a
deep-learning framework.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skinkd.checkpoint import Checkpoint
from skinkd.data.augment import Augmentation
from skinkd.data.photometric import Photometric
from skinkd.data.cache import load_splits
from skinkd.data.classes import class_labels
from skinkd.errors import ConfigError
from skinkd.teacher.features import load_features

log = logging.getLogger(__name__)


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

    from skinkd.nn.batches import FeatureBatches
    from skinkd.nn.fit import fit_classifier, make_optimizer
    from skinkd.teacher.backbones.registry import BACKBONES
    from skinkd.teacher.models import build_teacher_head

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

    from skinkd.teacher.models import build_teacher

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
    tuning: Mapping[str, Any] | None = None,
) -> None:
    """Train an image teacher on the training images, augmented on the fly; best on val.
    ``tuning``: the fine-tuning's schedule (``schedule``, ``warmup_epochs``), weight decay
    and label smoothing; None trains at a constant rate without either."""
    from skinkd.nn.batches import ImageBatches
    from skinkd.nn.fit import WarmupSchedule, fit_classifier, make_optimizer

    classes, batch = teacher["classes"], teacher["batch_size"]
    data = load_splits(shard_paths, splits, ("train", "val"))
    (train_images, _, train_ids), (val_images, _, val_ids) = data["train"], data["val"]
    train = ImageBatches(
        train_images,
        class_labels(splits, train_ids, classes),
        batch,
        augmentation=Augmentation.from_config(augment),
        photometric=Photometric.from_config(augment),
        shuffle=True,
        seed=seed,
    )
    rate, weight_decay, smoothing = learning_rate, 0.0, 0.0
    if tuning is not None:
        weight_decay, smoothing = tuning["weight_decay"], tuning["label_smoothing"]
        # A plain rate where the schedule would be constant: the default trains as before.
        if tuning["schedule"] != "constant" or tuning["warmup_epochs"] > 0:
            rate = WarmupSchedule(learning_rate, tuning["schedule"],
                                  len(train) * tuning["warmup_epochs"], len(train) * epochs)  # fmt: skip
    fit_classifier(
        model,
        train,
        ImageBatches(val_images, class_labels(splits, val_ids, classes), batch),
        make_optimizer(teacher["optimizer"], rate, weight_decay),
        epochs,
        out_model,
        out_history,
        malignant=teacher["malignant"],
        binary_output=False,
        checkpoint=checkpoint,
        label_smoothing=smoothing,
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
    """The trained head on top of MobileNetV2, its last ``fine_tune_blocks`` blocks (17:
    all of them) trained end to end on images, BatchNorm frozen: ``fine_tune_learning_rate``
    after ``fine_tune_warmup_epochs`` of linear warm-up, held or cosine-decayed
    (``fine_tune_schedule``), with ``fine_tune_weight_decay`` and
    ``fine_tune_label_smoothing``."""
    from skinkd.nn.models import load_model
    from skinkd.teacher.backbones.mobilenetv2 import unfreeze_last_blocks

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
        checkpoint, {key: teacher[f"fine_tune_{key}"] for key in
                     ("schedule", "warmup_epochs", "weight_decay", "label_smoothing")},
    )  # fmt: skip


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
