"""Rule evaluate: one model's test-split predictions, metrics and bootstrap intervals."""

import pandas as pd

from skinkd.atomic import write_csv
from skinkd.data.cache import load_split
from skinkd.data.classes import binary_logits
from skinkd.data.manifest import read_manifest
from skinkd.edge.inference import model_logits
from skinkd.evaluate.evaluation import evaluate_logits
from skinkd.evaluate.metrics import write_evaluation
from skinkd.teacher.soft_labels import read_soft_labels
from skinkd.workflow import run_rule


def main() -> None:
    name = snakemake.wildcards.model
    splits = read_manifest(snakemake.input.splits)
    test = splits[splits["split"] == "test"]
    ids, labels = test["image_id"].to_numpy(), test["label"].to_numpy()
    reference = None
    if name == "teacher":
        # A seven-class teacher reports P(malignant) through its collapsed logits.
        logits = binary_logits(*read_soft_labels(snakemake.input.soft_labels, "test", ids))
    else:
        images, labels, ids = load_split(snakemake.input.shards, splits, "test")
        logits = model_logits(
            snakemake.input.model, images, snakemake.threads, snakemake.params.malignant
        )
        if "reference" in snakemake.input.keys():
            reference = pd.read_csv(snakemake.input.reference, dtype={"image_id": str})
    evaluation, predictions = evaluate_logits(
        name, ids, labels, logits, snakemake.params.evaluate, reference
    )
    write_csv(predictions, snakemake.output.predictions)
    write_evaluation(evaluation, snakemake.output.evaluation)


run_rule(snakemake, main)
