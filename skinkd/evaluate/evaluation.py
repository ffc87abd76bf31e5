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


HEADLINE_MODELS = ("student", "student_int8", "teacher")
SUBSET_NAMES = {"all": "", "without_overlap": ", unseen images"}


def _auc_cell(metrics: Mapping[str, Any], intervals: Mapping[str, Any]) -> str:
    low, high = intervals["roc_auc"]
    return f"{metrics['roc_auc']:.3f} [{low:.3f}, {high:.3f}]"


def headline_table(
    evals: Mapping[str, Mapping[str, Any]], externals: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """ROC AUC with its 95% interval of the student, its int8 export and the teacher: one
    row for the test split (``evals``: model -> evaluation), and for each external set
    (``externals``: set -> its metrics.json) one for the whole set and one for the images
    the run never trained or was selected on. A subset of one class reads n/a."""
    rows = [
        {"data": "test split", "images": evals["student"]["metrics"]["n"]}
        | {m: _auc_cell(evals[m]["metrics"], evals[m]["intervals"]) for m in HEADLINE_MODELS}
    ]
    for name, external in externals.items():
        models = external["models"]
        for subset, suffix in SUBSET_NAMES.items():
            if subset not in models["student"]:
                continue
            row = {"data": f"{name}{suffix}", "images": models["student"][subset]["n"]}
            for model in HEADLINE_MODELS:
                entry = models[model][subset]
                if "thresholds" not in entry:
                    row[model] = "n/a"
                    continue
                scored = entry["thresholds"]["validation"]
                row[model] = _auc_cell(scored["metrics"], scored["intervals"])
            rows.append(row)
    return pd.DataFrame(rows, columns=["data", "images", *HEADLINE_MODELS])
