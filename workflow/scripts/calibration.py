"""Rule calibration: the student's decision threshold for the target sensitivity (chosen on
the validation split) and its reliability on the test split."""

import json

import pandas as pd

from skinkd.atomic import write_text
from skinkd.data.cache import load_split
from skinkd.data.classes import malignant_probability
from skinkd.data.manifest import read_manifest
from skinkd.edge.inference import model_logits
from skinkd.evaluate.calibration import calibrate
from skinkd.evaluate.figures import reliability_figure
from skinkd.workflow import run_rule


def main() -> None:
    splits = read_manifest(snakemake.input.splits)
    images, val_labels, _ = load_split(snakemake.input.shards, splits, "val")
    val_prob = malignant_probability(model_logits(snakemake.input.model, images))
    test = pd.read_csv(snakemake.input.test_predictions, dtype={"image_id": str})
    result = calibrate(
        val_labels,
        val_prob,
        test["label"].to_numpy(),
        test["prob_malignant"].to_numpy(),
        snakemake.params.target_sensitivity,
    )
    write_text(json.dumps(result, indent=2) + "\n", snakemake.output.calibration)
    reliability_figure(
        {"student": {"ece": result["test_ece"], "bins": result["test_bins"]}},
        result["threshold"],
        f"val sensitivity {result['val']['sensitivity']:.2f}",
        snakemake.output.figure,
    )


run_rule(snakemake, main)
