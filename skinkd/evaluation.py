"""Test-split predictions of any model file (Keras or TFLite) and their evaluation."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skinkd.metrics import agreement, evaluate_model, malignant_probability


def keras_logits(model: Any, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Logits of a Keras image model for uint8 images, rescaled batch by batch (memory)."""
    from skinkd.preprocess import rescale

    return np.concatenate(
        [
            np.asarray(model.predict_on_batch(rescale(images[i : i + batch_size])), np.float32)
            for i in range(0, len(images), batch_size)
        ]
    )


def model_logits(path: str | os.PathLike, images: np.ndarray, threads: int = 1) -> np.ndarray:
    """Logits of a ``.keras`` or ``.tflite`` student for uint8 images."""
    if Path(path).suffix == ".tflite":
        from skinkd.export import TFLiteClassifier

        return TFLiteClassifier(path, num_threads=threads).predict_logits(images)
    from skinkd.models import load_model

    return keras_logits(load_model(path), images)


def evaluate_logits(
    name: str,
    image_ids: np.ndarray,
    labels: np.ndarray,
    logits: np.ndarray,
    settings: Mapping[str, Any],
    reference: pd.DataFrame | None = None,
) -> tuple[dict, pd.DataFrame]:
    """(evaluation dict, predictions table) for one model; with ``reference`` predictions
    (image_id, prob_malignant) of the Keras student, the agreement with it is added."""
    evaluation = evaluate_model(
        name,
        labels,
        logits,
        threshold=settings["threshold"],
        n_boot=settings["bootstrap"],
        seed=settings["seed"],
    )
    prob = malignant_probability(logits)
    predictions = pd.DataFrame(
        {"image_id": image_ids, "label": labels, "prob_malignant": prob.round(6)}
    )
    if reference is not None:
        ref = reference.set_index("image_id").loc[list(image_ids), "prob_malignant"].to_numpy()
        evaluation["agreement_with_student"] = agreement(prob, ref, settings["threshold"])
    return evaluation, predictions
