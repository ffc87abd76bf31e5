"""docs/results.md from the runs' own outputs (eval JSON, ablation and leakage tables,
Snakemake benchmark files), never typed by hand.

    .venv/bin/python -m skinkd.results_doc [--runs docs/runs.yaml] [--out docs/results.md]

``docs/runs.yaml`` lists each run: its results name, a label and the command that made it.
Runs whose results are missing are listed as not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from skinkd.atomic import write_text
from skinkd.paper import PAPER_FIGURES

MODELS = ("teacher", "student", "student_fp16", "student_int8")


def _ci(evaluation: Mapping[str, Any], metric: str) -> str:
    value = evaluation["metrics"][metric]
    low, high = evaluation["intervals"][metric]
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def job_seconds(run: Path) -> float:
    """Sum of the run's job wall times from its Snakemake benchmark files."""
    return float(sum(pd.read_csv(p, sep="\t")["s"].sum() for p in run.rglob("benchmarks/**/*.tsv")))


def load_run(results: Path, name: str) -> dict[str, Any] | None:
    run = results / name
    if not (run / "eval").is_dir():
        return None
    evals = {m: json.loads((run / "eval" / f"{m}.json").read_text()) for m in MODELS
             if (run / "eval" / f"{m}.json").exists()}  # fmt: skip
    ablation = run / "ablation" / "ablation.csv"
    return {
        "evals": evals,
        "ablation": pd.read_csv(ablation) if ablation.exists() else None,
        "leakage": pd.read_csv(run / "data" / "leakage.csv"),
        "seconds": job_seconds(run),
        "test_images": next(iter(evals.values()))["metrics"]["n"] if evals else 0,
    }


def metrics_section(label: str, command: str, run: Mapping[str, Any]) -> list[str]:
    lines = [
        f"### {label}",
        "",
        f"`{command}`: {run['seconds'] / 60:.1f} min of job time, "
        f"{run['test_images']} test images.",
        "",
        "| model | ROC AUC [95% CI] | accuracy | MCC | sensitivity | specificity |",
        "|---|---|---|---|---|---|",
    ]
    for model, evaluation in run["evals"].items():
        cells = [_ci(evaluation, m) for m in ("roc_auc", "accuracy", "mcc")]
        cells += [f"{evaluation['metrics'][m]:.3f}" for m in ("sensitivity", "specificity")]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    agreement = run["evals"].get("student_int8", {}).get("agreement_with_student")
    if agreement:
        lines += ["", f"int8 vs Keras student: {agreement['label_agreement']:.3f} of labels "
                  f"identical, largest probability difference {agreement['max_abs_difference']:.3f}."]  # fmt: skip
    ablation = run["ablation"]
    if ablation is not None:
        lines += ["", "| cell | seeds | test ROC AUC mean ± sd | accuracy mean ± sd |",
                  "|---|---|---|---|"]  # fmt: skip
        for _, row in ablation.iterrows():
            lines.append(
                f"| {row['cell']} | {row['seeds']} | {row['roc_auc_mean']:.3f} ± "
                f"{row['roc_auc_std']:.3f} | {row['accuracy_mean']:.3f} ± {row['accuracy_std']:.3f} |"
            )
    return lines + [""]


def distillation_reading(ablation: pd.DataFrame | None) -> str | None:
    """Whether distillation (alpha 0.5) beats none (alpha 1) by more than the seed spread."""
    if ablation is None:
        return None
    cells = ablation.set_index("cell")
    if "baseline" not in cells.index or "alpha-1.0" not in cells.index:
        return None
    with_kd, without = cells.loc["baseline"], cells.loc["alpha-1.0"]
    gain = with_kd["roc_auc_mean"] - without["roc_auc_mean"]
    spread = max(with_kd["roc_auc_std"], without["roc_auc_std"])
    if gain > spread:
        verdict = "distillation helps by more than the seed spread"
    elif gain < -spread:
        verdict = "distillation hurts by more than the seed spread"
    else:
        verdict = "the difference is within the seed spread"
    return (
        f"student test AUC {with_kd['roc_auc_mean']:.3f} with distillation, "
        f"{without['roc_auc_mean']:.3f} without ({gain:+.3f}, {int(with_kd['seeds'])} seeds, "
        f"spread {spread:.3f}): {verdict}."
    )


def threshold_reading(evaluation: Mapping[str, Any]) -> str | None:
    """Flag a default threshold that leaves the malignant class almost undetected."""
    metrics = evaluation["metrics"]
    if metrics["sensitivity"] >= 0.5:
        return None
    malignant = (metrics["tp"] + metrics["fn"]) / metrics["n"]
    return (
        f"at the threshold {evaluation['threshold']} the student finds only "
        f"{metrics['sensitivity']:.1%} of malignant lesions ({malignant:.0%} of the test "
        "images are malignant): its ranking (AUC) is usable, its default threshold is not."
    )


def render(runs: Sequence[Mapping[str, Any]], results: Path) -> str:
    lines = [
        "# Results",
        "",
        "Generated by `.venv/bin/python -m skinkd.results_doc` from the runs' outputs under "
        "`results/`; do not edit by hand.",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, no GPU (this task was not lent one).",
        "",
    ]
    loaded = {r["name"]: load_run(results, r["name"]) for r in runs}
    readings = []
    lines += ["## Runs", ""]
    for r in runs:
        run = loaded[r["name"]]
        if run is None:
            lines += [f"### {r['label']}", "", f"Not run yet: `{r['command']}`.", ""]
            continue
        lines += metrics_section(r["label"], r["command"], run)
        found = [distillation_reading(run["ablation"])]
        if "student" in run["evals"]:
            found.append(threshold_reading(run["evals"]["student"]))
        readings += [f"- {r['label']}: {text}" for text in found if text]
    pairs = [(a, b) for a in runs for b in runs if a.get("compare_split_with") == b["name"]]
    for leaky, grouped in pairs:
        a, b = loaded[leaky["name"]], loaded[grouped["name"]]
        if a and b and "student" in a["evals"] and "student" in b["evals"]:
            inflation = (a["evals"]["student"]["metrics"]["roc_auc"]
                         - b["evals"]["student"]["metrics"]["roc_auc"])  # fmt: skip
            readings.append(
                f"- The image-level split ({leaky['label']}) changes the student's test AUC by "
                f"{inflation:+.3f} against the lesion-grouped split ({grouped['label']})."
            )
    lines += ["## Reading", ""] + (readings or ["- No comparison available yet."]) + [""]
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
    runs = yaml.safe_load(Path(args.runs).read_text())["runs"]
    write_text(render(runs, Path(args.results)), args.out)


if __name__ == "__main__":
    main()
