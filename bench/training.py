"""Benchmark: student training and teacher feature extraction, images per second (not a test).

Student: skinkd.student.train.train_student (distillation, the config's augmentation, batch 64,
Adafactor) on --train-images synthetic preprocessed lesions at each --sizes, run for 1 and
for 1 + --epochs epochs; the difference divided by --epochs is one epoch without tracing and
saving, so images/s = training images / that (after a small warm-up run that pays the
process's one-off start-up). Teacher: skinkd.teacher.models.extract_features with
each preset's backbones (random weights: the cost does not depend on them) at 224 px, after
a one-batch warm-up, over --feature-images images (fewer for the paper preset), and what
that rate makes of the whole HAM10000 cache of config/ham10000_pretrained.yaml. Writes
bench/results/training.json.

    .venv/bin/python bench/training.py [--sizes 64 224] [--train-images 512] [--epochs 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report import machine, write_report  # noqa: E402  (bench/ is the script's folder)

RESULTS = Path(__file__).resolve().parent / "results" / "training.json"
# The HAM10000 feature cache of config/ham10000_pretrained.yaml: every image once, plus two
# augmented views of the 7,010 training images of its lesion-grouped split.
HAM10000_CACHE_PASSES = 10_015 + 2 * 7_010
AUGMENT = {"rotation": 20, "height_shift": 0.1, "width_shift": 0.1, "shear": 0.1, "horizontal_flip": True}


def lesions(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from skinkd.data.lesions import render_lesion
    from skinkd.data.preprocess import Preprocessing, preprocess_image

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    params = Preprocessing(image_size=size)
    images = np.stack([preprocess_image(render_lesion(rng, bool(m), 200, 150), params) for m in labels])
    return images, labels


def student_seconds(images, labels, epochs: int) -> float:
    from skinkd.student.train import train_student

    logits = np.stack([np.zeros(len(labels)), labels * 2.0 - 1], axis=1).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train_student(images, labels, logits, images[:64], labels[:64], logits[:64],
                      out_model=Path(tmp) / "s.keras", out_history=Path(tmp) / "h.csv",
                      epochs=epochs, batch_size=64, augment=AUGMENT)  # fmt: skip
        return time.perf_counter() - start


def feature_rate(preset: str, n: int, batch: int = 32) -> dict:
    from skinkd.teacher.backbones.registry import build_backbone
    from skinkd.teacher.models import extract_features
    from skinkd.teacher.presets import TEACHER_PRESETS

    images, _ = lesions(n, 224, seed=2)
    backbones = {name: build_backbone(name, 224, None) for name in TEACHER_PRESETS[preset]}
    extract_features(backbones, images[:batch], batch)
    start = time.perf_counter()
    extract_features(backbones, images, batch)
    seconds = time.perf_counter() - start
    rate = n / seconds
    return {"preset": preset, "backbones": TEACHER_PRESETS[preset], "image_size": 224, "images": n,
            "seconds": round(seconds, 2), "images_per_second": round(rate, 2),
            "ham10000_cache_passes": HAM10000_CACHE_PASSES,
            "ham10000_cache_minutes": round(HAM10000_CACHE_PASSES / rate / 60, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--train-images", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--feature-images", type=int, default=256)
    parser.add_argument("--paper-images", type=int, default=64)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    import keras

    students = []
    for size in args.sizes:
        images, labels = lesions(args.train_images, size, seed=1)
        student_seconds(images[:128], labels[:128], 1)  # the process's one-off start-up costs
        one = student_seconds(images, labels, 1)
        more = student_seconds(images, labels, 1 + args.epochs)
        epoch = (more - one) / args.epochs
        students.append({"image_size": size, "train_images": args.train_images, "epoch_seconds": round(epoch, 2),
                         "images_per_second": round(args.train_images / epoch, 1)})  # fmt: skip
        print(students[-1], flush=True)
    features = []
    presets = ("tiny", "small", "pretrained")
    for preset, n in (*((p, args.feature_images) for p in presets), ("paper", args.paper_images)):
        features.append(feature_rate(preset, n))
        print(features[-1], flush=True)
    report = {
        "benchmark": "student training and teacher feature extraction throughput",
        "machine": machine(keras_backend=keras.backend.backend()),
        "student_training": students,
        "teacher_features": features,
    }  # fmt: skip
    write_report(report, args.out)


if __name__ == "__main__":
    main()
