"""Benchmark: what an epoch of fine-tuning the whole MobileNetV2 costs on a CPU, at 224 and
160 px, in float32 and in Keras' mixed_bfloat16 policy (not a test).

Each cell builds MobileNetV2 (real architecture, seeded random weights: the cost does not
depend on the weights) with every inverted-residual block trainable and BatchNorm frozen,
the pooled 7-class head of bench/fine_tune.py, and times --repeats training steps of
--batch-size images after --warmup (Adam). The epoch column scales the median step to the
pretrained preset's 7,010 training images. The cells run alternating, --rounds times, and
the medians over rounds are reported. Whether the CPU has bfloat16 arithmetic
(avx512_bf16 or amx_bf16) is read from its flags and written beside the numbers: without
it, mixed_bfloat16 is emulated. Writes bench/results/fine_tune_precision.json.

    .venv/bin/python bench/fine_tune_precision.py [--sizes 224 160] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fine_tune import CLASSES, TRAIN_IMAGES, classifier, median_seconds  # noqa: E402

from report import machine, write_report  # noqa: E402  (bench/ is the script's folder)

RESULTS = Path(__file__).resolve().parent / "results" / "fine_tune_precision.json"
POLICIES = ("float32", "mixed_bfloat16")


def step_seconds(size: int, policy: str, batch_size: int, repeats: int, warmup: int) -> float:
    import keras

    from skinkd.teacher.backbones.mobilenetv2 import (
        INVERTED_RESIDUAL_BLOCKS,
        build_mobilenetv2,
        unfreeze_last_blocks,
    )

    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        backbone = build_mobilenetv2(size)
        unfreeze_last_blocks(backbone, INVERTED_RESIDUAL_BLOCKS)
        model = classifier(backbone.input, backbone.output)
        rng = np.random.default_rng(0)
        images = rng.random((batch_size, size, size, 3), dtype=np.float32)
        labels = rng.integers(0, CLASSES, batch_size)
        return median_seconds(lambda: model.train_on_batch(images, labels), repeats, warmup)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 160])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    cells = [(size, policy) for size in args.sizes for policy in POLICIES]
    seconds: dict[tuple[int, str], list[float]] = {cell: [] for cell in cells}
    for _ in range(args.rounds):
        for size, policy in cells:
            seconds[(size, policy)].append(
                step_seconds(size, policy, args.batch_size, args.repeats, args.warmup)
            )
            print(size, policy, round(seconds[(size, policy)][-1], 3), flush=True)
    results: list[dict[str, Any]] = []
    for size, policy in cells:
        step = statistics.median(seconds[(size, policy)])
        results.append({
            "image_size": size,
            "policy": policy,
            "step_seconds": round(step, 3),
            "rounds": [round(s, 3) for s in seconds[(size, policy)]],
            "epoch_minutes": round(step / args.batch_size * TRAIN_IMAGES / 60, 1),
        })  # fmt: skip
    info = machine()
    bf16 = [flag for flag in ("avx512_bf16", "amx_bf16") if flag in info["cpu_flags"]]
    write_report(
        {
            "benchmark": "an epoch of fine-tuning all of MobileNetV2, by input size and precision",
            "machine": info,
            "bfloat16_arithmetic": bf16 or "none: this CPU has no bfloat16 instructions, so "
            "mixed_bfloat16 is emulated in float32 arithmetic",
            "batch_size": args.batch_size,
            "train_images": TRAIN_IMAGES,
            "results": results,
        },
        RESULTS,
    )


if __name__ == "__main__":
    main()
