"""docs/results.md from the runs' own outputs (eval JSON, ablation and leakage tables,
Snakemake benchmark files), never typed by hand.

    snakemake suite --cores 2       (runs every run first, then this)
    .venv/bin/python -m skinkd.runs.results_doc [--runs docs/runs.yaml] [--out docs/results.md]

``docs/runs.yaml`` lists each run (see skinkd.runs.suite). Runs whose results are missing are
listed as not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from skinkd.atomic import write_text
from skinkd.evaluate.external import ordered_splits
from skinkd.runs.archive import read_archive
from skinkd.runs.paper import PAPER_FIGURES
from skinkd.runs.readings import (
    ADDITION_READINGS,
    CELL_READINGS,
    addition_reading,
    cell_reading,
    external_reading,
    factor_readings,
    largest_effects,
    pair_readings,
    paper_readings,
    target_reading,
    teacher_gap_reading,
    threshold_reading,
    validation_choices,
)
from skinkd.runs.suite import (
    display_command,
    job_seconds,
    load_notes,
    load_runs,
    wall_seconds,
)

MODELS = ("teacher", "student", "student_fp16", "student_int8")
# Above this share of the machine's CPU taken by other processes, a run's times are not quoted
# as timings (a 2-core machine's own housekeeping stays well below it).
BESIDE_OTHER_WORK = 0.1


def _ci(evaluation: Mapping[str, Any], metric: str) -> str:
    value = evaluation["metrics"][metric]
    low, high = evaluation["intervals"][metric]
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def load_run(results: Path, name: str) -> dict[str, Any] | None:
    run = results / name
    ablation = run / "ablation" / "ablation.csv"
    epochs = run / "ablation" / "epochs.csv"
    # A factor study runs only the ablation grid: no eval folder, its table is the result.
    if not (run / "eval").is_dir() and not ablation.exists():
        return None
    evals = {m: json.loads((run / "eval" / f"{m}.json").read_text()) for m in MODELS
             if (run / "eval" / f"{m}.json").exists()}  # fmt: skip
    card = run / "export" / "model_card.json"
    calibration = run / "eval" / "calibration.json"
    return {
        "calibration": json.loads(calibration.read_text()) if calibration.exists() else None,
        "image_size": json.loads(card.read_text())["image_size"] if card.exists() else None,
        "ablation_budget": ablation_budget(run) if ablation.exists() else None,
        "evals": evals,
        "ablation": pd.read_csv(ablation) if ablation.exists() else None,
        "epochs": pd.read_csv(epochs) if epochs.exists() else None,
        "job_seconds": job_seconds(run),
        "wall_seconds": wall_seconds(run),
        "test_images": next(iter(evals.values()))["metrics"]["n"] if evals else 0,
        "external": {
            path.parent.name: json.loads(path.read_text())
            for path in sorted((run / "external").glob("*/metrics.json"))
        },
        "shifts": {
            path.parent.name: json.loads(path.read_text())
            for path in sorted((run / "shifts").glob("*/summary.json"))
        },
    }


def _gpu() -> str:
    return "an NVIDIA GPU" if shutil.which("nvidia-smi") else "no GPU"


def _paper(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.4f}"


def ablation_budget(run: Path) -> dict[str, Any]:
    """What the grid's cells trained on (images; epochs of each cell, after the budget's
    scaling), and the grid's own wall time."""
    cells = {}
    for folder in sorted((run / "ablation" / "cells").iterdir()):
        first = next(folder.glob("seed_*.json"), None)
        if first is not None:
            cells[folder.name] = json.loads(first.read_text())
    return {
        "train_images": cells["baseline"]["train_images"],
        "epochs": {cell: result["student"]["epochs"] for cell, result in cells.items()},
        "baseline": {**cells["baseline"]["student"], "preprocessing": cells["baseline"]["preprocessing"]},
        "wall_seconds": wall_seconds(run, "benchmarks/ablation/*.tsv"),
    }


