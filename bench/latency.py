"""Benchmark: batch-1 latency of the student, Keras and TFLite (fp32, fp16, int8), with 1
and 2 threads, at each input side of --image-sizes (not a test).

The student (two outputs, or the seven diagnoses with --classes dx, exported as seven class
logits and read through the clinical mapping's malignant mask, as the workflow does) is
built at each side with seeded random weights (the cost of a forward pass does not depend
on the weights) and exported with skinkd.edge.export.export_tflite; the int8
model is calibrated on preprocessed synthetic lesions. Each model runs one uint8 image at a
time through the project's own classes (TFLiteClassifier: input quantisation included;
Keras: predict_on_batch on the rescaled image), --warmup runs first, then --runs timed
runs; the median and 90th percentile are reported. Keras runs in a child process per
thread count, since TensorFlow fixes its thread pools at start-up. Writes
bench/results/latency.json.

    .venv/bin/python bench/latency.py [--image-sizes 64 96 128 224] [--classes dx] [--runs 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report import machine, write_report  # noqa: E402  (bench/ is the script's folder)

RESULTS = Path(__file__).resolve().parent / "results" / "latency.json"


def timed(run, image: np.ndarray, runs: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        run(image)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        run(image)
        seconds.append(time.perf_counter() - start)
    ms = np.array(seconds) * 1000
    return {"median_ms": round(float(statistics.median(ms)), 3), "p90_ms": round(float(np.percentile(ms, 90)), 3), "runs": runs}


def test_image(size: int) -> np.ndarray:
    from skinkd.data.lesions import render_lesion
    from skinkd.data.preprocess import Preprocessing, preprocess_image

    rng = np.random.default_rng(0)
    return preprocess_image(render_lesion(rng, True, 600, 450), Preprocessing(image_size=size))[None]


def keras_child(args: argparse.Namespace) -> None:
    """One thread count, Keras student: prints the timing as JSON."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from skinkd.edge.inference import KerasClassifier

    model = KerasClassifier(args.keras)
    image = test_image(args.image_size)
    print(json.dumps(timed(model.predict_logits, image, args.runs, args.warmup)))


def side_results(args: argparse.Namespace, size: int, tmp: Path) -> list[dict]:
    """Every model and thread count at one input side."""
    import keras

    from skinkd.data.classes import malignant_mask
    from skinkd.data.lesions import render_lesion
    from skinkd.data.preprocess import Preprocessing, preprocess_image
    from skinkd.edge.export import TFLiteClassifier, export_tflite
    from skinkd.nn.models import with_binary_output
    from skinkd.student.network import build_student

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    params = Preprocessing(image_size=size)
    representative = np.stack([preprocess_image(render_lesion(rng, k % 2 == 1, 600, 450), params)
                               for k in range(64)])  # fmt: skip
    malignant = list(malignant_mask(args.classes, "clinical"))
    paths = {name: tmp / f"student_{size}_{name}.tflite" for name in ("fp32", "fp16", "int8")}
    keras_path = tmp / f"student_{size}.keras"
    # Saved as the workflow saves it: class logits collapsed to benign/malignant.
    model = with_binary_output(build_student(size, num_classes=len(malignant)), malignant)
    model.save(keras_path)
    export_tflite(model, paths["fp16"], paths["int8"], representative, out_fp32=paths["fp32"])
    image = test_image(size)
    results = []
    for threads in args.threads:
        child = [sys.executable, __file__, "--keras", str(keras_path), "--threads", str(threads),
                 "--image-sizes", str(size), "--runs", str(args.runs),
                 "--warmup", str(args.warmup)]  # fmt: skip
        out = subprocess.run(child, capture_output=True, text=True, check=True).stdout
        timing = json.loads(out.strip().splitlines()[-1])
        results.append({"image_size": size, "model": "keras", "threads": threads,
                        "bytes": keras_path.stat().st_size, **timing})  # fmt: skip
        print(results[-1], flush=True)
        for name, path in paths.items():
            classifier = TFLiteClassifier(path, num_threads=threads,
                                          malignant=malignant if len(malignant) > 2 else None)  # fmt: skip
            timing = timed(classifier.predict_logits, image, args.runs, args.warmup)
            results.append({"image_size": size, "model": f"tflite_{name}", "threads": threads,
                            "bytes": path.stat().st_size, **timing})  # fmt: skip
            print(results[-1], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[64, 96, 128, 224])
    parser.add_argument("--classes", choices=["binary", "dx"], default="binary")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--keras", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.keras:
        args.threads, args.image_size = args.threads[0], args.image_sizes[0]
        keras_child(args)
        return

    import keras

    with tempfile.TemporaryDirectory() as tmp:
        results = [row for size in args.image_sizes for row in side_results(args, size, Path(tmp))]
    report = {
        "benchmark": "batch-1 latency of the student",
        "machine": machine(keras_backend=keras.backend.backend()),
        "classes": args.classes,
        "image_sizes": args.image_sizes,
        "results": results,
    }  # fmt: skip
    write_report(report, args.out)


if __name__ == "__main__":
    main()
