"""Training: the distillation loss and Distiller, augmentation, batch feeding, best-on-val fits.

Everything here is backend-agnostic Keras 3 (``keras.ops``, ``keras.layers``,
``keras.utils.PyDataset``), so the same code trains under TensorFlow, PyTorch or JAX.

Targets for the Distiller are one float32 array per batch, shape (batch, 1 + C):
column 0 the hard label (a class index), then the teacher's C logits. ``pack_targets``
builds it; a single array keeps every backend's data pipeline simple.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
from keras import ops

from skinkd.atomic import atomic_path, atomic_suffixed_path, write_csv
from skinkd.augment import Augmentation, draw_transforms, warp_images
from skinkd.cache import load_splits
from skinkd.checkpoint import Checkpoint
from skinkd.classes import binary_logits, class_labels, malignant_mask
from skinkd.errors import ConfigError, DataError
from skinkd.models import build_student, with_binary_output
from skinkd.preprocess import rescale
from skinkd.soft_labels import read_soft_labels, read_teacher_views
from skinkd.split import subsample_indices

log = logging.getLogger(__name__)


class Adafactor(keras.optimizers.Adafactor):
    """Keras' Adafactor with its second-moment estimate floored at epsilon_1.

    Keras 3.15 rebuilds a matrix's second moment as (r / mean(r)) * c. Where a filter gets
    no gradient (a dead ReLU unit) beside large ones, that product underflows float32 to 0
    and the update g / sqrt(v) is 0 / 0. One step of the student then leaves NaN in whole
    conv kernels: the torch loss turns NaN, while TensorFlow's CPU kernels hide it (the loss
    stays finite, the weights do not). The floor only touches entries below 1e-30.
    """

    def assign(self, variable, value):
        # Keras' update_step writes the second moment of each variable into self._v.
        if any(variable is velocity for velocity in self._v):
            value = ops.maximum(value, self.epsilon_1)
        super().assign(variable, value)


OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "adafactor": Adafactor,
    "nadam": keras.optimizers.Nadam,
    "rmsprop": keras.optimizers.RMSprop,
}
METRIC_NAMES = ("loss", "accuracy", "auc")


def distillation_loss(labels, student_logits, teacher_logits, temperature: float, alpha: float):
    """alpha * CE(labels, softmax(s)) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T)).

    Per-image losses averaged over the batch. The T^2 factor keeps the soft term's gradients
    on the scale of the hard term's when T changes (Hinton et al. 2015). Log-softmax
    throughout, so saturated teacher probabilities give 0 * finite, never 0 * log 0.
    """
    student_logits = ops.convert_to_tensor(student_logits)
    teacher_logits = ops.cast(teacher_logits, student_logits.dtype)
    num_classes = ops.shape(student_logits)[-1]
    one_hot = ops.one_hot(
        ops.cast(ops.reshape(labels, (-1,)), "int32"), num_classes, dtype=student_logits.dtype
    )
    hard = -ops.sum(one_hot * ops.log_softmax(student_logits, axis=-1), axis=-1)
    teacher_log_probs = ops.log_softmax(teacher_logits / temperature, axis=-1)
    student_log_probs = ops.log_softmax(student_logits / temperature, axis=-1)
    kl = ops.sum(ops.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1)
    return ops.mean(alpha * hard + (1.0 - alpha) * temperature**2 * kl)


def pack_targets(labels: np.ndarray, teacher_logits: np.ndarray) -> np.ndarray:
    """The Distiller's targets: float32 (n, 1 + C) = [label, the teacher's C logits]."""
    labels = np.asarray(labels)
    teacher_logits = np.asarray(teacher_logits)
    if teacher_logits.ndim != 2 or len(teacher_logits) != len(labels):
        raise DataError(
            f"teacher logits have shape {teacher_logits.shape}, expected ({len(labels)}, C) "
            "(one row of logits per image)"
        )
    return np.concatenate([labels[:, None], teacher_logits], axis=1).astype(np.float32)


class MalignantAUC(keras.metrics.AUC):
    """ROC AUC of P(malignant) (the softmax summed over the malignant classes) against
    class-index labels, for two outputs or the seven diagnoses."""

    def __init__(self, malignant: Sequence[bool] = (False, True), **kwargs: Any):
        super().__init__(**kwargs)
        self.malignant = [bool(m) for m in malignant]

    def update_state(self, y_true, y_pred, sample_weight=None):
        mask = ops.convert_to_tensor(self.malignant, dtype=y_pred.dtype)
        prob_malignant = ops.sum(ops.softmax(y_pred, axis=-1) * mask, axis=-1)
        is_malignant = ops.take(mask, ops.cast(ops.reshape(y_true, (-1,)), "int32"))
        return super().update_state(is_malignant, prob_malignant, sample_weight)


class Distiller(keras.Model):
    """Trains a student (logits) on hard labels and stored teacher logits.

    ``call`` is the student; targets are ``pack_targets`` arrays (batch, 3). The teacher is
    not part of the model: its logits were computed once and travel with the batches.
    Validation uses the same loss (val targets carry teacher logits too); metrics see only
    the hard labels. Sample weights are not used. Save ``distiller.student``, not the
    Distiller.
    """

    def __init__(self, student: keras.Model, temperature: float, alpha: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.student = student
        self.temperature = float(temperature)
        self.alpha = float(alpha)

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y.shape[-1] != 1 + y_pred.shape[-1]:
            raise DataError(
                f"Distiller targets must be (batch, {1 + y_pred.shape[-1]}) [label, teacher "
                f"logits], got {y.shape}"
            )
        return distillation_loss(y[:, 0], y_pred, y[:, 1:], self.temperature, self.alpha)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y[:, 0], y_pred, sample_weight)


@dataclass(frozen=True)
class TeacherViews:
    """The teacher's logits for K augmented views of each training image, and the views
    (``skinkd.augment`` transforms, resolution-free): consistent distillation's targets."""

    transforms: np.ndarray  # (K, n, 2, 3)
    logits: np.ndarray  # (K, n, C)

    def __post_init__(self) -> None:
        k, n = self.transforms.shape[:2]
        if self.transforms.shape[2:] != (2, 3) or self.logits.shape[:2] != (k, n) or k == 0:
            raise DataError(
                f"teacher views: transforms {self.transforms.shape} and logits "
                f"{self.logits.shape} do not describe K >= 1 views of the same images"
            )


