"""The exported student the edge benchmarks run: seeded random weights (speed does not
depend on them), int8 TFLite calibrated on a few of the benchmark's own images, a card."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def export_bench_student(folder: Path, image_size: int, sample: Sequence[Path]) -> Path:
    """Write student_int8.tflite (and fp16) with model_card.json into ``folder``; its path."""
    import keras

    from skinkd.data.images import read_image
    from skinkd.data.preprocess import Preprocessing, preprocess_image
    from skinkd.edge.export import export_tflite, write_model_card
    from skinkd.student.network import build_student

    params = Preprocessing(image_size=image_size)
    keras.utils.set_random_seed(0)
    model = build_student(image_size)
    folder.mkdir(parents=True, exist_ok=True)
    representative = np.stack([preprocess_image(read_image(p), params) for p in sample[:64]])
    int8 = folder / "student_int8.tflite"
    export_tflite(model, folder / "student_fp16.tflite", int8, representative)
    write_model_card(
        folder / "model_card.json", image_size=image_size, preprocessing=params.to_dict(),
        class_names=["benign", "malignant"], threshold=0.5, threshold_choice={},
        files={"tflite_int8": int8}, test_metrics={},
        training_data={"dataset": "benchmark"}, config_hash="bench",
    )  # fmt: skip
    return int8
