"""Rule explanations: Grad-CAM of the student and the teacher on a fixed sample of test
images of each class."""

import logging

import cv2
import numpy as np

from skinkd.data.cache import load_split
from skinkd.data.classes import binary_logits, malignant_probability
from skinkd.data.manifest import read_manifest
from skinkd.evaluate.explain import grad_cam, sample_by_class, student_forward, teacher_forward
from skinkd.evaluate.figures import gradcam_figure
from skinkd.nn.models import keras_logits, load_model
from skinkd.teacher.models import load_teacher
from skinkd.workflow import run_rule

log = logging.getLogger("skinkd.explanations")


def main() -> None:
    splits = read_manifest(snakemake.input.splits)
    images, labels, ids = load_split(snakemake.input.shards, splits, "test")
    chosen = sample_by_class(labels, snakemake.params.per_class, snakemake.params.seed)
    images, labels = images[chosen], labels[chosen]
    log.info("explaining %s", ", ".join(ids[chosen]))
    student = load_model(snakemake.input.student)
    explained = {
        "student": (
            grad_cam(student_forward(student), images, labels),
            malignant_probability(keras_logits(student, images)),
        )
    }
    teacher = load_teacher(snakemake.input.teacher)
    malignant = snakemake.params.teacher_malignant
    forward = teacher_forward(teacher, malignant)
    if forward is None:
        log.info("teacher: no convolutional maps from images to explain (see teacher_forward)")
    else:
        # The same test images at the teacher's own size (its cache may differ).
        teacher_images = load_split(snakemake.input.teacher_shards, splits, "test")[0][chosen]
        side = images.shape[1]
        heatmaps = np.stack(
            [cv2.resize(h, (side, side)) for h in grad_cam(forward, teacher_images, labels)]
        )
        logits = binary_logits(keras_logits(teacher, teacher_images), malignant)
        explained["teacher"] = (heatmaps, malignant_probability(logits))
    gradcam_figure(images, labels, explained, snakemake.output.figure)


run_rule(snakemake, main)
