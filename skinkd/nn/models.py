"""Keras pieces every model of this project shares: the layer that turns class logits into
benign/malignant logits, a SELU that survives int8 quantisation, logits of uint8 images,
and saving and loading ``.keras`` files.

Every model returns logits (index 1 = malignant for two classes); softmax is applied only
where a probability is reported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from skinkd.atomic import atomic_suffixed_path
from skinkd.data.augment import warp_images
from skinkd.data.preprocess import rescale
from skinkd.errors import DataError

NUM_CLASSES = 2
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


@keras.saving.register_keras_serializable(package="skinkd")
def bounded_selu(x):
    """SELU, with its exponential taking min(x, 0) only. Keras' SELU evaluates exp(x) for
    every x and selects afterwards; in an int8 graph that branch's range then spans exp of
    the largest activation, and its small negative values quantise to nothing."""
    return SELU_SCALE * (ops.relu(x) + SELU_ALPHA * (ops.exp(ops.minimum(x, 0.0)) - 1.0))


@keras.saving.register_keras_serializable(package="skinkd")
class MalignantLogits(layers.Layer):
    """(n, C) class logits -> (n, 2) logits whose softmax is (P(benign), P(malignant)):
    a log-sum-exp over each side of the mapping (``skinkd.data.classes.binary_logits``)."""

    def __init__(self, malignant: list[bool], **kwargs):
        super().__init__(**kwargs)
        self.malignant = [bool(m) for m in malignant]

    def call(self, logits):
        benign = [i for i, m in enumerate(self.malignant) if not m]
        malignant = [i for i, m in enumerate(self.malignant) if m]
        return keras.ops.stack(
            [
                keras.ops.logsumexp(keras.ops.take(logits, benign, axis=-1), axis=-1),
                keras.ops.logsumexp(keras.ops.take(logits, malignant, axis=-1), axis=-1),
            ],
            axis=-1,
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], NUM_CLASSES)

    def get_config(self):
        return {**super().get_config(), "malignant": self.malignant}


def with_binary_output(model: keras.Model, malignant: list[bool]) -> keras.Model:
    """``model`` with its class logits collapsed to benign/malignant logits (no parameters
    added), the form export, predict and the metrics read."""
    if len(malignant) == NUM_CLASSES:
        return model
    outputs = MalignantLogits(malignant, name="malignant_logits")(model.output)
    return keras.Model(model.input, outputs, name=model.name)


def keras_logits(
    model: Any, images: np.ndarray, batch_size: int = 64, transforms: np.ndarray | None = None
) -> np.ndarray:
    """Logits of a Keras image model for uint8 images, rescaled batch by batch (memory);
    ``transforms`` (``skinkd.data.augment`` views, one per image) warps each batch first."""
    parts = []
    for i in range(0, len(images), batch_size):
        batch = images[i : i + batch_size]
        if transforms is not None:
            batch = warp_images(batch, transforms[i : i + batch_size])
        parts.append(np.asarray(model.predict_on_batch(rescale(batch)), np.float32))
    return np.concatenate(parts)


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


def load_model(path: str | Path) -> keras.Model:
    """Load a saved ``.keras`` model of this project (its custom layers are registered by
    importing this module) in safe mode: a file carrying code (a Lambda layer's bytecode)
    is refused, not run."""
    try:
        return keras.models.load_model(path, safe_mode=True)
    except ValueError as exc:
        if "safe_mode" not in str(exc):
            raise
        raise DataError(f"{path}: refused, the model file carries code to run ({exc})") from None
