"""Benchmark: batch-1 latency of the student, Keras and TFLite (fp32, fp16, int8), with 1
and 2 threads (not a test).

The student is built at --image-size with seeded random weights (the cost of a forward pass
does not depend on the weights) and exported with skinkd.edge.export.export_tflite; the int8
model is calibrated on preprocessed synthetic lesions. Each model runs one uint8 image at a
time through the project's own classes (TFLiteClassifier: input quantisation included;
Keras: predict_on_batch on the rescaled image), --warmup runs first, then --runs timed
runs; the median and 90th percentile are reported. Keras runs in a child process per
thread count, since TensorFlow fixes its thread pools at start-up. Writes
bench/results/latency.json.

    .venv/bin/python bench/latency.py [--image-size 224] [--runs 300] [--warmup 30]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--keras", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.keras:
        args.threads = args.threads[0]
        keras_child(args)
        return

    import keras

    from skinkd.data.lesions import render_lesion
    from skinkd.data.preprocess import Preprocessing, preprocess_image
    from skinkd.edge.export import TFLiteClassifier, export_tflite
    from skinkd.student.network import build_student

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    params = Preprocessing(image_size=args.image_size)
    representative = np.stack([preprocess_image(render_lesion(rng, k % 2 == 1, 600, 450), params) for k in range(64)])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: Path(tmp) / f"student_{name}.tflite" for name in ("fp32", "fp16", "int8")}
        model = build_student(args.image_size)
        model.save(Path(tmp) / "student.keras")
        export_tflite(model, paths["fp16"], paths["int8"], representative, out_fp32=paths["fp32"])
        image = test_image(args.image_size)
        for threads in args.threads:
            child = [sys.executable, __file__, "--keras", str(Path(tmp) / "student.keras"),
                     "--threads", str(threads), "--image-size", str(args.image_size),
                     "--runs", str(args.runs), "--warmup", str(args.warmup)]  # fmt: skip
            out = subprocess.run(child, capture_output=True, text=True, check=True).stdout
            timing = json.loads(out.strip().splitlines()[-1])
            size = (Path(tmp) / "student.keras").stat().st_size
            results.append({"model": "keras", "threads": threads, "bytes": size, **timing})
            print(results[-1], flush=True)
            for name, path in paths.items():
                classifier = TFLiteClassifier(path, num_threads=threads)
                timing = timed(classifier.predict_logits, image, args.runs, args.warmup)
                results.append({"model": f"tflite_{name}", "threads": threads, "bytes": path.stat().st_size, **timing})
                print(results[-1], flush=True)
    report = {
        "benchmark": "batch-1 latency of the student",
        "machine": machine(keras_backend=keras.backend.backend()),
        "image_size": args.image_size,
        "results": results,
    }  # fmt: skip
    write_report(report, args.out)


if __name__ == "__main__":
    main()
