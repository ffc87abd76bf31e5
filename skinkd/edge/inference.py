"""Model outputs for uint8 images: logits of a ``.keras`` or ``.tflite`` student. Light on
purpose: numpy here, Keras or ai_edge_litert only when a
model of that kind is loaded, so ``skinkd predict`` runs on the edge install."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skinkd.errors import SkinkdError


class KerasClassifier:
    """A saved ``.keras`` student behind the same interface as ``TFLiteClassifier``."""

    def __init__(self, path: str | os.PathLike) -> None:
        from skinkd.nn.models import load_model

        self.path = Path(path)
        self._model = load_model(self.path)

    @property
    def input_size(self) -> int:
        return int(self._model.input_shape[1])

    def predict_logits(self, images_uint8: np.ndarray, batch_size: int = 32) -> np.ndarray:
        from skinkd.nn.models import keras_logits

        return keras_logits(self._model, images_uint8, batch_size)


def load_classifier(
    path: str | os.PathLike, threads: int = 1, malignant: Sequence[bool] | None = None
) -> Any:
    """A ``.tflite`` (run by ai_edge_litert with ``threads``) or ``.keras`` classifier, each
    giving benign/malignant logits; ``malignant``: which outputs of a seven-output TFLite
    file are malignant (a ``.keras`` student collapses its outputs itself)."""
    tflite = Path(path).suffix == ".tflite"
    try:
        if tflite:
            from skinkd.edge.export import TFLiteClassifier

            return TFLiteClassifier(path, num_threads=threads, malignant=malignant)
        return KerasClassifier(path)
    except ModuleNotFoundError as exc:
        needs = "ai-edge-litert (pip install 'skinkd[edge]')" if tflite else "Keras and TensorFlow"
        raise SkinkdError(f"{path}: running this model needs {needs}; {exc}") from None


def model_logits(
    path: str | os.PathLike,
    images: np.ndarray,
    threads: int = 1,
    malignant: Sequence[bool] | None = None,
) -> np.ndarray:
    """Benign/malignant logits of a ``.keras`` or ``.tflite`` student for uint8 images."""
    return load_classifier(path, threads, malignant).predict_logits(images)
