"""Benchmark: what fine-tuning MobileNetV2's last blocks costs on a CPU, end to end on
images against a cache of the activations that enter the first unfrozen block (not a test).

`teacher.fine_tune_blocks` trains the last N inverted-residual blocks (and the final 1x1
convolution) end to end on 224-px images: every step runs the whole frozen network forward.
With the activations at the cut cached once (one forward pass of the frozen part, like the
feature cache), a step would run only the top. This measures, for each N, a training step
(Adam, BatchNorm frozen, a pooled 7-class dense head) both ways, with MobileNetV2's real
architecture and seeded random weights (the cost does not depend on the weights), and the
forward pass of the frozen part per image, the cost of building that cache. Medians of
--repeats timed steps after --warmup. The epoch columns scale them to the pretrained
preset's 7,010 training images: an epoch shows each image once (end to end, a fresh
augmented view; from the cache, the plain image or one of its views), and the cache holds
each image and its 2 views. Writes bench/results/fine_tune.json.

    .venv/bin/python bench/fine_tune.py [--blocks 2 4] [--batch-size 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report import machine, write_report  # noqa: E402  (bench/ is the script's folder)

RESULTS = Path(__file__).resolve().parent / "results" / "fine_tune.json"
IMAGE_SIZE, CLASSES = 224, 7
TRAIN_IMAGES, VIEWS = 7010, 2


def median_seconds(step, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def classifier(backbone_input, backbone_output):
    """A pooled 7-class dense head on the backbone, compiled for training."""
    import keras

    pooled = keras.layers.GlobalAveragePooling2D()(backbone_output)
    model = keras.Model(backbone_input, keras.layers.Dense(CLASSES)(pooled))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def measure(blocks: int, batch_size: int, repeats: int, warmup: int) -> dict[str, Any]:
    import keras

    from skinkd.teacher.backbones.mobilenetv2 import (
        INVERTED_RESIDUAL_BLOCKS,
        build_mobilenetv2,
        unfreeze_last_blocks,
    )

    keras.utils.set_random_seed(0)
    backbone = build_mobilenetv2(IMAGE_SIZE)
    unfreeze_last_blocks(backbone, blocks)
    first = INVERTED_RESIDUAL_BLOCKS - blocks + 1
    cut = next(layer for layer in backbone.layers if layer.name.startswith(f"features_{first}_"))
    cut_tensor = cut.input
    bottom = keras.Model(backbone.input, cut_tensor)
    top_input = keras.Input(cut_tensor.shape[1:])
    top = keras.Model(cut_tensor, backbone.output)
    end_to_end = classifier(backbone.input, backbone.output)
    from_cache = classifier(top_input, top(top_input))

    rng = np.random.default_rng(0)
    images = rng.random((batch_size, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
    labels = rng.integers(0, CLASSES, batch_size)
    cached = np.asarray(bottom.predict_on_batch(images), np.float32)
    seconds = {
        "end_to_end_step": median_seconds(lambda: end_to_end.train_on_batch(images, labels), repeats, warmup),
        "cached_step": median_seconds(lambda: from_cache.train_on_batch(cached, labels), repeats, warmup),
        "cache_forward": median_seconds(lambda: bottom.predict_on_batch(images), repeats, warmup),
    }
    per_image = {name: s / batch_size for name, s in seconds.items()}
    return {
        "cut": f"before block {first}, activations {tuple(int(d) for d in cut_tensor.shape[1:])}",
        "trainable_parameters": int(sum(np.prod(w.shape) for w in end_to_end.trainable_weights)),
        "ms_per_image": {name: round(s * 1000, 2) for name, s in per_image.items()},
        "minutes": {
            "epoch_end_to_end": round(per_image["end_to_end_step"] * TRAIN_IMAGES / 60, 1),
            "epoch_cached": round(per_image["cached_step"] * TRAIN_IMAGES / 60, 1),
            "building_the_cache": round(per_image["cache_forward"] * TRAIN_IMAGES * (1 + VIEWS) / 60, 1),
        },
        "end_to_end_over_cached": round(seconds["end_to_end_step"] / seconds["cached_step"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = {
        "benchmark": "fine-tuning MobileNetV2's last blocks at 224 px: end to end on images "
        "against cached activations at the cut",
        "machine": machine(),
        "batch_size": args.batch_size,
        "epoch_images": TRAIN_IMAGES,
        "cached_views": VIEWS,
        "blocks": {str(n): measure(n, args.batch_size, args.repeats, args.warmup) for n in args.blocks},
    }
    write_report(report, args.out)
    for blocks, result in report["blocks"].items():
        print(blocks, result["ms_per_image"], result["minutes"], result["end_to_end_over_cached"])


if __name__ == "__main__":
    main()
