"""docs/results.md from the runs' own outputs (eval JSON, ablation and leakage tables,
Snakemake benchmark files), never typed by hand.

    snakemake suite --cores 2       (runs every run first, then this)
    .venv/bin/python -m skinkd.results_doc [--runs docs/runs.yaml] [--out docs/results.md]

``docs/runs.yaml`` lists each run (see skinkd.suite). Runs whose results are missing are
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
from skinkd.external import ordered_splits
from skinkd.paper import PAPER_FIGURES
from skinkd.suite import (
    COMPARISONS,
    display_command,
    job_seconds,
    load_notes,
    load_runs,
    wall_seconds,
)

MODELS = ("teacher", "student", "student_fp16", "student_int8")


def _ci(evaluation: Mapping[str, Any], metric: str) -> str:
    value = evaluation["metrics"][metric]
    low, high = evaluation["intervals"][metric]
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def load_run(results: Path, name: str) -> dict[str, Any] | None:
    run = results / name
    ablation = run / "ablation" / "ablation.csv"
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
        "job_seconds": job_seconds(run),
        "wall_seconds": wall_seconds(run),
        "test_images": next(iter(evals.values()))["metrics"]["n"] if evals else 0,
        "external": {
            path.parent.name: json.loads(path.read_text())
            for path in sorted((run / "external").glob("*/metrics.json"))
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


def metrics_section(label: str, command: str, run: Mapping[str, Any]) -> list[str]:
    lines = [
        f"### {label}",
        "",
        f"`{command}`: {run['wall_seconds'] / 60:.1f} min wall "
        f"({run['job_seconds'] / 60:.1f} min of job time)"
        + (f", {run['test_images']} test images." if run["evals"] else ", the ablation grid only."),
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
                  f"{int(ablation['seeds'].max())} seeds; the grid "
                  f"took {budget['wall_seconds'] / 60:.1f} min wall on this machine. The paper's "
                  "accuracy (its Table 3: 224 px, 70 epochs, image-level split, paper mapping) "
                  "is beside each cell it tested."]  # fmt: skip
        lines += ["", "| cell | epochs | seeds | test ROC AUC mean ± sd | accuracy mean ± sd | paper HAM10000 acc |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for _, row in ablation.iterrows():
            lines.append(
                f"| {row['cell']} | {budget['epochs'].get(row['cell'], '')} | {row['seeds']} | {row['roc_auc_mean']:.3f} ± "
                f"{row['roc_auc_std']:.3f} | {row['accuracy_mean']:.3f} ± {row['accuracy_std']:.3f} | "
                f"{_paper(row.get('paper_ham10000_accuracy'))} |"
            )
    for name, external in run.get("external", {}).items():
        lines += external_section(name, external)
    return lines + [""]


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


def external_reading(name: str, external: Mapping[str, Any]) -> str | None:
    """How much of an external set the run had seen, and what leaving it out does to the
    student's AUC."""
    student = external["models"].get("student")
    if student is None or "thresholds" not in student["all"]:
        return None
    overlap = external["overlap"]
    whole = student["all"]["thresholds"]["validation"]["metrics"]["roc_auc"]
    text = (
        f"on `{name}`, {overlap['seen']} of {overlap['images']} images match a training or "
        f"validation image of the run; the student's ROC AUC is {whole:.3f} on the whole set"
    )
    unseen = student["without_overlap"]
    if "thresholds" not in unseen:
        return text + f", and the {unseen['n']} unseen images hold one class only."
    alone = unseen["thresholds"]["validation"]["metrics"]["roc_auc"]
    return text + f" and {alone:.3f} on the {unseen['n']} unseen images ({alone - whole:+.3f})."


# Ablation cells read against the baseline: (cell, what the baseline has that it lacks).
CELL_READINGS = (
    ("alpha-1.0", "distillation"),
    ("preprocessing-none", "the four preprocessing stages"),
    ("preprocessing-no_closing", "the closing stage"),
    ("preprocessing-no_bilateral", "the bilateral stage"),
    ("preprocessing-no_highlight", "the highlight stage"),
    ("preprocessing-no_unsharp", "the unsharp stage"),
    ("preprocessing-linear_resize", "area interpolation (against linear) when shrinking"),
)


# Ablation cells that add something to the baseline: (cell, what the cell has that it lacks).
ADDITION_READINGS = (
    ("distillation-consistent", "consistent distillation"),
    ("classes-dx", "seven-class outputs"),
)


