"""Benchmark: external validation, the overlap check and `skinkd evaluate` (not a test).

External set: the first --images HAM10000 images upscaled to 600x450 and re-encoded as JPEG
(copies a user might meet in another set), labelled by the clinical mapping in an
image,label CSV. Reference: all 10,015 HAM10000 images hashed into a manifest and a seeded
70/10/20 split (not timed). Timed, --repeats times each, medians:

- the overlap check: hashing every external image (decode, SHA-256, perceptual hash; on
  every core) and matching it against the 10,015 reference hashes, and the matching alone;
- `skinkd predict MODEL FOLDER`, `skinkd evaluate MODEL labels.csv` and `skinkd evaluate
  ... --against splits.csv` as console commands, interleaved, on the same images and model
  (a 224-px int8 student with seeded random weights: speed does not depend on them).

Writes bench/results/external.json.

    .venv/bin/python bench/external.py [--images 1000] [--image-size 224] [--repeats 3]
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

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report import machine, write_report  # noqa: E402  (bench/ is the script's folder)
from student import export_bench_student  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "external.json"
HAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "ham10000"


def write_reference(folder: Path) -> Path:
    """manifest.csv and splits.csv of every HAM10000 image (hashed on every core)."""
    from skinkd.data.hashing import inspect_image
    from skinkd.data.labelled import image_files
    from skinkd.parallel import map_in_processes

    files = image_files(HAM / "images")
    found = map_in_processes(inspect_image, [str(p) for p in files], os.cpu_count() or 1)
    split = np.random.default_rng(42).choice(["train", "val", "test"], len(files), p=[0.7, 0.1, 0.2])
    folder.mkdir(parents=True)
    with open(folder / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_id", "sha256", "phash"])
        writer.writerows((p.stem, row["sha256"], row["phash"]) for p, row in zip(files, found, strict=True))
    with open(folder / "splits.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_id", "split"])
        writer.writerows((p.stem, s) for p, s in zip(files, split, strict=True))
    return folder / "splits.csv"


def write_external(folder: Path, count: int) -> list[Path]:
    """``count`` HAM10000 images at 600x450 as JPEG, and labels.csv beside them."""
    from skinkd.data.labelled import HAM_MALIGNANT

    malignant = HAM_MALIGNANT["clinical"]
    with open(HAM / "HAM10000_metadata.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda row: row["image_id"])[:count]
    folder.mkdir(parents=True)
    files = []
    for row in rows:
        image = cv2.imread(str(HAM / "images" / f"{row['image_id']}.jpg"))
        big = cv2.resize(image, (600, 450), interpolation=cv2.INTER_CUBIC)
        files.append(folder / f"{row['image_id']}_600.jpg")
        cv2.imwrite(str(files[-1]), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    with open(folder / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "label"])
        writer.writerows((p.name, int(r["dx"] in malignant)) for p, r in zip(files, rows, strict=True))
    return files


def time_overlap(files: list[Path], splits: Path, distance: int) -> tuple[float, float, dict]:
    """(seconds end to end, seconds matching alone, counts) of one overlap check."""
    from skinkd.data.hashing import inspect_image
    from skinkd.evaluate.external import overlap_counts, overlap_rows, read_reference
    from skinkd.parallel import map_in_processes

    start = time.perf_counter()
    reference = read_reference(splits)
    hashed = map_in_processes(inspect_image, [str(p) for p in files], os.cpu_count() or 1)
    matching = time.perf_counter()
    rows = overlap_rows([p.name for p in files], [h["sha256"] for h in hashed],
                        [h["phash"] for h in hashed], reference, distance)  # fmt: skip
    end = time.perf_counter()
    return end - start, end - matching, overlap_counts(rows, reference.split_names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hash-distance", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if not (HAM / "images").is_dir():
        raise SystemExit(f"{HAM}: HAM10000 not found; this benchmark needs ../shared/data")

    skinkd = str(Path(sys.executable).with_name("skinkd"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        splits = write_reference(tmp / "run")
        files = write_external(tmp / "external", args.images)
        model = str(export_bench_student(tmp / "export", args.image_size, files))
        overlap = [time_overlap(files, splits, args.hash_distance) for _ in range(args.repeats)]
        labels = str(tmp / "external" / "labels.csv")
        commands = {
            "predict": [skinkd, "predict", model, str(tmp / "external"), "--out", str(tmp / "p.csv")],
            "evaluate": [skinkd, "evaluate", model, labels, "--out", str(tmp / "e.json")],
            "evaluate_against": [skinkd, "evaluate", model, labels, "--against", str(splits),
                                 "--out", str(tmp / "a.json")],
        }  # fmt: skip
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                seconds[name].append(time.perf_counter() - start)
                print(f"{name}: {seconds[name][-1]:.2f} s", flush=True)
        evaluated = json.loads((tmp / "a.json").read_text())
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    report = {
        "benchmark": "overlap check against HAM10000, and skinkd evaluate beside skinkd predict",
        "machine": machine(),
        "external_images": args.images,
        "external_size": "600x450 JPEG (HAM10000 images upscaled)",
        "reference_images": 10015,
        "image_size": args.image_size,
        "overlap_seconds_each": [round(o[0], 2) for o in overlap],
        "overlap_median_seconds": round(statistics.median(o[0] for o in overlap), 2),
        "matching_median_seconds": round(statistics.median(o[1] for o in overlap), 3),
        "overlap_counts": overlap[0][2],
        "cli_seconds_each": {name: [round(s, 2) for s in values] for name, values in seconds.items()},
        "cli_median_seconds": {name: round(value, 2) for name, value in medians.items()},
        "evaluate_over_predict": round(medians["evaluate"] / medians["predict"], 3),
        "evaluate_against_over_predict": round(medians["evaluate_against"] / medians["predict"], 3),
        "evaluate_against_overlap": evaluated["overlap"],
    }
    write_report(report, args.out)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
