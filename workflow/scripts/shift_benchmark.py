"""Rule shift_benchmark: the student, its int8 export and the teacher under seeded
acquisition shifts of one split's raw images, each model through its own preprocessing."""

import json
import logging

from skinkd.atomic import write_csv, write_text
from skinkd.data.classes import binary_logits, malignant_probability
from skinkd.data.manifest import read_manifest
from skinkd.data.preprocess import Preprocessing
from skinkd.edge.export import read_model_card
from skinkd.edge.inference import load_classifier
from skinkd.evaluate.figures import shifts_figure
from skinkd.evaluate.shift_benchmark import score_shifts, split_images, summarise_shifts
from skinkd.teacher.soft_labels import teacher_labeller
from skinkd.workflow import run_rule


def main() -> None:
    images, labels = split_images(read_manifest(snakemake.input.manifest), read_manifest(snakemake.input.splits),
                                  snakemake.wildcards.split, snakemake.params.max_images, snakemake.params.seed)  # fmt: skip
    logging.info("%s split: %d images", snakemake.wildcards.split, len(images))
    card = read_model_card(snakemake.input.card)
    student = Preprocessing.from_dict(card["preprocessing"])
    malignant = card["malignant_outputs"]

    def classifier(path):
        model = load_classifier(path, snakemake.threads, malignant)
        return lambda batch: malignant_probability(model.predict_logits(batch))

    # Without TTA: eight views of 41 conditions would cost eight times the benchmark.
    teacher = {**snakemake.params.teacher, "tta": False}
    label = teacher_labeller(snakemake.input.teacher, teacher, frozen=snakemake.params.frozen,
                             seed=snakemake.params.seed)  # fmt: skip

    def teacher_probability(batch):
        return malignant_probability(binary_logits(label(batch), teacher["malignant"]))

    models = {
        "student": (student, classifier(snakemake.input.student)),
        "student_int8": (student, classifier(snakemake.input.int8)),
        "teacher": (Preprocessing.from_dict(snakemake.params.teacher_preprocessing), teacher_probability),
    }
    table = score_shifts(images, labels, models, snakemake.params.seed)
    table["roc_auc"] = table["roc_auc"].round(6)
    summary = summarise_shifts(table)
    write_csv(table, snakemake.output.table)
    write_text(json.dumps({"split": snakemake.wildcards.split, "images": len(images), "models": summary},
                          indent=2) + "\n", snakemake.output.summary)  # fmt: skip
    shifts_figure(table, summary, snakemake.output.figure)


run_rule(snakemake, main)
