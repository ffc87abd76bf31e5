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

import numpy as np
import pandas as pd

from skinkd.checkpoint import Checkpoint
from skinkd.config import TWO_CACHES, needs_two_caches
from skinkd.data.photometric import Photometric
from skinkd.errors import ConfigError
from skinkd.evaluate.shift_benchmark import ShiftSet

log = logging.getLogger(__name__)

BASELINE = "baseline"
STAGES = ("closing", "bilateral", "highlight", "unsharp")
# Preprocessing variants: the run's own ("all"), none of the four optional stages, one left
# out, all four switched on ("six_stages": for a run whose own switches some off), all with a
# linear resize (which aliases when it shrinks; the default shrinks by area), or the run's own
# with a colour constancy method (the student's alone: the teacher's soft labels are the run's).
LINEAR_RESIZE = "linear_resize"
SIX_STAGES = "six_stages"
COLOR_CONSTANCY_VARIANTS = ("shades_of_gray", "gray_world", "max_rgb")
PREPROCESSING_VARIANTS = (
    "all",
    "none",
    *(f"no_{stage}" for stage in STAGES),
    LINEAR_RESIZE,
    SIX_STAGES,
    *COLOR_CONSTANCY_VARIANTS,
)


# The augment keys the photometric factor sets.
PHOTOMETRIC_KEYS = ("illuminant", "exposure", "blur", "gamma", "contrast", "vignetting")
# Factors that set one augment key each, on top of the run's ranges or the photometric
# factor's: which part of the photometric augmentation does the work.
AUGMENT_FACTORS = (*PHOTOMETRIC_KEYS, "magnification")

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
    if variant in COLOR_CONSTANCY_VARIANTS:
        section["color_constancy"] = {**section.get("color_constancy", {}), "method": variant}
    if variant == SIX_STAGES:
        for stage in STAGES:
            section[stage] = {**section.get(stage, {}), "enabled": True}
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
    augment: Mapping[str, Any] | None = None,
    photometric: Mapping[str, Any] | None = None,
    combinations: Sequence[Mapping[str, Any]] = (),
) -> dict[str, dict[str, Any]]:
    """Cell id -> {factor, value, student settings, preprocessing variant, augment overrides}.

    Every value of every factor is tried with the others at the chosen ``student`` values;
    cells equal to the chosen configuration collapse into one ``baseline`` cell. Epoch counts
    (the factor's values and the baseline's) are multiplied by ``epoch_scale`` (at least 1)
    so a CPU budget can shrink the grid without changing its shape. The ``image_size``
    factor tries other input sides than the run's ``image_size``: its cells train on the
    run's preprocessing at that side (variant ``size_<side>``, a cache of its own). The
    ``photometric`` factor's cells train with the ``photometric`` ranges (true) or with those
    keys off (false) in place of the run's photometric ranges; the run's other ``augment``
    settings (flips, rotations) stay, and the value the run has is its baseline.
    The cells of a factor named after one augment key (``vignetting``, ``magnification``,
    ...: ``AUGMENT_FACTORS``) train with that key at its value, on top of the run's ranges,
    or of the photometric factor's in a combination.
    Each of ``combinations`` (factor -> value, ``preprocessing`` among the factors) is one
    more cell with all its values at once, e.g. no distillation for 100 epochs; its id joins
    the single factors' ids with ``+``, in alphabetical order.
    """

    def settings(overrides: Mapping[str, Any]) -> dict[str, Any]:
        chosen = {**student, **overrides}
        chosen["epochs"] = max(1, round(chosen["epochs"] * epoch_scale))
        return chosen

    def cell(overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The student settings, preprocessing variant and augment ranges of these values."""
        if needs_two_caches(overrides, image_size):
            raise ValueError(f"ablation cell {dict(overrides)}: {TWO_CACHES}")
        chosen: dict[str, Any] = {"preprocessing": "all"}
        student_overrides, augment_overrides = {}, {}
        # The photometric factor's ranges first, so that a single key set beside it wins.
        for factor, value in sorted(overrides.items(), key=lambda item: item[0] != "photometric"):
            if factor == "photometric":
                ranges = dict(photometric or {}) if value else dict.fromkeys(PHOTOMETRIC_KEYS, 0)
                augment_overrides.update(ranges)
            elif factor in AUGMENT_FACTORS:
                augment_overrides[factor] = value
            elif factor in ("image_size", "preprocessing"):
                variant = f"{SIZE_PREFIX}{value}" if factor == "image_size" else value
                if variant in ("all", f"{SIZE_PREFIX}{image_size}"):
                    continue
                chosen["preprocessing"] = variant
            else:
                student_overrides[factor] = value
        run = augment or {}
        if Photometric.from_config({**run, **augment_overrides}) != Photometric.from_config(run):
            chosen["augment"] = augment_overrides
        return {"student": settings(student_overrides), **chosen}

    baseline = cell({})
    cells = {BASELINE: {"factor": BASELINE, "value": "", **baseline}}

    def add(factor: str, value: Any, overrides: Mapping[str, Any], cell_id: str) -> None:
        chosen = cell(overrides)
        if chosen != baseline:  # the chosen configuration itself is the baseline cell
            cells[cell_id] = {"factor": factor, "value": value, **chosen}

    for factor, values in factors.items():
        for value in values:
            add(factor, value, {factor: value}, _cell_id(factor, value))
    for variant in preprocessing:
        add("preprocessing", variant, {"preprocessing": variant}, _cell_id("preprocessing", variant))
    for combination in combinations:
        ordered = dict(sorted(combination.items()))  # one id however the config orders it
        add(
            "+".join(ordered),
            "+".join(str(value) for value in ordered.values()),
            ordered,
            "+".join(_cell_id(factor, value) for factor, value in ordered.items()),
        )
    return cells


def cell_seeds(
    cells: Mapping[str, Any], seeds: Sequence[int], overrides: Mapping[str, Sequence[int]]
) -> dict[str, list[int]]:
    """Cell id -> the seeds it is trained with: ``seeds``, or the cell's own in ``overrides``
    (``ablation.cell_seeds``: e.g. one seed for a long curve whose chosen point has three)."""
    unknown = sorted(set(overrides) - set(cells))
    if unknown:
        raise ConfigError(f"ablation.cell_seeds.{unknown[0]}: no such cell; the grid's cells "
                          f"are {', '.join(cells)}")  # fmt: skip
    return {cell: list(overrides.get(cell, seeds)) for cell in cells}


def summarise(results: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each cell's test metrics, and of its
    validation, shift and external-set scores where it has them (``<set>_roc_auc``)."""
    frame = pd.DataFrame(
        [
            {
                "cell": r["cell"],
                "factor": r["factor"],
                "value": str(r["value"]),
                "seed": r["seed"],
                **{k: r["test"][k] for k in ("roc_auc", "accuracy", "mcc", "balanced_accuracy")},
                **({"val_roc_auc": r["val"]["roc_auc"]} if "val" in r else {}),
                **_shift_columns(r.get("val_shifts")),
                **{f"{name}_roc_auc": e["roc_auc"] for name, e in r.get("external", {}).items()},
                "train_seconds": r["train_seconds"],
            }
            for r in results
        ]
    )
    columns = ("roc_auc", "accuracy", "mcc", "balanced_accuracy", "val_roc_auc",
               "val_shifted_roc_auc", "val_shift_drop")  # fmt: skip
    external = [c for c in frame if c.endswith("_roc_auc") and c not in columns]
    metrics = [column for column in (*columns, *external, "train_seconds") if column in frame]
    grouped = frame.groupby(["cell", "factor", "value"], sort=False)
    table = grouped[metrics].agg(["mean", "std"])
    table.columns = [f"{metric}_{stat}" for metric, stat in table.columns]
    table.insert(0, "seeds", grouped.size())
    return table.reset_index()


def _shift_columns(shifts: Mapping[str, Any] | None) -> dict[str, float]:
    """A cell's validation shift benchmark as table columns (none where it was not run)."""
    if not shifts:
        return {}
    return {"val_shifted_roc_auc": shifts["mean_shifted_roc_auc"], "val_shift_drop": shifts["drop"]}


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
    shift_set: ShiftSet | None = None,
    external: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Train one cell's student for one seed (resumable with a ``checkpoint``) and score it
    on the validation and test splits; with ``milestones``, also the student it would have
    kept had it trained for each of those epoch counts (below its own), on both splits
    (``milestones`` in the result, the final student's last); with a ``shift_set`` (raw
    validation images), its acquisition-shift summary there (``val_shifts``), the number a
    setting that should hold up on other cameras is chosen on; with ``external`` (set name ->
    images preprocessed as the cell's, labels), its ROC AUC on each set, for reporting."""
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from skinkd.data.cache import load_splits
    from skinkd.data.classes import binary_logits, malignant_mask, malignant_probability
    from skinkd.evaluate.metrics import classification_metrics, roc_auc
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
        # A resumed job finds the snapshots of the epochs before its checkpoint beside it.
        kept = Path(checkpoint.folder) / f"snapshots-{checkpoint.key}" if checkpoint else Path(scratch)
        snapshots = {e: kept / f"epoch_{e}.keras" for e in milestones if e < epochs}
        kept.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        student, train_count = distil_from_cache(
            shard_paths,
            splits,
            soft_labels_path,
            student=cell["student"],
            mapping=mapping,
            augment={**augment, **cell.get("augment", {})},
            seed=seed,
            out_model=Path(scratch) / "student.keras",
            out_history=Path(scratch) / "history.csv",
            max_train_images=max_train_images,
            checkpoint=checkpoint,
            snapshots=snapshots,
        )
        seconds = time.perf_counter() - start
        snapshot_models = {e: load_model(path) for e, path in snapshots.items()}
        if checkpoint:
            shutil.rmtree(kept)
            checkpoint.remove()
        scores = [
            {"epochs": e, "val_roc_auc": auc(model, "val", True),
             "test_roc_auc": auc(model, "test", True)}
            for e, model in snapshot_models.items()
        ]  # fmt: skip

    def probability(images):
        return malignant_probability(keras_logits(student, images))

    def external_scores(sets: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict]:
        found = {}
        for name, (images, labels) in sets.items():
            if len(np.unique(labels)) < 2:
                log.info("external set %s: one class only, no ROC AUC", name)
                continue
            found[name] = {"images": len(labels), "roc_auc": roc_auc(labels, probability(images))}
        return found

    val_images, val_labels, _ = data["val"]
    val = classification_metrics(val_labels, probability(val_images), threshold)
    test = classification_metrics(test_labels, probability(test_images), threshold)
    scores.append({"epochs": epochs, "val_roc_auc": val["roc_auc"], "test_roc_auc": test["roc_auc"]})
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
        "val": val,
        "test": test,
        "milestones": scores,
        **({"val_shifts": shift_set.summary(probability)} if shift_set else {}),
        **({"external": external_scores(external)} if external else {}),
    }
