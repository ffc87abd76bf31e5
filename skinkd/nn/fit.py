"""Fitting a Keras classifier: optimisers, the malignant-AUC metric, and a fit that keeps
the best validation epoch, checkpoints every epoch and resumes a killed job exactly.

Everything here is backend-agnostic Keras 3 (``keras.ops``, ``keras.callbacks``), so the
same code trains under TensorFlow, PyTorch or JAX.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
from keras import ops

from skinkd.atomic import atomic_path, write_csv
from skinkd.checkpoint import Checkpoint
from skinkd.errors import ConfigError
from skinkd.nn.models import inference_copy, save_keras, with_binary_output

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


SCHEDULES = ("constant", "cosine")


@keras.saving.register_keras_serializable(package="skinkd")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A linear warm-up from 0 to ``peak`` over ``warmup_steps``, then ``peak`` held
    (``constant``) or a cosine decay to 0 at ``total_steps`` (``cosine``). The step is the
    optimizer's own counter, which a resumed fit restores, so the curve resumes too."""

    def __init__(self, peak: float, schedule: str, warmup_steps: int, total_steps: int):
        if schedule not in SCHEDULES:
            raise ConfigError(f"schedule: {schedule!r} is not one of {', '.join(SCHEDULES)}")
        self.peak, self.schedule = float(peak), schedule
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = ops.minimum(1.0, (step + 1.0) / max(1, self.warmup_steps))
        if self.schedule == "constant":
            return self.peak * warmup
        span = max(1, self.total_steps - self.warmup_steps)
        progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        return self.peak * ops.minimum(warmup, 0.5 * (1.0 + ops.cos(np.pi * progress)))

    def get_config(self) -> dict[str, Any]:
        return {"peak": self.peak, "schedule": self.schedule,
                "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}  # fmt: skip


def make_optimizer(
    name: str,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
    weight_decay: float = 0.0,
) -> keras.optimizers.Optimizer:
    """One of adam, adafactor, nadam, rmsprop with the given learning rate or schedule and
    (decoupled) weight decay; Keras defaults otherwise."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"optimizer: {name!r} is not one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](learning_rate=learning_rate, weight_decay=weight_decay or None)


class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of logits against class-index labels smoothed by ``smoothing``: the
    target puts 1 - smoothing + smoothing / C on the label and smoothing / C elsewhere."""

    def __init__(self, smoothing: float, **kwargs: Any):
        super().__init__(name="smoothed_sparse_crossentropy", **kwargs)
        self.smoothing = float(smoothing)

    def call(self, y_true, y_pred):
        classes = ops.shape(y_pred)[-1]
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        target = ops.one_hot(labels, classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            target, y_pred, from_logits=True, label_smoothing=self.smoothing
        )


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


class _Snapshots(keras.callbacks.Callback):
    """At each epoch in ``paths``, the best-so-far ``network`` saved there: what training
    for that many epochs would have kept (the batches do not depend on the epoch count)."""

    def __init__(self, paths: Mapping[int, Path], best: _ResumableBest, network: keras.Model):
        super().__init__()
        self.paths, self.best, self.network = paths, best, network

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 not in self.paths:
            return
        current = self.model.get_weights()
        if self.best.best_weights is not None:
            self.model.set_weights(self.best.best_weights)
        save_keras(inference_copy(self.network), self.paths[epoch + 1])
        self.model.set_weights(current)


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
    network: keras.Model | None = None,
    label_smoothing: float = 0.0,
    snapshots: Mapping[int, Path] | None = None,
) -> keras.Model:
    """Train, restore the weights of the best epoch on ``monitor`` and save them.

    ``model`` is a plain classifier (logits; sparse cross-entropy), or, given ``network``, a
    trainer with a loss of its own (``compute_loss``) that trains ``network`` (the student's
    Distiller); ``malignant`` says which outputs are malignant (the AUC metric sums them).
    Writes the model, uncompiled (``network`` alone for a trainer), as .keras, with its
    outputs collapsed to benign/malignant logits if ``binary_output``, and a history CSV
    (epoch, loss, accuracy, auc and their val_ twins, best = the restored epoch).
    With a ``checkpoint``, every epoch is saved there, a killed fit resumes from its last
    epoch and ends with the weights of an uninterrupted one, and the checkpoint is removed
    once the model is saved. ``label_smoothing`` (plain classifiers) smooths the targets.
    ``snapshots``: epoch -> path, where the best-so-far network (class logits) is saved at
    the end of that epoch. Returns the saved model.
    """
    allowed = [f"{prefix}{name}" for prefix in ("", "val_") for name in METRIC_NAMES]
    if monitor not in allowed:
        raise ConfigError(f"monitor: {monitor!r} is not one of {', '.join(allowed)}")
    metrics = [
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
        MalignantAUC(malignant, name="auc"),
    ]
    if network is not None:
        loss = None
    elif label_smoothing > 0:
        loss = SmoothedSparseCrossentropy(label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    resumed = _resume(model, checkpoint) if checkpoint is not None else None
    done = resumed["epoch"] if resumed else 0
    rows = list(resumed["history"]) if resumed else []
    train.start_at(done)
    # patience = epochs: never stops early; only keeps and, at the end, restores the best.
    best = _ResumableBest(monitor, epochs, resumed)
    callbacks = [best, _EpochLog()]
    if snapshots:
        # After `best`, which has just taken this epoch into account.
        callbacks.append(_Snapshots(snapshots, best, network or model))
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
    saved = network if network is not None else inference_copy(model)
    if binary_output:
        saved = with_binary_output(saved, list(malignant))
    save_keras(saved, out_model)
    write_csv(history, out_history)
    if checkpoint is not None:
        checkpoint.remove()
    return saved
