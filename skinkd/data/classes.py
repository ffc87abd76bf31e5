"""What a model's outputs mean: two classes (benign, malignant) or the seven HAM10000 diagnoses.

A seven-class model reports P(malignant) as the sum of its malignant classes' probabilities
under the run's mapping. In logits that sum is a log-sum-exp: the binary logits
(LSE over the benign classes, LSE over the malignant ones) have exactly that softmax, so
every consumer of two logits (export, model card, predict, calibration, metrics) works
unchanged on a seven-class model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from skinkd.data.labelled import HAM_DX, HAM_MALIGNANT, LABEL_NAMES
from skinkd.errors import ConfigError, DataError

if TYPE_CHECKING:
    # Only for annotations: predict imports this module on the edge install (no pandas).
    import pandas as pd

CLASS_SCHEMES = ("binary", "dx")


def class_names(classes: str) -> tuple[str, ...]:
    """The output units' names, in order."""
    if classes == "binary":
        return LABEL_NAMES
    if classes == "dx":
        return HAM_DX
    raise ConfigError(f"classes: {classes!r} is not one of {', '.join(CLASS_SCHEMES)}")


def malignant_mask(classes: str, mapping: str) -> tuple[bool, ...]:
    """Which output units are malignant: unit 1 of two, or the mapping's diagnoses."""
    names = class_names(classes)
    if classes == "binary":
        return tuple(name == "malignant" for name in names)
    if mapping not in HAM_MALIGNANT:
        raise ConfigError(f"dataset.mapping: {mapping!r} is not one of {', '.join(HAM_MALIGNANT)}")
    return tuple(name in HAM_MALIGNANT[mapping] for name in names)


def class_labels(splits: pd.DataFrame, image_ids: Sequence[str], classes: str) -> np.ndarray:
    """The training target of each image: its binary label, or the index of its diagnosis."""
    rows = splits.set_index("image_id").reindex(list(image_ids))
    if rows["label"].isna().any():
        missing = list(rows.index[rows["label"].isna()][:3])
        raise DataError(f"image ids not in the split table, e.g. {missing}")
    if classes == "binary":
        return rows["label"].to_numpy(np.int64)
    class_names(classes)
    if "dx" not in rows.columns:
        raise ConfigError(
            "classes: dx needs each image's diagnosis, but this data set has none (only "
            "HAM10000 metadata carries dx); use binary"
        )
    unknown = sorted(set(rows["dx"]) - set(HAM_DX))
    if unknown:
        raise DataError(f"unknown diagnoses in the split table: {unknown}")
    return rows["dx"].map({dx: i for i, dx in enumerate(HAM_DX)}).to_numpy(np.int64)


def binary_logits(logits: np.ndarray, malignant: Sequence[bool]) -> np.ndarray:
    """(n, C) logits -> (n, 2) logits with the same P(malignant); two classes pass through."""
    logits = np.asarray(logits, dtype=np.float64)
    mask = np.asarray(malignant, dtype=bool)
    if logits.ndim != 2 or logits.shape[1] != len(mask):
        raise DataError(f"logits of shape {logits.shape} do not match {len(mask)} classes")
    if len(mask) == 2 and mask[1] and not mask[0]:
        return logits
    if mask.all() or not mask.any():
        raise ConfigError("the class mapping needs at least one benign and one malignant class")

    def logsumexp(part: np.ndarray) -> np.ndarray:
        top = part.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(part - top).sum(axis=1, keepdims=True)))[:, 0]

    return np.stack([logsumexp(logits[:, ~mask]), logsumexp(logits[:, mask])], axis=1)


def malignant_probability(logits: np.ndarray) -> np.ndarray:
    """Softmax of (n, 2) logits, returning the malignant (index 1) probability as float64."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] != 2:
        raise ValueError(f"logits must have shape (n, 2), got {logits.shape}")
    # Subtracting the row maximum keeps exp() finite for large logits.
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp[:, 1] / exp.sum(axis=1)
