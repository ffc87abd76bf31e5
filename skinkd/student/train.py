"""Training the student: distillation from the teacher's stored soft labels on the cached
train and val splits, with augmentation or the teacher's cached views, best on validation.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from skinkd.checkpoint import Checkpoint
from skinkd.data.augment import Augmentation
from skinkd.data.photometric import Photometric
from skinkd.data.cache import load_splits
from skinkd.data.classes import binary_logits, class_labels, malignant_mask
from skinkd.data.split import subsample_indices
from skinkd.errors import ConfigError
from skinkd.nn.batches import ImageBatches, TeacherViews
from skinkd.nn.fit import fit_classifier, make_optimizer
from skinkd.student.distill import Distiller
from skinkd.student.network import build_student
from skinkd.teacher.soft_labels import read_soft_labels, read_teacher_views

log = logging.getLogger(__name__)


def train_student(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    train_teacher_logits: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    val_teacher_logits: np.ndarray,
    *,
    out_model: Path,
    out_history: Path,
    optimizer: str = "adafactor",
    learning_rate: float = 0.002,
    batch_size: int = 64,
    epochs: int = 70,
    temperature: float = 1.0,
    alpha: float = 0.5,
    feature_conversion: str = "gmp",
    malignant: Sequence[bool] = (False, True),
    augment: Mapping[str, Any] | None = None,
    views: TeacherViews | None = None,
    seed: int = 0,
    monitor: str = "val_loss",
    checkpoint: Checkpoint | None = None,
    snapshots: Mapping[int, Path] | None = None,
) -> keras.Model:
    """Distil a student from stored teacher logits; keyword names follow the config's
    ``student`` section. ``malignant`` has one entry per output class (labels are class
    indices; the teacher's logits have as many columns). ``augment``: the config's
    ``augment`` section (None: no augmentation); ``views``: the teacher's logits on cached
    augmented views instead (consistent distillation). Seeded: two runs on one machine
    give identical histories. ``checkpoint``: resumable; ``snapshots``: epoch -> path of
    the best-so-far student then (see ``fit_classifier``)."""
    keras.utils.set_random_seed(seed)
    train = ImageBatches(
        train_images,
        train_labels,
        batch_size,
        teacher_logits=train_teacher_logits,
        augmentation=None if augment is None else Augmentation.from_config(augment),
        views=views,
        photometric=None if augment is None else Photometric.from_config(augment),
        shuffle=True,
        seed=seed,
    )
    val = ImageBatches(val_images, val_labels, batch_size, teacher_logits=val_teacher_logits)
    student = build_student(train_images.shape[1], feature_conversion, len(malignant))
    distiller = Distiller(student, temperature, alpha)
    log.info(
        "student %s: %d parameters, %d classes, T=%g, alpha=%g, %s lr=%g, batch %d, "
        "%d epochs, %s",
        feature_conversion,
        student.count_params(),
        len(malignant),
        temperature,
        alpha,
        optimizer,
        learning_rate,
        batch_size,
        epochs,
        "consistent views" if views is not None else "fixed soft labels",
    )
    return fit_classifier(
        distiller,
        train,
        val,
        make_optimizer(optimizer, learning_rate),
        epochs,
        out_model,
        out_history,
        monitor,
        malignant=malignant,
        checkpoint=checkpoint,
        network=student,
        snapshots=snapshots,
    )


def _teacher_logits_for(
    logits: np.ndarray, source_mask: Sequence[bool], target_mask: Sequence[bool]
) -> np.ndarray:
    """The teacher's logits in the student's classes: as they are when the classes agree,
    collapsed to benign/malignant for a binary student of a seven-class teacher."""
    if len(source_mask) == len(target_mask):
        return logits
    if len(target_mask) != 2:
        raise ConfigError(
            "student.classes: dx needs a teacher trained on the diagnoses (teacher.classes: dx)"
        )
    return binary_logits(logits.reshape(-1, logits.shape[-1]), source_mask).reshape(
        *logits.shape[:-1], 2
    ).astype(np.float32)


def distil_from_cache(
    shard_paths: Sequence[str | os.PathLike],
    splits: pd.DataFrame,
    soft_labels_path: str | os.PathLike,
    *,
    student: Mapping[str, Any],
    mapping: str,
    augment: Mapping[str, Any] | None,
    seed: int,
    out_model: Path,
    out_history: Path,
    max_train_images: int | None = None,
    checkpoint: Checkpoint | None = None,
    snapshots: Mapping[int, Path] | None = None,
) -> tuple[keras.Model, int]:
    """``train_student`` on the cached train and val splits with the stored teacher logits;
    ``student`` is the config's student section (``classes``: binary or dx; ``distillation``:
    fixed or consistent), ``mapping`` the dataset's dx mapping. With ``max_train_images``,
    a stratified seeded subsample of the training split; ``checkpoint``: resumable,
    ``snapshots``: best-so-far students at those epochs (see ``fit_classifier``). Returns
    the student and its training-set size."""
    settings = dict(student)
    classes, distillation = settings.pop("classes"), settings.pop("distillation")
    malignant = malignant_mask(classes, mapping)
    data = load_splits(shard_paths, splits, ("train", "val"))
    train_images, train_labels, train_ids = data["train"]
    keep = subsample_indices(train_labels, max_train_images, seed)
    train_images, train_ids = train_images[keep], train_ids[keep]
    val_images, _, val_ids = data["val"]
    soft = read_soft_labels(soft_labels_path, "train", train_ids)
    teacher_mask = soft.malignant

    def in_student_classes(logits: np.ndarray) -> np.ndarray:
        return _teacher_logits_for(logits, teacher_mask, malignant)

    views = None
    if distillation == "consistent":
        transforms, view_logits = read_teacher_views(soft_labels_path, train_ids)
        views = TeacherViews(transforms, in_student_classes(view_logits))
    model = train_student(
        train_images,
        class_labels(splits, train_ids, classes),
        in_student_classes(soft.logits),
        val_images,
        class_labels(splits, val_ids, classes),
        in_student_classes(read_soft_labels(soft_labels_path, "val", val_ids).logits),
        out_model=out_model,
        out_history=out_history,
        malignant=malignant,
        augment=augment,
        views=views,
        seed=seed,
        checkpoint=checkpoint,
        snapshots=snapshots,
        **settings,
    )
    return model, len(train_ids)
