"""Scoring models under the acquisition shifts of ``skinkd.evaluate.shifts``: ROC AUC per
model, shift and severity, and each model's summary (clean, mean over all shifted
conditions, the drop, the worst condition)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from skinkd.data.images import read_image
from skinkd.data.preprocess import Preprocessing, preprocess_image
from skinkd.data.split import subsample_indices
from skinkd.evaluate.metrics import roc_auc
from skinkd.evaluate.shifts import SEVERITIES, SHIFTS, shift_image

log = logging.getLogger(__name__)

CLEAN = "clean"
# A model: the preprocessing it was trained with, and uint8 batch -> P(malignant).
ShiftModel = tuple[Preprocessing, Callable[[np.ndarray], np.ndarray]]


@dataclass(frozen=True)
class ShiftSet:
    """The raw images and labels a model is benchmarked on, with the preprocessing it was
    trained with and the benchmark's seed."""

    images: Sequence[np.ndarray]
    labels: np.ndarray
    preprocessing: Preprocessing
    seed: int

    def summary(self, probability: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
        """``summarise_shifts`` of one model (a preprocessed batch -> P(malignant))."""
        table = score_shifts(self.images, self.labels, {"model": (self.preprocessing, probability)}, self.seed)
        return summarise_shifts(table)["model"]


def split_images(
    manifest: pd.DataFrame, splits: pd.DataFrame, split: str, max_images: int | None, seed: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """The raw images and labels of a stratified, seeded sample of at most ``max_images`` of
    one split (in the splits table's order)."""
    rows = splits[splits["split"] == split]
    keep = subsample_indices(rows["label"].to_numpy(), max_images, seed)
    rows = rows.iloc[sorted(keep)]
    paths = manifest.set_index("image_id").loc[rows["image_id"], "path"]
    return [read_image(path) for path in paths], rows["label"].to_numpy()


def conditions() -> list[tuple[str, int]]:
    """(shift, severity) of the benchmark, the clean images (severity 0) first."""
    return [(CLEAN, 0)] + [(shift, severity) for shift in SHIFTS for severity in SEVERITIES]


def score_shifts(
    images: Sequence[np.ndarray],
    labels: np.ndarray,
    models: Mapping[str, ShiftModel],
    seed: int,
) -> pd.DataFrame:
    """ROC AUC of every model under every condition: the raw uint8 RGB ``images`` shifted,
    then preprocessed as each model was trained (models with the same preprocessing share
    the batch). Rows: model, shift, severity, roc_auc."""
    labels = np.asarray(labels)
    rows = []
    for shift, severity in conditions():
        shifted = (
            list(images)
            if shift == CLEAN
            else [shift_image(im, shift, severity, seed, i) for i, im in enumerate(images)]
        )
        batches: dict[Preprocessing, np.ndarray] = {}
        for name, (params, probability) in models.items():
            if params not in batches:
                batches[params] = np.stack([preprocess_image(im, params) for im in shifted])
            auc = roc_auc(labels, probability(batches[params]))
            rows.append({"model": name, "shift": shift, "severity": severity, "roc_auc": auc})
        log.info("%s %d: %s", shift, severity,
                 ", ".join(f"{r['model']} {r['roc_auc']:.3f}" for r in rows[-len(models):]))  # fmt: skip
    return pd.DataFrame(rows)


def summarise_shifts(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per model: clean ROC AUC, the mean over every shift and severity, its drop from
    clean, the mean per shift, and the worst condition."""
    summary = {}
    for model, rows in table.groupby("model", sort=False):
        clean = float(rows.loc[rows["shift"] == CLEAN, "roc_auc"].iloc[0])
        shifted = rows[rows["shift"] != CLEAN]
        worst = shifted.loc[shifted["roc_auc"].idxmin()]
        mean = float(shifted["roc_auc"].mean())
        summary[model] = {
            "clean_roc_auc": round(clean, 4),
            "mean_shifted_roc_auc": round(mean, 4),
            "drop": round(clean - mean, 4),
            "per_shift": {s: round(float(v), 4)
                          for s, v in shifted.groupby("shift", sort=False)["roc_auc"].mean().items()},  # fmt: skip
            "worst": {"shift": worst["shift"], "severity": int(worst["severity"]),
                      "roc_auc": round(float(worst["roc_auc"]), 4)},  # fmt: skip
        }
    return summary
