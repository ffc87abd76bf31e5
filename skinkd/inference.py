"""Model outputs for uint8 images: logits of a ``.keras`` or ``.tflite`` student and the
malignant probability. Light on purpose: numpy here, Keras or ai_edge_litert only when a
model of that kind is loaded, so ``skinkd predict`` runs on the edge install."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from skinkd.errors import SkinkdError
from skinkd.preprocess import rescale


def malignant_probability(logits: np.ndarray) -> np.ndarray:
    """Softmax of (n, 2) logits, returning the malignant (index 1) probability as float64."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ValueError(f"logits must have shape (n, 2), got {logits.shape}")
    # Subtracting the row maximum keeps exp() finite for large logits.
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp[:, 1] / exp.sum(axis=1)


def keras_logits(
    model: Any, images: np.ndarray, batch_size: int = 64, transforms: np.ndarray | None = None
) -> np.ndarray:
    """Logits of a Keras image model for uint8 images, rescaled batch by batch (memory);
    ``transforms`` (``skinkd.augment`` views, one per image) warps each batch first."""
    from skinkd.augment import warp_images

    parts = []
    for i in range(0, len(images), batch_size):
        batch = images[i : i + batch_size]
        if transforms is not None:
            batch = warp_images(batch, transforms[i : i + batch_size])
        parts.append(np.asarray(model.predict_on_batch(rescale(batch)), np.float32))
    return np.concatenate(parts)


class KerasClassifier:
    """A saved ``.keras`` student behind the same interface as ``TFLiteClassifier``."""

    def __init__(self, path: str | os.PathLike) -> None:
        from skinkd.models import load_model

        self.path = Path(path)
        self._model = load_model(self.path)

    @property
    def input_size(self) -> int:
        return int(self._model.input_shape[1])

    def predict_logits(self, images_uint8: np.ndarray, batch_size: int = 32) -> np.ndarray:
        return keras_logits(self._model, images_uint8, batch_size)


def load_classifier(path: str | os.PathLike, threads: int = 1) -> Any:
    """A ``.tflite`` (run by ai_edge_litert with ``threads``) or ``.keras`` classifier."""
    tflite = Path(path).suffix == ".tflite"
    try:
        if tflite:
            from skinkd.export import TFLiteClassifier

            return TFLiteClassifier(path, num_threads=threads)
        return KerasClassifier(path)
    except ModuleNotFoundError as exc:
        needs = "ai-edge-litert (pip install 'skinkd[edge]')" if tflite else "Keras and TensorFlow"
        raise SkinkdError(f"{path}: running this model needs {needs}; {exc}") from None


def model_logits(path: str | os.PathLike, images: np.ndarray, threads: int = 1) -> np.ndarray:
    """Logits of a ``.keras`` or ``.tflite`` student for uint8 images."""
    return load_classifier(path, threads).predict_logits(images)
