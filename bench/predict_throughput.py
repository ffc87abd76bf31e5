"""Benchmark: `skinkd predict` on a folder of 600x450 images, end to end (not a test).

Generates --images synthetic dermoscopy-like JPEGs of 600x450 (skinkd.data.synthetic; generation
not timed), exports a student at --image-size (seeded random weights: speed does not depend
on them) to int8 TFLite with a model card, then times the real console command
`skinkd predict MODEL FOLDER --out predictions.csv` (process start, decoding, the six
preprocessing stages at full resolution, inference and the CSV included) --repeats times
and reports the median. Writes bench/results/predict.json.

    .venv/bin/python bench/predict_throughput.py [--images 1000] [--image-size 224] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report import machine, write_report  # noqa: E402  (bench/ is the script's folder)
from student import export_bench_student  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "predict.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    from skinkd.data.synthetic import generate_synthetic

    skinkd = Path(sys.executable).with_name("skinkd")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate_synthetic(tmp / "data", args.images, seed=0, width=600, height=450)
        folder = tmp / "data" / "images"
        files = sorted(folder.glob("*.jpg"))
        export = tmp / "export"
        export_bench_student(export, args.image_size, files)
        command = [str(skinkd), "predict", str(export / "student_int8.tflite"), str(folder),
                   "--out", str(tmp / "predictions.csv"), "--threads", str(args.threads)]  # fmt: skip
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            seconds.append(time.perf_counter() - start)
            print(f"{seconds[-1]:.2f} s", flush=True)
        with open(tmp / "predictions.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        if len(rows) != len(files) or any(row["error"] for row in rows):
            raise SystemExit(f"predict wrote {len(rows)} rows for {len(files)} images, or errors")
    median = statistics.median(seconds)
    report = {
        "benchmark": "skinkd predict on a folder of 600x450 JPEGs, end to end",
        "predict_command": "skinkd predict student_int8.tflite FOLDER --out predictions.csv "
        f"--threads {args.threads} (workers: all {os.cpu_count()} cores)",
        "machine": machine(),
        "images": args.images,
        "image_size": args.image_size,
        "seconds_each": [round(s, 2) for s in seconds],
        "median_seconds": round(median, 2),
        "images_per_second": round(args.images / median, 1),
    }
    write_report(report, args.out)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
