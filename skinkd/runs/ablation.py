"""The ablation grid: one factor at a time around the chosen configuration (paper Tables 3
and 4), plus an eighth factor the paper never tested, the preprocessing itself.

The grid is plain data (cells with ids), built without Keras so the Snakefile can expand it
into one job per cell and seed.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from skinkd.checkpoint import Checkpoint

log = logging.getLogger(__name__)

BASELINE = "baseline"
STAGES = ("closing", "bilateral", "highlight", "unsharp")
# Preprocessing variants: all six stages, none but resize (and rescale), one left out, or
# all six with a linear resize (which aliases when it shrinks; the default shrinks by area).
LINEAR_RESIZE = "linear_resize"
PREPROCESSING_VARIANTS = ("all", "none", *(f"no_{stage}" for stage in STAGES), LINEAR_RESIZE)


# The image_size factor's cells: the run's preprocessing at another side (``size_<side>``).
SIZE_PREFIX = "size_"


def variant_image_size(variant: str, image_size: int) -> int:
    """The input side of a preprocessing variant: its own for ``size_<side>``, otherwise
    the run's ``image_size``."""
    return int(variant[len(SIZE_PREFIX):]) if variant.startswith(SIZE_PREFIX) else image_size


def preprocessing_variant(preprocess: Mapping[str, Any], variant: str) -> dict[str, Any]:
    """The ``preprocess`` config section with the stages of ``variant`` switched off (a
    ``size_<side>`` variant keeps them all; ``variant_image_size`` gives its side)."""
    if variant.startswith(SIZE_PREFIX) and variant[len(SIZE_PREFIX):].isdigit():
        return copy.deepcopy(dict(preprocess))
    if variant not in PREPROCESSING_VARIANTS:
        raise ValueError(f"unknown preprocessing variant {variant!r}")
    section = copy.deepcopy(dict(preprocess))
    if variant == LINEAR_RESIZE:
        section["resize"] = {**section.get("resize", {}), "interpolation": "linear"}
    off = STAGES if variant == "none" else [variant[3:]] if variant.startswith("no_") else []
    for stage in off:
        section[stage] = {**section.get(stage, {}), "enabled": False}
    return section


def _cell_id(factor: str, value: Any) -> str:
    return f"{factor}-{value}"


