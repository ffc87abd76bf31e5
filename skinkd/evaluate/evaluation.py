"""Test-split predictions of any model file (Keras or TFLite) and their evaluation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from skinkd.data.classes import malignant_probability
from skinkd.evaluate.metrics import CONFUSION_COUNTS, RATE_METRICS, agreement, evaluate_model


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


def metrics_table(evals: list[dict]) -> pd.DataFrame:
    """One row per model: model, n, threshold, each rate metric with its <metric>_low and
    <metric>_high interval bounds, then the confusion counts tn, fp, fn, tp."""
    rows = []
    for evaluation in evals:
        metrics, intervals = evaluation["metrics"], evaluation["intervals"]
        row = {
            "model": evaluation["model"],
            "n": metrics["n"],
            "threshold": evaluation["threshold"],
        }
        for metric in RATE_METRICS:
            low, high = intervals[metric]
            row[metric] = metrics[metric]
            row[f"{metric}_low"] = low
            row[f"{metric}_high"] = high
        row.update({count: metrics[count] for count in CONFUSION_COUNTS})
        rows.append(row)
    return pd.DataFrame(rows)
