"""Calibration of P(malignant): a decision threshold for a target sensitivity, chosen on
the validation split, and the reliability of the probabilities on the test split."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from skinkd.errors import DataError


def _check(labels: np.ndarray, prob: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    labels, prob = np.asarray(labels).astype(int), np.asarray(prob, dtype=np.float64)
    if labels.shape != prob.shape or labels.ndim != 1:
        raise ValueError(f"{what}: labels {labels.shape} and probabilities {prob.shape} differ")
    if not np.isin(labels, (0, 1)).all():
        raise DataError(f"{what}: labels must be 0 (benign) or 1 (malignant)")
    return labels, prob


def threshold_for_sensitivity(labels: np.ndarray, prob: np.ndarray, target: float) -> float:
    """The highest threshold t such that ``prob >= t`` finds at least ``target`` of the
    malignant cases (the most specific threshold that meets the sensitivity target)."""
    labels, prob = _check(labels, prob, "threshold")
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target sensitivity {target} is not in (0, 1]")
    malignant = np.sort(prob[labels == 1])[::-1]
    if len(malignant) == 0:
        raise DataError("threshold: the validation split has no malignant image")
    needed = math.ceil(target * len(malignant) - 1e-9)
    return float(malignant[needed - 1])


def rates_at(labels: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, float]:
    """Sensitivity and specificity of ``prob >= threshold``."""
    labels, prob = _check(labels, prob, "rates")
    predicted = prob >= threshold
    positives, negatives = labels == 1, labels == 0
    return {
        "sensitivity": float(predicted[positives].mean()) if positives.any() else math.nan,
        "specificity": float((~predicted[negatives]).mean()) if negatives.any() else math.nan,
    }


def reliability(labels: np.ndarray, prob: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Equal-width bins of P(malignant): count, mean predicted and observed malignant
    fraction per bin, and the expected calibration error (count-weighted mean gap)."""
    labels, prob = _check(labels, prob, "reliability")
    edges = np.linspace(0.0, 1.0, bins + 1)
    # The last bin is closed on the right so that probability 1.0 is counted.
    index = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        members = index == b
        count = int(members.sum())
        mean_prob = float(prob[members].mean()) if count else math.nan
        observed = float(labels[members].mean()) if count else math.nan
        if count:
            ece += count / len(prob) * abs(mean_prob - observed)
        rows.append(
            {"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
             "mean_predicted": mean_prob, "observed": observed}  # fmt: skip
        )
    return {"ece": ece, "bins": rows}


def calibrate(
    val_labels: np.ndarray,
    val_prob: np.ndarray,
    test_labels: np.ndarray,
    test_prob: np.ndarray,
    target_sensitivity: float,
    bins: int = 10,
) -> dict[str, Any]:
    """Threshold chosen on validation, and how it and the probabilities hold up on test."""
    threshold = threshold_for_sensitivity(val_labels, val_prob, target_sensitivity)
    test = reliability(test_labels, test_prob, bins)
    return {
        "target_sensitivity": target_sensitivity,
        "threshold": threshold,
        "val": rates_at(val_labels, val_prob, threshold),
        "test": rates_at(test_labels, test_prob, threshold),
        "test_ece": test["ece"],
        "test_bins": test["bins"],
    }
