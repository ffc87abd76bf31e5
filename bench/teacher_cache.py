"""Benchmark of the teacher's frozen-feature cache: epoch time with and without it (not a test).

With frozen backbones the pipeline computes their features once (``cache_features``) and
trains only the fusion head on them; without the cache every epoch runs the backbones
forward again. On the same synthetic images (``render_lesion`` -> ``preprocess_image``,
uint8 at --image-size), the same batch size and epochs, with the config's teacher optimizer
and learning rate, this measures:
- with the cache: ``build_teacher_head`` trained by ``fit_classifier`` on ``FeatureBatches``
  of the features ``extract_features`` computed;
- without: ``build_teacher(..., trainable_backbones=False)`` trained by ``fit_classifier``
  on ``ImageBatches`` (backbones frozen, run forward on every training and validation batch);
- the one-off cache build: seconds to extract the training and validation features once
  (after a one-batch warm-up that pays for graph tracing, reported apart), and seconds per
  augmented view (one more pass over the training images, warped by the config's views);
- break-even epochs = cache build / (epoch without - epoch with), both free of tracing;
- the whole run's wall time each way, building, tracing and saving included.
Both runs see the un-augmented training images (the pipeline's head also trains on the
cached augmented views, 1 + augmented_views rows per image; end-to-end training augments
on the fly). Epoch seconds are wall time between the ends of consecutive epochs (read from
``fit_classifier``'s per-epoch log line), so they include validation; the first epoch, which
also pays for tracing, is measured from the ``fit_classifier`` call and left out of the
median. Backbone weights are random (``none``): the cost of a forward pass does not depend
on them. Writes bench/results/teacher_cache.json.

    .venv/bin/python bench/teacher_cache.py [--preset small] [--image-size 128] [--images 256]
        [--epochs 3] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from skinkd.data.augment import Augmentation, view_transforms  # noqa: E402
from skinkd.data.lesions import render_lesion  # noqa: E402
from skinkd.data.preprocess import Preprocessing, preprocess_image  # noqa: E402
from skinkd.nn.batches import FeatureBatches, ImageBatches  # noqa: E402
from skinkd.nn.fit import fit_classifier, make_optimizer  # noqa: E402
from skinkd.teacher.backbones.registry import BACKBONES, build_backbone  # noqa: E402
from skinkd.teacher.models import build_teacher, build_teacher_head, extract_features  # noqa: E402
from skinkd.teacher.presets import TEACHER_PRESETS  # noqa: E402

SEED = 0


class _EpochClock(logging.Handler):
    """Timestamps of ``fit_classifier``'s "epoch N: ..." log lines (one per epoch end)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.ends: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("epoch "):
            self.ends.append(time.perf_counter())