def _provenance(record: Mapping[str, Any] | None) -> str:
    """When and with which code an archived run finished."""
    if not record:
        return ""
    text = f" Finished {record['finished']} at commit {record.get('commit', 'unknown')}."
    share = record.get("other_cpu_share")
    if share is not None and share > BESIDE_OTHER_WORK:
        text += (f" While it ran, other processes took {share:.0%} of the machine's CPU, so "
                 "its times above were not measured alone.")  # fmt: skip
    return text


def metrics_section(label: str, command: str, run: Mapping[str, Any]) -> list[str]:
    lines = [
        f"### {label}",
        "",
        f"`{command}`: {run['wall_seconds'] / 60:.1f} min wall "
        f"({run['job_seconds'] / 60:.1f} min of job time)"
        + (f", {run['test_images']} test images." if run["evals"] else ", the ablation grid only.")
        + _provenance(run.get("record")),
    ]
    if run["evals"]:
        lines += ["", "| model | ROC AUC [95% CI] | accuracy | MCC | sensitivity | specificity |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
    for model, evaluation in run["evals"].items():
        cells = [_ci(evaluation, m) for m in ("roc_auc", "accuracy", "mcc")]
        cells += [f"{evaluation['metrics'][m]:.3f}" for m in ("sensitivity", "specificity")]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    agreement = run["evals"].get("student_int8", {}).get("agreement_with_student")
    if agreement:
        lines += ["", f"int8 vs Keras student: {agreement['label_agreement']:.3f} of labels "
                  f"identical, largest probability difference {agreement['max_abs_difference']:.3f}."]  # fmt: skip
    calibration = run["calibration"]
    if calibration:
        lines += ["", f"Deployment threshold (model card): {calibration['threshold']:.3f}, chosen on "
                  f"the validation split for sensitivity {calibration['target_sensitivity']:.2f}; on "
                  f"the test split it gives sensitivity {calibration['test']['sensitivity']:.3f} and "
                  f"specificity {calibration['test']['specificity']:.3f}. Expected calibration "
                  f"error of P(malignant) on test: {calibration['test_ece']:.3f}."]  # fmt: skip
    ablation = run["ablation"]
    if ablation is not None:
        budget = run["ablation_budget"]
        lines += ["", f"Ablation grid budget: each cell trains the student on "
                  f"{budget['train_images']} training images"
                  + (f" at {run['image_size']} px" if run["image_size"] else "")
                  + f" for {budget['epochs']['baseline']} epochs in the baseline "
                  f"(the epochs column: every epoch count scaled alike), "
                  + seeds_phrase(ablation["seeds"]) + "; the grid "
                  f"took {budget['wall_seconds'] / 60:.1f} min wall on this machine. The paper's "
                  "accuracy (its Table 3: 224 px, 70 epochs, image-level split, paper mapping) "
                  "is beside each cell it tested."]  # fmt: skip
        lines += ablation_rows(ablation, budget["epochs"])
    lines += epochs_section(run.get("epochs"))
    lines += shifts_section(run.get("shifts") or {})
    for name, external in run.get("external", {}).items():
        lines += external_section(name, external)
    return lines + [""]


def seeds_phrase(seeds: pd.Series) -> str:
    """How many seeds the cells have: one count, or the usual one and the exceptions."""
    counts = seeds.astype(int)
    usual = int(counts.mode().max())
    fewer = int((counts != usual).sum())
    return f"{usual} seeds" + (f" ({fewer} cells fewer or more: the seeds column)" if fewer else "")


def ablation_rows(ablation: pd.DataFrame, epochs: Mapping[str, int]) -> list[str]:
    """The grid's table: test metrics, and where the cells were scored on the validation
    split (the columns a setting is chosen on), its ROC AUC and its mean under the shift
    benchmark, and on external sets (for reporting), their ROC AUC."""
    val = "val_roc_auc_mean" in ablation
    shifts = "val_shifted_roc_auc_mean" in ablation
    own = {"roc_auc_mean", "val_roc_auc_mean", "val_shifted_roc_auc_mean"}
    external = [c[: -len("_roc_auc_mean")] for c in ablation if c.endswith("_roc_auc_mean") and c not in own]
    header = ["cell", "epochs", "seeds"] + (["val ROC AUC"] if val else []) + (
        ["val under shifts (drop)"] if shifts else []
    ) + ["test ROC AUC mean ± sd", *(f"{name} ROC AUC" for name in external), "accuracy mean ± sd",
         "paper HAM10000 acc"]  # fmt: skip
    lines = ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in ablation.iterrows():
        cells = [row["cell"], epochs.get(row["cell"], ""), row["seeds"]]
        if val:
            cells.append(_mean_sd(row["val_roc_auc_mean"], row["val_roc_auc_std"]))
        if shifts:
            cells.append(f"{_mean_sd(row['val_shifted_roc_auc_mean'], row['val_shifted_roc_auc_std'])} "
                         f"({row['val_shift_drop_mean']:.3f})")  # fmt: skip
        cells += [_mean_sd(row["roc_auc_mean"], row["roc_auc_std"]),
                  *(_mean_sd(row[f"{name}_roc_auc_mean"], row[f"{name}_roc_auc_std"]) for name in external),
                  _mean_sd(row["accuracy_mean"], row["accuracy_std"]),
                  _paper(row.get("paper_ham10000_accuracy"))]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return lines


def shifts_section(shifts: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The acquisition-shift benchmark's summary per split and model."""
    if not shifts:
        return []
    lines = ["", "Acquisition shifts (eight shifts of the raw images at five severities; "
             "docs/method.md lists them):", "",
             "| split | images | model | clean ROC AUC | mean over shifts | drop | worst |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for split in ordered_splits(list(shifts)):
        summary = shifts[split]
        for model, s in summary["models"].items():
            worst = s["worst"]
            lines.append(
                f"| {split} | {summary['images']} | {model} | {s['clean_roc_auc']:.3f} | "
                f"{s['mean_shifted_roc_auc']:.3f} | {s['drop']:.3f} | {worst['shift']} "
                f"{worst['severity']}: {worst['roc_auc']:.3f} |"
            )
    return lines


def _mean_sd(mean: float, sd: float) -> str:
    """One seed has no spread: its mean alone; none (a cell not scored on it): a dash."""
    if pd.isna(mean):
        return "–"
    return f"{mean:.3f}" if pd.isna(sd) else f"{mean:.3f} ± {sd:.3f}"


def epochs_section(epochs: pd.DataFrame | None) -> list[str]:
    """Each ablation cell's ROC AUC against its training epochs, where it was scored at more
    than its final epoch (``ablation.milestones``)."""
    if epochs is None or epochs.groupby("cell")["epochs"].nunique().max() < 2:
        return []
    lines = ["", "ROC AUC against training epochs (the best-so-far student on validation loss "
             "at each count; mean ± sd over seeds):", "",
             "| cell | epochs | seeds | validation ROC AUC | test ROC AUC |", "|---|---|---|---|---|"]  # fmt: skip
    for _, row in epochs.iterrows():
        lines.append(
            f"| {row['cell']} | {row['epochs']} | {row['seeds']} | "
            + " | ".join(_mean_sd(row[f"{s}_roc_auc_mean"], row[f"{s}_roc_auc_std"])
                         for s in ("val", "test")) + " |"
        )  # fmt: skip
    return lines


def _external_cells(entry: Mapping[str, Any], threshold: str) -> list[str]:
    if "thresholds" not in entry:
        return [str(entry["n"]), "one class only", "", ""]
    evaluation = entry["thresholds"][threshold]
    return [str(entry["n"]), _ci(evaluation, "roc_auc"),
            f"{evaluation['metrics']['sensitivity']:.3f}", f"{evaluation['metrics']['specificity']:.3f}"]  # fmt: skip


def external_section(name: str, external: Mapping[str, Any]) -> list[str]:
    """One external set: what overlaps the run, then each model on the whole set and on the
    images the run never trained or selected on."""
    overlap = external["overlap"]
    splits = ordered_splits([key.removeprefix("match_") for key in overlap if key.startswith("match_")])
    matches = ", ".join(f"{overlap[f'match_{split}']} {split}" for split in splits)
    lines = [
        "",
        f"External validation on `{name}`: {overlap['images']} images "
        f"({external['rejected']} rejected); {overlap['identical']} byte-identical to an image "
        f"of this run; by perceptual hash they match {matches} images; {overlap['seen']} match "
        "a training or validation image and are left out of the unseen columns. Thresholds "
        "as chosen on this run's validation split (not re-tuned on the set).",
        "",
        "| model | threshold | images | ROC AUC [95% CI] | sensitivity | specificity "
        "| unseen images | ROC AUC [95% CI] | sensitivity | specificity |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, subsets in external["models"].items():
        threshold = external["thresholds"][model]
        cells = [model, f"{threshold:.3f}", *_external_cells(subsets["all"], "validation")]
        cells += _external_cells(subsets["without_overlap"], "validation")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render(
    runs: Sequence[Mapping[str, Any]],
    results: Path,
    notes: Sequence[str] = (),
    archive: Path | None = None,
) -> str:
    """The document; each run from its outputs under ``results`` or, where they are absent,
    from its archive under ``archive`` (``skinkd.runs.archive``)."""
    loaded = {
        r["name"]: load_run(results, r["name"])
        or (read_archive(archive / f"{r['name']}.json") if archive else None)
        for r in runs
    }
    walls = [run["wall_seconds"] for run in loaded.values() if run]
    lines = [
        "# Results",
        "",
        "Generated from the runs' outputs under `results/`, or where a run's outputs are not on "
        "this machine from its archive `docs/runs/<name>.json` (written when the run finished), "
        "by `snakemake suite --cores 2`, which first runs (or resumes) every run listed in "
        "`docs/runs.yaml`; do not edit by hand.",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, {_gpu()}. All runs together: "
        f"{sum(walls) / 3600:.2f} h wall.",
        "",
        "## Runs",
        "",
    ]
    readings = []
    for r in runs:
        run = loaded[r["name"]]
        if run is None:
            lines += [f"### {r['label']}", "", f"Not run yet: `{display_command(r)}`.", ""]
            continue
        lines += metrics_section(r["label"], display_command(r), run)
        if not run["evals"] and run["ablation"] is not None:
            found = factor_readings(run["ablation"], run["ablation_budget"]["baseline"])
            readings += [f"- {r['label']}: {text}" for text in found]
            continue
        found = [cell_reading(run["ablation"], cell, thing) for cell, thing in CELL_READINGS]
        found += [addition_reading(run["ablation"], c, thing) for c, thing in ADDITION_READINGS]
        found += validation_choices(run["ablation"])
        found.append(teacher_gap_reading(run))
        found += [external_reading(name, ext) for name, ext in run.get("external", {}).items()]
        found.append(largest_effects(run["ablation"]))
        if "target_auc" in r:
            found.append(target_reading(run, r["target_auc"]))
        if "student" in run["evals"]:
            found.append(threshold_reading(run["evals"]["student"], run["calibration"]))
        readings += [f"- {r['label']}: {text}" for text in found if text]
    readings += pair_readings(runs, loaded) + paper_readings(runs, loaded)
    lines += ["## Reading", ""] + (readings or ["- No comparison available yet."]) + [""]
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    lines += [
        "## The paper's figures",
        "",
        "| model | HAM10000 acc | HAM10000 MCC | Kaggle acc | Kaggle MCC |",
        "|---|---|---|---|---|",
    ]
    for model, figures in PAPER_FIGURES.items():
        (ha, hm), (ka, km) = figures["ham10000"], figures["kaggle"]
        lines.append(f"| {model} | {ha} | {hm} | {ka} | {km} |")
    lines += [
        "",
        "The paper split HAM10000 by image; its student beating its teacher by 4.8 points is "
        "what the image-level comparison above probes.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="docs/runs.yaml")
    parser.add_argument("--results", default="results")
    parser.add_argument("--out", default="docs/results.md")
    parser.add_argument("--archive", default="docs/runs", help="archived runs (docs/runs/<name>.json)")
    args = parser.parse_args(argv)
    text = render(
        load_runs(args.runs), Path(args.results), load_notes(args.runs), Path(args.archive)
    )
    write_text(text, args.out)


if __name__ == "__main__":
    main()
