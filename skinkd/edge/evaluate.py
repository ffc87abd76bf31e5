"""``skinkd evaluate``: a model scored on a labelled set through ``predict``'s own decoding,
preprocessing and model, with intervals, and, against a run's images, the overlap check and
the metrics on the images that run never trained or was selected on."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from skinkd.data.labelled import LABEL_NAMES, LabelledSet, reject
from skinkd.edge.predict import Predictor, predict_paths
from skinkd.errors import DataError
from skinkd.evaluate.external import Reference, evaluate_external, overlap_counts, overlap_rows

SHOWN_METRICS = ("roc_auc", "sensitivity", "specificity", "balanced_accuracy", "accuracy", "mcc")


def format_report(models: Mapping[str, Mapping[str, Any]]) -> str:
    """The metrics of ``evaluate_external`` results by model, as a plain-text table with the
    95% intervals."""
    header = ["model", "images", "threshold", *SHOWN_METRICS]
    lines = []
    for model, subsets in models.items():
        for subset, entry in subsets.items():
            who = f"{model} ({subset.replace('_', ' ')})"
            size = f"{entry['n']} ({entry['benign']}/{entry['malignant']})"
            if "thresholds" not in entry:
                lines.append([who, size, "-", entry["note"]])
                continue
            for name, evaluation in entry["thresholds"].items():
                cells = [who, size, f"{name} ({evaluation['threshold']:.3f})"]
                for metric in SHOWN_METRICS:
                    value = evaluation["metrics"][metric]
                    low, high = evaluation["intervals"][metric]
                    cells.append(
                        "n/a" if math.isnan(value) else f"{value:.3f} [{low:.3f}, {high:.3f}]"
                    )
                lines.append(cells)
    widths = [max(len(row[i]) for row in [header, *lines] if i < len(row)) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
        for row in [header, *lines]
    ]
    return "\n".join(text) + f"\n(images: benign/{LABEL_NAMES[1]}; 95% bootstrap intervals)\n"


def score_set(
    predictor: Predictor,
    labelled: LabelledSet,
    *,
    reference: Reference | None = None,
    hash_distance: int = 2,
    on_bad_image: str = "error",
    n_boot: int = 1000,
    seed: int = 0,
    workers: int = 1,
) -> dict[str, Any]:
    """Score a model on a labelled set at its card's threshold and at 0.5, with intervals;
    with a run's ``reference``, also without the images that run trained or selected on.

    Returns {"model", "images", "rejected", "overlap" (counts, or None), "models": {model
    name: evaluate_external}} and, as "rows", one record per image (id, label, probability
    and, with a reference, its overlap columns)."""
    paths = [Path(image.path) for image in labelled.images]
    rows = list(predict_paths(predictor, paths, workers=workers, hashes=reference is not None))
    bad = [(image.image_id, row["error"]) for image, row in zip(labelled.images, rows, strict=True) if row["error"]]
    reject(bad, on_bad_image, "image")
    kept = [(image, row) for image, row in zip(labelled.images, rows, strict=True) if not row["error"]]
    if not kept:
        raise DataError("no image of the set could be read")
    labels = np.array([image.label for image, _ in kept])
    prob = np.array([row["prob_malignant"] for _, row in kept])
    records = [
        {"image_id": image.image_id, "label": image.label, "prob_malignant": round(row["prob_malignant"], 6)}
        for image, row in kept
    ]
    seen, counts = None, None
    if reference is not None:
        overlap = overlap_rows(
            [image.image_id for image, _ in kept],
            [row["sha256"] for _, row in kept],
            [row["phash"] for _, row in kept],
            reference,
            hash_distance,
        )
        seen = np.array([row["seen"] for row in overlap])
        counts = overlap_counts(overlap, reference.split_names)
        records = [record | row for record, row in zip(records, overlap, strict=True)]
    name = predictor.model_path.name
    thresholds = {"validation": predictor.threshold, "0.5": 0.5}
    return {
        "model": str(predictor.model_path),
        "images": len(kept),
        "rejected": [{"image": where, "reason": reason} for where, reason in labelled.rejected + bad],
        "overlap": counts,
        "models": {
            name: evaluate_external(
                name, labels, prob, thresholds, seen=seen, n_boot=n_boot, seed=seed
            )
        },
        "rows": records,
    }
