"""Benchmark: consistent distillation from K cached teacher views against teacher logits
computed on the fly, per epoch of the student (not a test).

A student epoch sees every training image once, through one view. With cached views the
teacher's logits of that view were computed once, before training (K views of each image,
K teacher passes per image); on the fly the teacher runs on the very view each epoch (one
teacher pass per image per epoch, and a new view every epoch). So:

* per epoch, cached costs the student step alone; on the fly, the student step plus the
  teacher's pass at its own side;
* caching costs K teacher passes per image once, which on-the-fly training spends in K
  epochs.

Both parts are timed here on seeded random images (their cost does not depend on the
pixels or the weights): the student (the paper's network, seven classes, Adam, batch 32)
training on --student-size images drawn through cached views, and the pretrained preset's
teacher (MobileNetV2 1.0 with the seven-class fusion head, --teacher-size) labelling the
same number of warped views. The two alternate for --rounds rounds; medians over rounds,
scaled to the preset's 7,010 training images. Writes bench/results/distillation_views.json.

    .venv/bin/python bench/distillation_views.py [--student-size 96] [--views 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report import machine, write_report  # noqa: E402  (bench/ is the script's folder)

RESULTS = Path(__file__).resolve().parent / "results" / "distillation_views.json"
TRAIN_IMAGES = 7010
CLASSES = 7


def student_seconds_per_image(size: int, views: int, images: int, batch: int) -> float:
    """One pass of Distiller training over ``images`` cached-view batches, per image."""
    import keras

    from skinkd.data.augment import Augmentation, view_transforms
    from skinkd.nn.batches import ImageBatches, TeacherViews
    from skinkd.student.distill import Distiller
    from skinkd.student.network import build_student

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (images, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, images)
    augmentation = Augmentation(20.0, 0.1, 0.1, 0.1, True)
    transforms = np.stack(
        [view_transforms(augmentation, images, 0, k) for k in range(1, views + 1)]
    )
    logits = rng.normal(size=(views, images, CLASSES)).astype(np.float32)
    views_of = TeacherViews(transforms, logits)
    batches = ImageBatches(pixels, labels, batch, teacher_logits=logits[0], views=views_of,
                           shuffle=True, seed=0)  # fmt: skip
    keras.utils.set_random_seed(0)
    distiller = Distiller(build_student(size, "gmp", CLASSES), temperature=2.0, alpha=0.5)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    distiller.train_on_batch(*batches[0])
    start = time.perf_counter()
    for index in range(len(batches)):
        distiller.train_on_batch(*batches[index])
    return (time.perf_counter() - start) / images


def teacher_seconds_per_image(size: int, images: int, batch: int) -> float:
    """The teacher's logits of ``images`` warped views, per image."""
    import keras

    from skinkd.data.augment import Augmentation, view_transforms
    from skinkd.nn.models import keras_logits
    from skinkd.teacher.backbones.mobilenetv2 import build_mobilenetv2
    from skinkd.teacher.backbones.registry import BACKBONES
    from skinkd.teacher.models import build_teacher_head

    keras.utils.set_random_seed(0)
    backbone = build_mobilenetv2(size)
    kinds = {"mobilenetv2": BACKBONES["mobilenetv2"].kind}
    head = build_teacher_head({"mobilenetv2": backbone.output.shape[1:]}, kinds,
                              se_reduction=8, num_classes=CLASSES)  # fmt: skip
    teacher = keras.Model(backbone.input, head({"mobilenetv2": backbone.output}))
    pixels = np.random.default_rng(1).integers(0, 256, (images, size, size, 3), dtype=np.uint8)
    transforms = view_transforms(Augmentation(20.0, 0.1, 0.1, 0.1, True), images, 0, 1)
    keras_logits(teacher, pixels[:batch], batch, transforms=transforms[:batch])
    start = time.perf_counter()
    keras_logits(teacher, pixels, batch, transforms=transforms)
    return (time.perf_counter() - start) / images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student-size", type=int, default=96)
    parser.add_argument("--teacher-size", type=int, default=224)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--images", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--teacher-batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    student, teacher = [], []
    for _ in range(args.rounds):
        student.append(student_seconds_per_image(args.student_size, args.views, args.images,
                                                 args.batch_size))  # fmt: skip
        teacher.append(teacher_seconds_per_image(args.teacher_size, args.images,
                                                 args.teacher_batch_size))  # fmt: skip
        print(f"student {student[-1] * 1e3:.2f} ms/img, teacher {teacher[-1] * 1e3:.2f} ms/img",
              flush=True)  # fmt: skip
    s, t = statistics.median(student), statistics.median(teacher)
    epoch_cached, epoch_on_the_fly = s * TRAIN_IMAGES, (s + t) * TRAIN_IMAGES
    write_report(
        {
            "machine": machine(),
            "student_size": args.student_size,
            "teacher_size": args.teacher_size,
            "views": args.views,
            "images_timed": args.images,
            "rounds": args.rounds,
            "student_ms_per_image": round(s * 1e3, 3),
            "teacher_ms_per_image": round(t * 1e3, 3),
            "epoch_seconds_cached_views": round(epoch_cached, 1),
            "epoch_seconds_on_the_fly": round(epoch_on_the_fly, 1),
            "on_the_fly_over_cached": round(epoch_on_the_fly / epoch_cached, 2),
            "cache_seconds_once": round(args.views * t * TRAIN_IMAGES, 1),
            "break_even_epochs": args.views,
        },
        RESULTS,
    )


if __name__ == "__main__":
    main()
