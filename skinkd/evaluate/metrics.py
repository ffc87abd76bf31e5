"""Evaluation of a benign-vs-malignant classifier: metrics, bootstrap intervals, agreement.

Label 1 is malignant. A prediction is malignant when its malignant probability is at least the
threshold. Everything is computed from the confusion counts and a ROC curve in plain numpy, so
the same code serves the point estimate and each of the many bootstrap resamples.
"""

from __future__ import annotations

import json
import logging
import math
import os

import numpy as np

from skinkd.atomic import write_text
from skinkd.data.classes import malignant_probability
from skinkd.errors import DataError

log = logging.getLogger(__name__)

# Metrics that are rates (and get a bootstrap interval); the confusion counts are not.
RATE_METRICS = (
    "accuracy",
    "weighted_precision",
    "weighted_recall",
    "weighted_f1",
    "mcc",
    "roc_auc",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
)
CONFUSION_COUNTS = ("tn", "fp", "fn", "tp")


def _check_inputs(labels: np.ndarray, prob_malignant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels as int64 0/1 and probabilities as float64 in [0, 1], equal non-zero length."""
    labels = np.asarray(labels)
    prob = np.asarray(prob_malignant, dtype=np.float64)
    if labels.ndim != 1 or prob.ndim != 1 or len(labels) != len(prob):
        raise ValueError(
            f"labels and probabilities must be 1-D of equal length, got {labels.shape} and {prob.shape}"
        )
    if len(labels) == 0:
        raise ValueError("no labels to evaluate")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 (benign) or 1 (malignant), got {np.unique(labels)}")
    if not (np.isfinite(prob).all() and (prob >= 0).all() and (prob <= 1).all()):
        raise ValueError("probabilities must be finite and within [0, 1]")
    return labels.astype(np.int64), prob


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, 0 when the denominator is 0 (scikit-learn's zero_division=0)."""
    return numerator / denominator if denominator else 0.0


def _roc_points(labels: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """roc_curve without the input checks (labels hold both classes)."""
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    order = np.argsort(-prob, kind="stable")
    prob, labels = prob[order], labels[order]
    # The last index of each run of equal probabilities: one curve point per distinct threshold.
    last = np.r_[np.flatnonzero(np.diff(prob)), len(prob) - 1]
    tps = np.cumsum(labels)[last]
    fps = last + 1 - tps
    return np.r_[0.0, fps / n_neg], np.r_[0.0, tps / n_pos]


def roc_curve(labels: np.ndarray, prob_malignant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1).

    Tied probabilities form one step (a diagonal segment). Needs both classes.
    """
    labels, prob = _check_inputs(labels, prob_malignant)
    if labels.min() == labels.max():
        raise ValueError("a ROC curve needs both benign and malignant labels")
    return _roc_points(labels, prob)


def roc_auc(labels: np.ndarray, prob_malignant: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); NaN when only one class is present."""
    return _auc(*_check_inputs(labels, prob_malignant))


def _auc(labels: np.ndarray, prob: np.ndarray) -> float:
    """roc_auc without the input checks."""
    if labels.min() == labels.max():
        return math.nan
    fpr, tpr = _roc_points(labels, prob)
    return float(np.trapezoid(tpr, fpr))


def classification_metrics(
    labels: np.ndarray, prob_malignant: np.ndarray, threshold: float = 0.5
) -> dict[str, float | int]:
    """Accuracy, weighted precision/recall/F1, MCC, ROC AUC, balanced accuracy, sensitivity and
    specificity (malignant = positive), and the confusion counts tn, fp, fn, tp, n.

    Weighted averages weight each class by its number of true images, as scikit-learn's
    average="weighted" (a class without predictions has precision 0). MCC is 0 when undefined.
    ROC AUC, sensitivity, specificity and balanced accuracy are NaN when a class is absent.
    """
    return _metrics(*_check_inputs(labels, prob_malignant), threshold=threshold)


def _metrics(labels: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, float | int]:
    """classification_metrics without the input checks (run once per bootstrap resample)."""
    predicted = prob >= threshold
    positive = labels == 1
    tp = int(np.sum(predicted & positive))
    fn = int(np.sum(~predicted & positive))
    fp = int(np.sum(predicted & ~positive))
    tn = int(np.sum(~predicted & ~positive))
    n = len(labels)
    n_pos, n_neg = tp + fn, tn + fp

    def weighted(benign: float, malignant: float) -> float:
        """Average of a per-class value, each class weighted by its number of true images."""
        return (benign * n_neg + malignant * n_pos) / n

    # Python ints: the product of four counts cannot overflow.
    mcc_denominator = math.sqrt((tp + fp) * n_pos * n_neg * (tn + fn))
    sensitivity = tp / n_pos if n_pos else math.nan
    specificity = tn / n_neg if n_neg else math.nan
    return {
        "accuracy": (tp + tn) / n,
        "weighted_precision": weighted(_ratio(tn, tn + fn), _ratio(tp, tp + fp)),
        "weighted_recall": weighted(_ratio(tn, n_neg), _ratio(tp, n_pos)),
        "weighted_f1": weighted(_ratio(2 * tn, 2 * tn + fn + fp), _ratio(2 * tp, 2 * tp + fp + fn)),
        "mcc": _ratio(tp * tn - fp * fn, mcc_denominator),
        "roc_auc": _auc(labels, prob),
        "balanced_accuracy": (sensitivity + specificity) / 2,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "tp": tp,
        "n": n,
    }


def bootstrap_intervals(
    labels: np.ndarray,
    prob_malignant: np.ndarray,
    threshold: float,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of every rate metric, resampling test images with
    replacement from a generator seeded with ``seed`` (same inputs, same intervals).

    A resample holding one class only (no AUC, sensitivity or specificity) is drawn again, so
    every interval rests on ``n_boot`` resamples that hold both classes.
    """
    labels, prob = _check_inputs(labels, prob_malignant)
    if labels.min() == labels.max():
        raise DataError(
            f"bootstrap intervals need benign and malignant images, but all {len(labels)} "
            f"are {('benign', 'malignant')[labels[0]]}"
        )
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"need n_boot >= 1 and 0 < level < 1, got {n_boot} and {level}")
    rng = np.random.default_rng(seed)
    n = len(labels)
    values = {name: np.empty(n_boot) for name in RATE_METRICS}
    redrawn = 0
    b = 0
    while b < n_boot:
        index = rng.integers(0, n, size=n)
        resampled = labels[index]
        if resampled.min() == resampled.max():
            redrawn += 1
            continue
        metrics = _metrics(resampled, prob[index], threshold)
        for name in RATE_METRICS:
            values[name][b] = metrics[name]
        b += 1
    if redrawn:
        log.info("bootstrap: drew %d one-class resample(s) again", redrawn)
    tail = 100 * (1 - level) / 2
    return {
        name: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail)))
        for name, v in values.items()
    }


def agreement(prob_a: np.ndarray, prob_b: np.ndarray, threshold: float) -> dict[str, float | int]:
    """How closely two models agree on the same images (e.g. Keras vs quantised student).

    Keys: n, label_agreement (share of identical predicted labels), label_differences (count),
    max_abs_difference and mean_abs_difference of the malignant probabilities.
    """
    a = np.asarray(prob_a, dtype=np.float64)
    b = np.asarray(prob_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or len(a) == 0:
        raise ValueError(
            f"need two non-empty 1-D probability arrays of equal length, got {a.shape} and {b.shape}"
        )
    same = (a >= threshold) == (b >= threshold)
    difference = np.abs(a - b)
    return {
        "n": len(a),
        "label_agreement": float(same.mean()),
        "label_differences": int((~same).sum()),
        "max_abs_difference": float(difference.max()),
        "mean_abs_difference": float(difference.mean()),
    }


def evaluate_model(
    name: str,
    labels: np.ndarray,
    logits: np.ndarray,
    threshold: float,
    n_boot: int,
    seed: int,
    level: float = 0.95,
) -> dict:
    """``evaluate_probabilities`` of one model from its (n, 2) logits."""
    return evaluate_probabilities(
        name, labels, malignant_probability(logits), threshold, n_boot, seed, level
    )


def evaluate_probabilities(
    name: str,
    labels: np.ndarray,
    prob_malignant: np.ndarray,
    threshold: float,
    n_boot: int,
    seed: int,
    level: float = 0.95,
) -> dict:
    """Metrics and bootstrap intervals of one model's malignant probabilities.

    Returns {"model", "threshold", "metrics" (classification_metrics), "intervals" ({rate
    metric: [low, high]}), "bootstrap" ({"n_boot", "seed", "level"})}, ready for JSON.
    """
    intervals = bootstrap_intervals(
        labels, prob_malignant, threshold, n_boot=n_boot, seed=seed, level=level
    )
    return {
        "model": name,
        "threshold": float(threshold),
        "metrics": classification_metrics(labels, prob_malignant, threshold),
        "intervals": {metric: [low, high] for metric, (low, high) in intervals.items()},
        "bootstrap": {"n_boot": int(n_boot), "seed": int(seed), "level": float(level)},
    }


def write_evaluation(evaluation: dict, path: str | os.PathLike) -> None:
    """Write an evaluate_model result as indented JSON, atomically (NaN is refused, not written)."""
    write_text(json.dumps(evaluation, indent=2, allow_nan=False) + "\n", path)