class _Batches(keras.utils.PyDataset):
    """Batch order over n items: fixed, or a new seeded permutation every epoch."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int, **kwargs: Any):
        super().__init__(**kwargs)
        if n == 0:
            raise DataError("nothing to feed: the split is empty")
        self.n = n
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def on_epoch_end(self) -> None:
        self.start_at(self.epoch + 1)

    def start_at(self, epoch: int) -> None:
        """Feed epoch ``epoch`` next (a resumed fit skips the epochs it has done)."""
        self.epoch = epoch
        self.order = self._epoch_order()

    def batch_indices(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        return self.order[index * self.batch_size : (index + 1) * self.batch_size]


class ImageBatches(_Batches):
    """Batches of float32 [0, 1] images from the uint8 cache, with labels or Distiller targets.

    Yields (images, labels int32) or, given teacher logits, (images, ``pack_targets``).
    Training batches are augmented in one of two ways. ``augmentation``: a fresh random view
    of each image, its targets unchanged (the teacher's logits are those of the plain
    image). ``views`` (consistent distillation): each image is shown as the plain image or
    one of the teacher's K cached views, chosen at random, with the teacher's logits for
    exactly that view. Every choice is seeded by (seed, epoch, batch).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        *,
        teacher_logits: np.ndarray | None = None,
        augmentation: Augmentation | None = None,
        views: TeacherViews | None = None,
        shuffle: bool = False,
        seed: int = 0,
        **kwargs: Any,
    ):
        super().__init__(len(images), batch_size, shuffle, seed, **kwargs)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise DataError(
                f"expected uint8 images (n, S, S, 3), got {images.dtype} {images.shape}"
            )
        if len(labels) != len(images):
            raise DataError(f"{len(images)} images but {len(labels)} labels")
        if views is not None and (teacher_logits is None or views.transforms.shape[1] != len(images)):
            raise DataError("teacher views need teacher logits and one view set per image")
        self.images = images
        self.augmentation = None if augmentation is None or augmentation.is_identity else augmentation
        self.views = views
        if teacher_logits is None:
            self.targets = np.asarray(labels, dtype=np.int32)
        else:
            self.targets = pack_targets(labels, teacher_logits)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        take = self.batch_indices(index)
        images, targets = self.images[take], self.targets[take]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.views is not None:
            # View 0 is the plain image with its stored logits; 1..K the teacher's views.
            view = rng.integers(0, len(self.views.logits) + 1, len(take))
            shown = view > 0
            if shown.any():
                chosen = (view[shown] - 1, take[shown])
                images = images.copy()
                images[shown] = warp_images(images[shown], self.views.transforms[chosen])
                targets = targets.copy()
                targets[shown, 1:] = self.views.logits[chosen]
        elif self.augmentation is not None:
            images = warp_images(images, draw_transforms(self.augmentation, len(take), rng))
        return rescale(images), targets


