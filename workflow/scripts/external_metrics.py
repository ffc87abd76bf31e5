"""Rule external_metrics: each model's metrics on an external set, with intervals, at the
threshold chosen on this run's validation split and at 0.5, on the whole set and without
the images the run trained or selected on; the ROC and reliability figures."""

import json

import pandas as pd

from skinkd.atomic import write_csv, write_text
from skinkd.edge.export import read_model_card
from skinkd.evaluate.calibration import reliability, threshold_for_sensitivity
from skinkd.evaluate.external import evaluate_external, metrics_rows, overlap_counts
from skinkd.evaluate.figures import reliability_figure, roc_figure
from skinkd.teacher.soft_labels import teacher_probabilities
from skinkd.workflow import run_rule


def main() -> None:
    settings = snakemake.params.evaluate
    card = read_model_card(snakemake.input.card)
    val_labels, val_prob = teacher_probabilities(snakemake.input.soft_labels, "val")
    chosen = {
        "student": card["threshold"],
        "student_int8": card["threshold"],
        "teacher": threshold_for_sensitivity(
            val_labels, val_prob, settings["target_sensitivity"]
        ),
    }
    overlap = pd.read_csv(snakemake.input.overlap, dtype={"image_id": str}, keep_default_na=False)
    seen = overlap.set_index("image_id")["seen"].astype(bool)
    models, curves = {}, {}
    for model, path in zip(snakemake.params.models, snakemake.input.predictions):
        predictions = pd.read_csv(path, dtype={"image_id": str})
        labels = predictions["label"].to_numpy()
        prob = predictions["prob_malignant"].to_numpy()
        unseen = ~seen.loc[predictions["image_id"]].to_numpy()
        models[model] = evaluate_external(
            model,
            labels,
            prob,
            {"validation": chosen[model], "0.5": 0.5},
            seen=~unseen,
            n_boot=settings["bootstrap"],
            seed=settings["seed"],
        )
        curves[model] = (labels, prob)
        if len(set(labels[unseen])) == 2:
            curves[f"{model}, unseen"] = (labels[unseen], prob[unseen])
    rejected = pd.read_csv(snakemake.input.rejected)
    result = {
        "set": snakemake.wildcards.set,
        "images": int(len(overlap)),
        "rejected": int(len(rejected)),
        "overlap": overlap_counts(
            overlap.to_dict("records"),
            [c.removeprefix("distance_") for c in overlap.columns if c.startswith("distance_")],
        ),
        "thresholds": chosen,
        "target_sensitivity": settings["target_sensitivity"],
        "models": models,
    }
    write_text(json.dumps(result, indent=2, allow_nan=False) + "\n", snakemake.output.metrics)
    write_csv(pd.DataFrame(metrics_rows(models)), snakemake.output.table)
    roc_figure(curves, snakemake.output.roc)
    reliability_figure(
        {name: reliability(*curves[name]) for name in ("student", "student, unseen") if name in curves},
        card["threshold"],
        "chosen on this run's validation split",
        snakemake.output.reliability,
        images="external images",
    )


run_rule(snakemake, main)
