"""Rule external_predictions: one model's P(malignant) for every image of an external set,
through the preprocessing that model was trained with."""

import logging
from pathlib import Path

import pandas as pd

from skinkd.atomic import write_csv
from skinkd.data.cache import preprocess_paths
from skinkd.data.classes import binary_logits, malignant_probability
from skinkd.data.manifest import read_manifest
from skinkd.data.preprocess import Preprocessing
from skinkd.edge.predict import Predictor, predict_paths
from skinkd.errors import DataError
from skinkd.teacher.soft_labels import teacher_logits
from skinkd.workflow import run_rule


def main() -> None:
    images = read_manifest(snakemake.input.images)
    paths = list(images["path"])
    if snakemake.wildcards.model == "teacher":
        teacher = snakemake.params.teacher
        pixels = preprocess_paths(
            paths, Preprocessing.from_dict(snakemake.params.teacher_preprocessing)
        )
        logits = teacher_logits(
            snakemake.input.model,
            teacher,
            pixels,
            frozen=snakemake.params.frozen,
            seed=snakemake.params.seed,
        )
        prob = malignant_probability(binary_logits(logits, teacher["malignant"]))
    else:
        predictor = Predictor(
            snakemake.input.model, threads=snakemake.threads, card=snakemake.input.card
        )
        # One process: a fork server would run this rule script again in its workers.
        rows = list(predict_paths(predictor, [Path(p) for p in paths], workers=1))
        failed = [row["error"] for row in rows if row["error"]]
        if failed:
            # external_images decoded every one of them: the files changed since.
            raise DataError(f"{len(failed)} image(s) no longer readable: {failed[0]}")
        prob = [row["prob_malignant"] for row in rows]
    predictions = pd.DataFrame(
        {"image_id": images["image_id"], "label": images["label"], "prob_malignant": prob}
    )
    predictions["prob_malignant"] = predictions["prob_malignant"].round(6)
    write_csv(predictions, snakemake.output.predictions)
    logging.info("%s: %d images", snakemake.wildcards.model, len(predictions))


run_rule(snakemake, main)