def ablation_cells(
    student: Mapping[str, Any],
    factors: Mapping[str, Sequence[Any]],
    preprocessing: Sequence[str],
    epoch_scale: float = 1.0,
    image_size: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Cell id -> {factor, value, student settings, preprocessing variant}.

    Every value of every factor is tried with the others at the chosen ``student`` values;
    cells equal to the chosen configuration collapse into one ``baseline`` cell. Epoch counts
    (the factor's values and the baseline's) are multiplied by ``epoch_scale`` (at least 1)
    so a CPU budget can shrink the grid without changing its shape. The ``image_size``
    factor tries other input sides than the run's ``image_size``: its cells train on the
    run's preprocessing at that side (variant ``size_<side>``, a cache of its own).
    """

    def settings(overrides: Mapping[str, Any]) -> dict[str, Any]:
        chosen = {**student, **overrides}
        chosen["epochs"] = max(1, round(chosen["epochs"] * epoch_scale))
        return chosen

    cells = {
        BASELINE: {
            "factor": BASELINE,
            "value": "",
            "student": settings({}),
            "preprocessing": "all",
        }
    }
    for factor, values in factors.items():
        for value in values:
            if factor == "image_size":
                if value != image_size:
                    cells[_cell_id(factor, value)] = {
                        "factor": factor,
                        "value": value,
                        "student": settings({}),
                        "preprocessing": f"{SIZE_PREFIX}{value}",
                    }
                continue
            if value == student[factor]:
                continue
            cells[_cell_id(factor, value)] = {
                "factor": factor,
                "value": value,
                "student": settings({factor: value}),
                "preprocessing": "all",
            }
    for variant in preprocessing:
        if variant == "all":
            continue
        cells[_cell_id("preprocessing", variant)] = {
            "factor": "preprocessing",
            "value": variant,
            "student": settings({}),
            "preprocessing": variant,
        }
    return cells


def summarise(results: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each cell's test metrics."""
    frame = pd.DataFrame(
        [
            {
                "cell": r["cell"],
                "factor": r["factor"],
                "value": str(r["value"]),
                "seed": r["seed"],
                **{k: r["test"][k] for k in ("roc_auc", "accuracy", "mcc", "balanced_accuracy")},
                "train_seconds": r["train_seconds"],
            }
            for r in results
        ]
    )
    metrics = ["roc_auc", "accuracy", "mcc", "balanced_accuracy", "train_seconds"]
    grouped = frame.groupby(["cell", "factor", "value"], sort=False)
    table = grouped[metrics].agg(["mean", "std"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    table.insert(0, "seeds", grouped.size())
    return table.reset_index()


def summarise_milestones(results: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each cell's validation and test ROC AUC at
    each of its epoch counts (``run_cell``'s milestones)."""
    frame = pd.DataFrame(
        [
            {"cell": r["cell"], "factor": r["factor"], "value": str(r["value"]), **scores}
            for r in results
            for scores in r["milestones"]
        ]
    )
    grouped = frame.groupby(["cell", "factor", "value", "epochs"], sort=False)
    table = grouped[["val_roc_auc", "test_roc_auc"]].agg(["mean", "std"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    table.insert(0, "seeds", grouped.size())
    return table.reset_index().sort_values(["cell", "epochs"], kind="stable")


def run_cell(
    cell_id: str,
    cell: Mapping[str, Any],
    seed: int,
    shard_paths: Sequence[str],
    splits: pd.DataFrame,
    soft_labels_path: str,
    mapping: str,
    augment: Mapping[str, Any],
    max_train_images: int | None,
    threshold: float,
    checkpoint: Checkpoint | None = None,
    milestones: Sequence[int] = (),
) -> dict[str, Any]:
    """Train one cell's student for one seed (resumable with a ``checkpoint``) and score it
    on the test split; with ``milestones``, also the student it would have kept had it
    trained for each of those epoch counts (below its own), on the validation and test
    splits (``milestones`` in the result, the final student's last)."""
    import tempfile
    import time
    from pathlib import Path

    from skinkd.data.cache import load_splits
    from skinkd.data.classes import binary_logits, malignant_mask, malignant_probability
    from skinkd.evaluate.metrics import classification_metrics
    from skinkd.nn.models import keras_logits, load_model
    from skinkd.student.train import distil_from_cache

    data = load_splits(shard_paths, splits, ("val", "test"))
    test_images, test_labels, _ = data["test"]
    epochs = cell["student"]["epochs"]
    malignant = malignant_mask(cell["student"]["classes"], mapping)

    def auc(model, split: str, collapse: bool) -> float:
        images, labels, _ = data[split]
        logits = keras_logits(model, images)
        logits = binary_logits(logits, malignant) if collapse else logits
        return classification_metrics(labels, malignant_probability(logits), threshold)["roc_auc"]

    with tempfile.TemporaryDirectory() as scratch:
        snapshots = {e: Path(scratch) / f"epoch_{e}.keras" for e in milestones if e < epochs}
        start = time.perf_counter()
        student, train_count = distil_from_cache(
            shard_paths,
            splits,
            soft_labels_path,
            student=cell["student"],
            mapping=mapping,
            augment=augment,
            seed=seed,
            out_model=Path(scratch) / "student.keras",
            out_history=Path(scratch) / "history.csv",
            max_train_images=max_train_images,
            checkpoint=checkpoint,
            snapshots=snapshots,
        )
        seconds = time.perf_counter() - start
        snapshot_models = {e: load_model(path) for e, path in snapshots.items()}
        scores = [
            {"epochs": e, "val_roc_auc": auc(model, "val", True),
             "test_roc_auc": auc(model, "test", True)}
            for e, model in snapshot_models.items()
        ]  # fmt: skip
    prob = malignant_probability(keras_logits(student, test_images))
    scores.append(
        {"epochs": epochs, "val_roc_auc": auc(student, "val", False),
         "test_roc_auc": auc(student, "test", False)}
    )  # fmt: skip
    log.info("cell %s seed %d: %.0f s", cell_id, seed, seconds)
    return {
        "cell": cell_id,
        "factor": cell["factor"],
        "value": cell["value"],
        "seed": seed,
        "student": dict(cell["student"]),
        "preprocessing": cell["preprocessing"],
        "train_images": int(train_count),
        "train_seconds": round(seconds, 1),
        "test": classification_metrics(test_labels, prob, threshold),
        "milestones": scores,
    }