def _effect(gain: float, spread: float, change: str) -> str:
    if gain > spread:
        return f"{change} raises the test AUC by more than the seed spread ({gain / spread:.1f}x)"
    if gain < -spread:
        return f"{change} lowers the test AUC by more than the seed spread ({-gain / spread:.1f}x)"
    return "the difference is within the seed spread"


def _reading(ablation: pd.DataFrame | None, cell: str, thing: str, cell_adds: bool) -> str | None:
    """The baseline against ``cell``, which lacks ``thing`` (or adds it, ``cell_adds``):
    whether ``thing`` moves the mean test AUC by more than the seed spread (the larger of
    the two standard deviations over seeds)."""
    if ablation is None:
        return None
    cells = ablation.set_index("cell")
    if "baseline" not in cells.index or cell not in cells.index:
        return None
    with_it, without = cells.loc["baseline"], cells.loc[cell]
    if cell_adds:
        with_it, without = without, with_it
    gain = with_it["roc_auc_mean"] - without["roc_auc_mean"]
    spread = max(with_it["roc_auc_std"], without["roc_auc_std"])
    verdict = _effect(gain, spread, f"adding {thing}") if cell_adds else _effect(-gain, spread, f"dropping {thing}")
    return (
        f"student test AUC {with_it['roc_auc_mean']:.3f} with {thing}, "
        f"{without['roc_auc_mean']:.3f} without ({gain:+.3f}, {int(with_it['seeds'])} seeds, "
        f"spread {spread:.3f}): {verdict}."
    )


def cell_reading(ablation: pd.DataFrame | None, cell: str, thing: str) -> str | None:
    """The baseline against ``cell``, the baseline without ``thing``."""
    return _reading(ablation, cell, thing, cell_adds=False)


def addition_reading(ablation: pd.DataFrame | None, cell: str, thing: str) -> str | None:
    """The baseline against ``cell``, the baseline plus ``thing``."""
    return _reading(ablation, cell, thing, cell_adds=True)


def teacher_gap_reading(run: Mapping[str, Any]) -> str | None:
    """The teacher's test AUC against its student's (what distillation could transfer)."""
    evals = run["evals"]
    if "teacher" not in evals or "student" not in evals:
        return None
    teacher, student = (evals[m]["metrics"]["roc_auc"] for m in ("teacher", "student"))
    side = "ahead of" if teacher > student else "behind"
    return (
        f"teacher test AUC {teacher:.3f}, {side} its student's {student:.3f} "
        f"(gap {teacher - student:+.3f})."
    )


def largest_effects(ablation: pd.DataFrame | None, count: int = 3) -> str | None:
    """The cells whose mean test AUC moves furthest from the baseline's."""
    if ablation is None or "baseline" not in set(ablation["cell"]):
        return None
    cells = ablation.set_index("cell")["roc_auc_mean"]
    change = (cells.drop("baseline") - cells["baseline"]).sort_values(key=abs, ascending=False)
    if change.empty:
        return None
    listed = ", ".join(f"{cell} {delta:+.3f}" for cell, delta in change.head(count).items())
    return f"the largest changes of mean test AUC from the baseline's {cells['baseline']:.3f}: {listed}."


def factor_readings(ablation: pd.DataFrame, baseline: Mapping[str, Any]) -> list[str]:
    """A factor study: each cell against the baseline it changes one setting of (``baseline``:
    the baseline cell's student settings and preprocessing), and what the changes that help
    beyond the seed spread would add together if their gains added up."""
    cells = ablation.set_index("cell")
    if "baseline" not in cells.index:
        return []
    base = cells.loc["baseline"]
    readings, helping = [], 0.0
    for cell, row in cells.drop("baseline").iterrows():
        gain = row["roc_auc_mean"] - base["roc_auc_mean"]
        spread = max(row["roc_auc_std"], base["roc_auc_std"])
        change = f"{row['factor']} {row['value']} instead of {baseline.get(row['factor'], 'the baseline')}"
        if gain > spread:
            helping += gain
        readings.append(
            f"{cell}: student test AUC {row['roc_auc_mean']:.3f} against the baseline's "
            f"{base['roc_auc_mean']:.3f} ({gain:+.3f}, {int(row['seeds'])} seeds, spread "
            f"{spread:.3f}): {_effect(gain, spread, change)}."
        )
    readings.append(
        f"the changes that raise the test AUC beyond the seed spread add {helping:+.3f} together "
        "if their gains add up (each was measured alone)."
    )
    return readings


