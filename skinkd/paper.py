"""The paper's headline figures (SPEC), set beside ours in the report; not used in training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

PAPER_FIGURES = {
    "teacher": {"ham10000": (0.9396, 0.8735), "kaggle": (0.9712, 0.9424)},
    "student": {"ham10000": (0.9875, 0.9719), "kaggle": (0.9894, 0.9787)},
}
# The paper's sizes of the student: saved Keras model and float16 TFLite.
PAPER_BYTES = {"student": 2_030_000, "student_fp16": 469_770}


def paper_comparison(evals: Sequence[Mapping]) -> pd.DataFrame:
    """Our test accuracy and MCC (with intervals) beside the paper's, for teacher and student."""
    rows = []
    by_model = {e["model"]: e for e in evals}
    for model, figures in PAPER_FIGURES.items():
        ours = by_model[model]
        row = {"model": model}
        for metric in ("accuracy", "mcc"):
            low, high = ours["intervals"][metric]
            row[f"ours_{metric}"] = round(ours["metrics"][metric], 4)
            row[f"ours_{metric}_95ci"] = f"[{low:.4f}, {high:.4f}]"
        for dataset, (accuracy, mcc) in figures.items():
            row[f"paper_{dataset}_accuracy"] = accuracy
            row[f"paper_{dataset}_mcc"] = mcc
        rows.append(row)
    return pd.DataFrame(rows)


def model_sizes(files: Mapping[str, str], evals: Mapping[str, Mapping]) -> pd.DataFrame:
    """Size of each student file beside the paper's, with its agreement with the Keras model.

    ``files`` maps keras / tflite_fp16 / tflite_int8 to paths; ``evals`` maps model names to
    their evaluations.
    """
    models = {"keras": "student", "tflite_fp16": "student_fp16", "tflite_int8": "student_int8"}
    rows = []
    for key, path in files.items():
        model = models[key]
        agreement = evals.get(model, {}).get("agreement_with_student", {})
        rows.append(
            {
                "model": model,
                "file": Path(path).name,
                "bytes": Path(path).stat().st_size,
                "paper_bytes": PAPER_BYTES.get(model),
                "label_agreement": agreement.get("label_agreement"),
                "max_prob_difference": agreement.get("max_abs_difference"),
            }
        )
    return pd.DataFrame(rows)