class FeatureBatches(_Batches):
    """Batches of cached backbone features (dict name -> (n, ...)) as float32, with labels.

    For the teacher head, whose inputs are named after the backbones.
    """

    def __init__(
        self,
        features: Mapping[str, np.ndarray],
        labels: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        **kwargs: Any,
    ):
        sizes = {name: len(array) for name, array in features.items()}
        if set(sizes.values()) != {len(labels)}:
            raise DataError(f"feature rows {sizes} do not all match {len(labels)} labels")
        super().__init__(len(labels), batch_size, shuffle, seed, **kwargs)
        self.features = dict(features)
        self.labels = np.asarray(labels, dtype=np.int32)

    def __getitem__(self, index: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        take = self.batch_indices(index)
        batch = {name: array[take].astype(np.float32) for name, array in self.features.items()}
        return batch, self.labels[take]


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """One of adam, adafactor, nadam, rmsprop with the given learning rate (Keras defaults
    otherwise)."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer: {name!r} is not one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](learning_rate=learning_rate)


def save_keras(model: keras.Model, path: str | os.PathLike) -> None:
    """Save a model as .keras atomically (Keras insists on the suffix, so the staged file
    carries it before the rename)."""
    with atomic_suffixed_path(path, ".keras") as staged:
        model.save(staged)


def inference_copy(model: keras.Model) -> keras.Model:
    """An uncompiled copy with the same weights: its .keras file holds no optimizer or
    metric state, so loading it needs none of this module's training classes."""
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


class _EpochLog(keras.callbacks.Callback):
    """One log line per epoch (rule logs capture logging, not Keras' progress bar)."""

    def on_epoch_end(self, epoch, logs=None):
        values = " ".join(f"{k}={v:.4f}" for k, v in sorted((logs or {}).items()))
        log.info("epoch %d: %s", epoch + 1, values)


class _ResumableBest(keras.callbacks.EarlyStopping):
    """EarlyStopping that keeps the best epoch but never stops (patience = epochs), and can
    start from a checkpoint's best-so-far."""

    def __init__(self, monitor: str, epochs: int, resumed: Mapping[str, Any] | None):
        super().__init__(monitor=monitor, patience=epochs, restore_best_weights=True)
        self.resumed = resumed

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.resumed is not None:
            self.best = self.resumed["best"]
            self.best_epoch = self.resumed["best_epoch"]
            self.wait = self.resumed["wait"]
            self.best_weights = self.resumed["best_weights"]


class _EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch, atomically: the model's variables (weights and seed generators),
    the optimizer's, the best-so-far and the history, under the run's key."""

    def __init__(self, checkpoint: Checkpoint, best: _ResumableBest, rows: list[dict]):
        super().__init__()
        self.checkpoint, self.best, self.rows = checkpoint, best, rows

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({key: float(value) for key, value in (logs or {}).items()})
        best = None if self.best.best is None else float(self.best.best)
        meta = {"key": self.checkpoint.key, "epoch": epoch + 1, "best": best,
                "best_epoch": int(self.best.best_epoch), "wait": int(self.best.wait),
                "history": self.rows}  # fmt: skip
        arrays = {"meta": np.array(json.dumps(meta))}
        for group, values in (
            ("model", self.model.variables),
            ("optimizer", self.model.optimizer.variables),
            ("best", self.best.best_weights or []),
        ):
            arrays.update({f"{group}/{i}": np.asarray(v) for i, v in enumerate(values)})
        with atomic_path(self.checkpoint.path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def _resume(model: keras.Model, checkpoint: Checkpoint) -> dict[str, Any] | None:
    """Load a checkpoint written under the same key into ``model`` (compiled) and its
    optimizer; its state, or None when there is none to resume."""
    if not checkpoint.path.is_file():
        return None
    try:
        with np.load(checkpoint.path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            groups = {
                group: [data[f"{group}/{i}"] for i in range(sum(k.startswith(f"{group}/") for k in data))]
                for group in ("model", "optimizer", "best")
            }
    except (OSError, ValueError, KeyError) as exc:
        log.info("checkpoint %s unreadable (%s): starting afresh", checkpoint.path, exc)
        return None
    if meta["key"] != checkpoint.key:
        log.info("checkpoint %s is of another run (key %s, not %s): starting afresh",
                 checkpoint.path, meta["key"], checkpoint.key)  # fmt: skip
        return None
    model.optimizer.build(model.trainable_variables)
    for target, group in ((model.variables, "model"), (model.optimizer.variables, "optimizer")):
        if len(target) != len(groups[group]):
            log.info("checkpoint %s does not fit this model: starting afresh", checkpoint.path)
            return None
        for variable, value in zip(target, groups[group], strict=True):
            variable.assign(value)
    log.info("resuming from the checkpoint of epoch %d", meta["epoch"])
    return {**meta, "best_weights": groups["best"] or None}


def fit_classifier(
    model: keras.Model,
    train: keras.utils.PyDataset,
    val: keras.utils.PyDataset,
    optimizer: keras.optimizers.Optimizer,
    epochs: int,
    out_model: Path,
    out_history: Path,
    monitor: str = "val_loss",
    malignant: Sequence[bool] = (False, True),
    binary_output: bool = True,
    checkpoint: Checkpoint | None = None,
) -> keras.Model:
    """Train, restore the weights of the best epoch on ``monitor`` and save them.

    ``model`` is a plain classifier (logits; sparse cross-entropy) or a Distiller (its own
    loss); ``malignant`` says which of its outputs are malignant (the AUC metric sums them).
    Writes the model, uncompiled (the student alone for a Distiller), as .keras, with its
    outputs collapsed to benign/malignant logits if ``binary_output``, and a history CSV
    (epoch, loss, accuracy, auc and their val_ twins, best = the restored epoch).
    With a ``checkpoint``, every epoch is saved there, a killed fit resumes from its last
    epoch and ends with the weights of an uninterrupted one, and the checkpoint is removed
    once the model is saved.
    Returns the saved model.
    """
    allowed = [f"{prefix}{name}" for prefix in ("", "val_") for name in METRIC_NAMES]
    if monitor not in allowed:
        raise ConfigError(f"monitor: {monitor!r} is not one of {', '.join(allowed)}")
    metrics = [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        MalignantAUC(malignant, name="auc"),
    ]
    loss = (
        None
        if isinstance(model, Distiller)
        else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    resumed = _resume(model, checkpoint) if checkpoint is not None else None
    done = resumed["epoch"] if resumed else 0
    rows = list(resumed["history"]) if resumed else []
    train.start_at(done)
    # patience = epochs: never stops early; only keeps and, at the end, restores the best.
    best = _ResumableBest(monitor, epochs, resumed)
    callbacks = [best, _EpochLog()]
    if checkpoint is not None:
        callbacks.append(_EpochCheckpoint(checkpoint, best, rows))
    # shuffle=False: the batches shuffle themselves, seeded by epoch; Keras' own shuffle of
    # the batch order draws from a global generator that a resumed process cannot replay.
    fitted = model.fit(
        train, validation_data=val, epochs=epochs, initial_epoch=done, callbacks=callbacks,
        shuffle=False, verbose=0,
    )  # fmt: skip
    log.info("restored epoch %d (best %s %.4f)", best.best_epoch + 1, monitor, best.best)

    history = pd.DataFrame(rows if checkpoint is not None else fitted.history)
    history = history[[c for c in allowed if c in history.columns]]
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    history["best"] = history["epoch"] == best.best_epoch + 1
    saved = model.student if isinstance(model, Distiller) else inference_copy(model)
    if binary_output:
        saved = with_binary_output(saved, list(malignant))
    save_keras(saved, out_model)
    write_csv(history, out_history)
    if checkpoint is not None:
        checkpoint.remove()
    return saved


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
) -> keras.Model:
    """Distil a student from stored teacher logits; keyword names follow the config's
    ``student`` section. ``malignant`` has one entry per output class (labels are class
    indices; the teacher's logits have as many columns). ``augment``: the config's
    ``augment`` section (None: no augmentation); ``views``: the teacher's logits on cached
    augmented views instead (consistent distillation). Seeded: two runs on one machine
    give identical histories. ``checkpoint``: resumable, see ``fit_classifier``."""
    keras.utils.set_random_seed(seed)
    train = ImageBatches(
        train_images,
        train_labels,
        batch_size,
        teacher_logits=train_teacher_logits,
        augmentation=None if augment is None else Augmentation.from_config(augment),
        views=views,
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
    )


def _teacher_logits_for(logits: np.ndarray, source_mask: Sequence[bool], target_mask: Sequence[bool]) -> np.ndarray:
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
) -> tuple[keras.Model, int]:
    """``train_student`` on the cached train and val splits with the stored teacher logits;
    ``student`` is the config's student section (``classes``: binary or dx; ``distillation``:
    fixed or consistent), ``mapping`` the dataset's dx mapping. With ``max_train_images``,
    a stratified seeded subsample of the training split; ``checkpoint``: resumable (see
    ``fit_classifier``). Returns the student and its training-set size."""
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
        **settings,
    )
    return model, len(train_ids)
