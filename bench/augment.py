"""Benchmark: the training augmentation as one cv2.warpAffine per image (skinkd.data.augment)
against the four Keras preprocessing layers it replaced (not a test).

Both augment the same seeded uint8 images, in batches of --batch-size, with the config's
default ranges (rotation 20 degrees, shifts 0.1, x shear 0.1, horizontal flip). The Keras
layers (RandomRotation, RandomTranslation, RandomShear, RandomFlip; fill mode nearest, as
the project's Keras augmenter had) run in training mode on rescaled float batches, two ways:
eagerly, as the student's batch loader called them (`keras_eager`), and inside one compiled
tf.function (`keras_compiled`, traced by a warm-up call), the best they could have done. The
three run --repeats times, alternating; the medians and the ratios to the warp are reported.
Writes bench/results/augment.json.

    .venv/bin/python bench/augment.py [--images 2000] [--image-size 64] [--repeats 5]
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

RESULTS = Path(__file__).resolve().parent / "results" / "augment.json"
ROTATION, SHIFT, SHEAR = 20.0, 0.1, 0.1


def warp_epoch(images: np.ndarray, batch_size: int, seed: int) -> None:
    from skinkd.data.augment import Augmentation, augment_batch

    augmentation = Augmentation(ROTATION, SHIFT, SHIFT, SHEAR, horizontal_flip=True)
    rng = np.random.default_rng(seed)
    for start in range(0, len(images), batch_size):
        augment_batch(images[start : start + batch_size], augmentation, rng)


def keras_augmenters(seed: int):
    """The four layers called eagerly, and the same layers in one compiled function."""
    import keras
    import tensorflow as tf

    layers = keras.Sequential(
        [
            keras.layers.RandomRotation(ROTATION / 360, fill_mode="nearest", seed=seed),
            keras.layers.RandomTranslation(SHIFT, SHIFT, fill_mode="nearest", seed=seed + 1),
            keras.layers.RandomShear(x_factor=SHEAR, fill_mode="nearest", seed=seed + 2),
            keras.layers.RandomFlip("horizontal", seed=seed + 3),
        ]
    )
    def eager(batch):
        return layers(batch, training=True)

    return eager, tf.function(eager)


def keras_epoch(augment, images: np.ndarray, batch_size: int) -> None:
    from skinkd.data.preprocess import rescale

    for start in range(0, len(images), batch_size):
        np.asarray(augment(rescale(images[start : start + batch_size])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.image_size, args.image_size, 3), dtype=np.uint8)
    eager, compiled = keras_augmenters(seed=0)
    for augment in (eager, compiled):
        keras_epoch(augment, images[: 2 * args.batch_size], args.batch_size)
    runs = {
        "warp_affine": lambda repeat: warp_epoch(images, args.batch_size, seed=repeat),
        "keras_eager": lambda repeat: keras_epoch(eager, images, args.batch_size),
        "keras_compiled": lambda repeat: keras_epoch(compiled, images, args.batch_size),
    }
    seconds = {name: [] for name in runs}
    for repeat in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(repeat)
            seconds[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    report = {
        "benchmark": "training augmentation: one cv2.warpAffine per image against four Keras layers",
        "machine": machine(),
        "images": args.images,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "seconds_each": {name: [round(s, 4) for s in values] for name, values in seconds.items()},
        "median_ms": {name: round(s * 1000, 1) for name, s in medians.items()},
        "ratio_to_warp": {
            name: round(medians[name] / medians["warp_affine"], 1) for name in ("keras_eager", "keras_compiled")
        },
    }
    write_report(report, args.out)
    print(report["median_ms"], report["ratio_to_warp"])


if __name__ == "__main__":
    main()