def target_reading(run: Mapping[str, Any], target: float) -> str | None:
    """The student's test AUC against the issue's target, and int8's distance from it."""
    evals = run["evals"]
    if "student" not in evals:
        return None
    auc = evals["student"]["metrics"]["roc_auc"]
    verdict = "reaches" if auc >= target else "falls short of"
    text = f"the student's test AUC {auc:.3f} {verdict} the target {target:.2f}"
    if "student_int8" in evals:
        gap = evals["student_int8"]["metrics"]["roc_auc"] - auc
        text += f"; the int8 model's AUC differs from it by {gap:+.4f}"
    return text + "."


def threshold_reading(
    evaluation: Mapping[str, Any], calibration: Mapping[str, Any] | None = None
) -> str | None:
    """Flag a default threshold that leaves the malignant class almost undetected, and say
    what the validation-chosen threshold does instead."""
    metrics = evaluation["metrics"]
    if metrics["sensitivity"] >= 0.5:
        return None
    malignant = (metrics["tp"] + metrics["fn"]) / metrics["n"]
    text = (
        f"at the threshold {evaluation['threshold']} the student finds only "
        f"{metrics['sensitivity']:.1%} of malignant lesions ({malignant:.0%} of the test "
        "images are malignant): its ranking (AUC) is usable, that threshold is not"
    )
    if calibration is None:
        return text + "."
    return text + (
        f"; the validation-chosen threshold {calibration['threshold']:.3f} finds "
        f"{calibration['test']['sensitivity']:.1%} at specificity "
        f"{calibration['test']['specificity']:.1%}."
    )


def _student_eval(run: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if run is None or "student" not in run["evals"]:
        return None
    return run["evals"]["student"]


def pair_readings(
    runs: Sequence[Mapping[str, Any]], loaded: Mapping[str, Mapping[str, Any] | None]
) -> list[str]:
    """Readings that compare two runs: split inflation, distillation at the full budget,
    a larger training budget."""
    readings = []
    for run in runs:
        for key in COMPARISONS:
            if key not in run:
                continue
            this, other = _student_eval(loaded[run["name"]]), _student_eval(loaded[run[key]])
            if this is None or other is None:
                continue
            a, b = this["metrics"]["roc_auc"], other["metrics"]["roc_auc"]
            (a_low, a_high), (b_low, b_high) = this["intervals"]["roc_auc"], other["intervals"]["roc_auc"]
            overlap = "the intervals overlap" if a_low <= b_high and b_low <= a_high else "the intervals do not overlap"
            label = next(r["label"] for r in runs if r["name"] == run[key])
            if key == "compare_split_with":
                readings.append(
                    f"- Split: the image-level split changes the student's test AUC by {a - b:+.3f} "
                    f"({a:.3f} against {b:.3f} lesion-grouped, {label}; {overlap})."
                )
            elif key == "compare_distillation_with":
                readings.append(
                    f"- Distillation at the full budget, one seed: student test AUC {b:.3f} with "
                    f"distillation, {a:.3f} without ({b - a:+.3f}; {overlap})."
                )
            else:
                readings.append(
                    f"- Budget: {run['label']} gives student test AUC {a:.3f} against {b:.3f} "
                    f"for {label} ({a - b:+.3f}; {overlap})."
                )
    return readings


def paper_readings(runs: Sequence[Mapping[str, Any]], loaded: Mapping[str, Any]) -> list[str]:
    """Each run's student accuracy and MCC beside the paper's for the same dataset."""
    readings = []
    for run in runs:
        student = _student_eval(loaded[run["name"]])
        dataset = run.get("paper_dataset")
        if student is None or dataset is None:
            continue
        accuracy, mcc = PAPER_FIGURES["student"][dataset]
        ours = student["metrics"]
        readings.append(
            f"- Paper ({dataset}, image-level split, 224 px, pretrained teacher): student accuracy "
            f"{accuracy:.4f}, MCC {mcc:.4f}; ours ({run['label']}): accuracy "
            f"{ours['accuracy']:.4f}, MCC {ours['mcc']:.4f}, ROC AUC {ours['roc_auc']:.3f}."
        )
    return readings


def render(runs: Sequence[Mapping[str, Any]], results: Path, notes: Sequence[str] = ()) -> str:
    loaded = {r["name"]: load_run(results, r["name"]) for r in runs}
    walls = [run["wall_seconds"] for run in loaded.values() if run]
    lines = [
        "# Results",
        "",
        "Generated from the runs' outputs under `results/` by `snakemake suite --cores 2`, which "
        "first runs (or resumes) every run listed in `docs/runs.yaml`; do not edit by hand.",
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
    args = parser.parse_args(argv)
    text = render(load_runs(args.runs), Path(args.results), load_notes(args.runs))
    write_text(text, args.out)


if __name__ == "__main__":
    main()
