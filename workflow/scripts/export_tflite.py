"""Rule export_tflite: float16 and full-integer int8 TFLite files of the student."""

import os

# The TFLite converter needs Keras' TensorFlow backend, whatever the training used.
os.environ["KERAS_BACKEND"] = "tensorflow"

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from skinkd.data.cache import load_split  # noqa: E402
from skinkd.data.manifest import read_manifest  # noqa: E402
from skinkd.edge.export import export_tflite  # noqa: E402
from skinkd.nn.models import load_model  # noqa: E402
from skinkd.workflow import run_rule  # noqa: E402


def main() -> None:
    images, _, _ = load_split(
        snakemake.input.shards, read_manifest(snakemake.input.splits), "train"
    )
    rng = np.random.default_rng(snakemake.params.seed)
    count = min(snakemake.params.representative_images, len(images))
    representative = images[np.sort(rng.choice(len(images), count, replace=False))]
    export_tflite(
        load_model(snakemake.input.model),
        Path(snakemake.output.fp16),
        Path(snakemake.output.int8),
        representative,
    )


run_rule(snakemake, main)