def render_images(n: int, image_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n preprocessed synthetic lesions (uint8 (n, S, S, 3)) and labels, 40 % malignant."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(np.int32)
    params = Preprocessing(image_size=image_size)
    images = np.stack(
        [preprocess_image(render_lesion(rng, bool(y), 200, 150), params) for y in labels]
    )
    return images, labels


def timed_fit(model, train, val, optimizer, epochs: int, out_dir: Path) -> dict:
    """Seconds of each epoch of ``fit_classifier`` and of the whole call."""
    clock = _EpochClock()
    logger = logging.getLogger("skinkd.nn.fit")
    logger.addHandler(clock)
    logger.setLevel(logging.INFO)
    try:
        start = time.perf_counter()
        fit_classifier(
            model, train, val, optimizer, epochs, out_dir / "model.keras", out_dir / "history.csv"
        )
        total = time.perf_counter() - start
    finally:
        logger.removeHandler(clock)
    assert len(clock.ends) == epochs, f"saw {len(clock.ends)} epoch lines, expected {epochs}"
    ends = [start, *clock.ends]
    per_epoch = [b - a for a, b in zip(ends, ends[1:], strict=False)]
    steady = per_epoch[1:] or per_epoch
    return {
        "epoch_s_median": round(statistics.median(steady), 4),
        "epoch_s_all": [round(s, 4) for s in per_epoch],
        "fit_classifier_total_s": round(total, 3),
    }


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", choices=sorted(TEACHER_PRESETS))
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--images", type=int, default=256, help="training images")
    parser.add_argument("--epochs", type=int, default=3, help="per run; median skips the 1st")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default=str(PROJECT / "bench/results/teacher_cache.json"))
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is left out of the median)")

    config = yaml.safe_load((PROJECT / "config.yaml").read_text())
    teacher_cfg, augment = config["teacher"], config["augment"]
    backbones = TEACHER_PRESETS[args.preset]
    n_val = max(args.batch_size, args.images // 4)

    start = time.perf_counter()
    train_images, train_labels = render_images(args.images, args.image_size, SEED)
    val_images, val_labels = render_images(n_val, args.image_size, SEED + 1)
    render_s = time.perf_counter() - start

    scratch = Path(tempfile.mkdtemp(prefix="skinkd-bench-teacher-"))
    try:
        # --- with the cache: extract once, then train the head on the features.
        keras.utils.set_random_seed(SEED)
        start = time.perf_counter()
        models = {name: build_backbone(name, args.image_size, None) for name in backbones}
        backbone_build_s = time.perf_counter() - start
        # One batch first, so the timed passes below leave out the one-off graph tracing
        # (as the median epoch leaves out the first epoch's).
        start = time.perf_counter()
        extract_features(models, train_images[: args.batch_size], args.batch_size)
        warmup_s = time.perf_counter() - start
        start = time.perf_counter()
        train_x = extract_features(models, train_images, args.batch_size)
        train_extract_s = time.perf_counter() - start
        start = time.perf_counter()
        val_x = extract_features(models, val_images, args.batch_size)
        val_extract_s = time.perf_counter() - start
        views = view_transforms(Augmentation.from_config(augment), len(train_images), SEED, 1)
        start = time.perf_counter()
        extract_features(models, train_images, args.batch_size, transforms=views)
        view_s = time.perf_counter() - start
        feature_shapes = {name: tuple(a.shape[1:]) for name, a in train_x.items()}
        del models
        keras.backend.clear_session()

        keras.utils.set_random_seed(SEED)
        head = build_teacher_head(
            feature_shapes,
            {name: BACKBONES[name].kind for name in backbones},
            se_reduction=teacher_cfg["se_reduction"],
        )
        with_cache = timed_fit(
            head,
            FeatureBatches(train_x, train_labels, args.batch_size, shuffle=True, seed=SEED),
            FeatureBatches(val_x, val_labels, args.batch_size),
            make_optimizer(teacher_cfg["optimizer"], teacher_cfg["learning_rate"]),
            args.epochs,
            scratch / "with",
        )
        with_cache["trainable_params"] = _trainable(head)
        del head
        keras.backend.clear_session()

        # --- without: the frozen backbones run forward on every batch of every epoch.
        keras.utils.set_random_seed(SEED)
        start = time.perf_counter()
        teacher = build_teacher(
            backbones, args.image_size, dict.fromkeys(backbones), trainable_backbones=False
        )
        teacher_build_s = time.perf_counter() - start
        without_cache = timed_fit(
            teacher,
            ImageBatches(train_images, train_labels, args.batch_size, shuffle=True, seed=SEED),
            ImageBatches(val_images, val_labels, args.batch_size),
            make_optimizer(teacher_cfg["optimizer"], teacher_cfg["learning_rate"]),
            args.epochs,
            scratch / "without",
        )
        without_cache["build_teacher_s"] = round(teacher_build_s, 3)
        without_cache["params"] = int(teacher.count_params())
        without_cache["trainable_params"] = _trainable(teacher)
    finally:
        shutil.rmtree(scratch)

    cache_build_s = train_extract_s + val_extract_s
    with_total_s = (
        backbone_build_s + warmup_s + cache_build_s + with_cache["fit_classifier_total_s"]
    )
    without_total_s = teacher_build_s + without_cache["fit_classifier_total_s"]
    saved_per_epoch = without_cache["epoch_s_median"] - with_cache["epoch_s_median"]
    results = {
        "command": "python bench/teacher_cache.py "
        f"--preset {args.preset} --image-size {args.image_size} --images {args.images} "
        f"--epochs {args.epochs} --batch-size {args.batch_size}",
        "machine": {
            "cores": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "keras_backend": keras.backend.backend(),
            "keras": keras.__version__,
        },
        "settings": {
            "preset": args.preset,
            "backbones": backbones,
            "weights": "none",
            "image_size": args.image_size,
            "train_images": args.images,
            "val_images": n_val,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "optimizer": teacher_cfg["optimizer"],
            "learning_rate": teacher_cfg["learning_rate"],
            "feature_shapes": {k: list(v) for k, v in feature_shapes.items()},
            "images_rendered_s": round(render_s, 2),
        },
        "epoch_s": {
            "note": "epochs after the first; each includes its validation pass",
            "with_cache": with_cache,
            "without_cache": without_cache,
        },
        "ratio_without_over_with": round(
            without_cache["epoch_s_median"] / with_cache["epoch_s_median"], 1
        ),
        "cache_build_s": {
            "total": round(cache_build_s, 3),
            "note": "train + val features, one pass each, after a one-batch warm-up",
            "train_pass": round(train_extract_s, 3),
            "val_pass": round(val_extract_s, 3),
            "per_augmented_view": round(view_s, 3),
            "warmup_first_batch_incl_tracing": round(warmup_s, 3),
            "build_backbones": round(backbone_build_s, 3),
        },
        "break_even_epochs": (
            round(cache_build_s / saved_per_epoch, 2) if saved_per_epoch > 0 else None
        ),
        "whole_run_wall_s": {
            "note": "this run's epochs, everything included (building, tracing, saving)",
            "with_cache": round(with_total_s, 2),
            "without_cache": round(without_total_s, 2),
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
