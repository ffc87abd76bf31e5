"""Rule explanations: Grad-CAM of the student and the teacher on a fixed sample of test
images of each class."""

import logging

from skinkd.cache import load_split
from skinkd.explain import grad_cam, sample_by_class, student_forward, teacher_forward
from skinkd.figures import gradcam_figure
from skinkd.inference import keras_logits, malignant_probability
from skinkd.manifest import read_manifest
from skinkd.models import load_model
from skinkd.workflow import run_rule

log = logging.getLogger("skinkd.explanations")


def main() -> None:
    splits = read_manifest(snakemake.input.splits)
    images, labels, ids = load_split(snakemake.input.shards, splits, "test")
    chosen = sample_by_class(labels, snakemake.params.per_class, snakemake.params.seed)
    images, labels = images[chosen], labels[chosen]
    log.info("explaining %s", ", ".join(ids[chosen]))
    explained = {}
    for name, path, forward_of in (
        ("student", snakemake.input.student, student_forward),
        ("teacher", snakemake.input.teacher, teacher_forward),
    ):
        model = load_model(path)
        forward = forward_of(model)
        if forward is None:
            log.info("%s: no convolutional maps from images to explain (see teacher_forward)", name)
            continue
        prob = malignant_probability(keras_logits(model, images))
        explained[name] = (grad_cam(forward, images, labels), prob)
    gradcam_figure(images, labels, explained, snakemake.output.figure)


run_rule(snakemake, main)
