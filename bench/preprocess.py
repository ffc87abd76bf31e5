"""Benchmark of the six-stage preprocessing on the real HAM10000 images (not a test).

Measures, on ../shared/data/ham10000 (10,015 images, 200x150):
- milliseconds per stage (median over a sample), decoding included as its own line;
- the whole set through ``skinkd.data.cache.build_shard`` (decode, six stages, write the uint8
  shards), with 1 process and with all cores, as wall seconds and images per second;
- the ``snakemake -n`` time on the HAM10000 preset (median of several runs).
Writes bench/results/preprocess.json.

    .venv/bin/python bench/preprocess.py [--sample 500] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from skinkd.data.cache import build_shard  # noqa: E402
from skinkd.data.datasets import load_ham10000  # noqa: E402
from skinkd.data.images import read_image  # noqa: E402
from skinkd.data.preprocess import (  # noqa: E402
    Preprocessing,
    bilateral_filter,
    close_hairs,
    highlight_region,
    resize,
    unsharp_mask,
)

HAM = PROJECT.parent / "shared" / "data" / "ham10000"


def stage_milliseconds(paths: list[str], params: Preprocessing) -> dict[str, float]:
    """Median ms per stage over the sample, each stage fed the previous stage's output."""
    cv2.setNumThreads(1)
    times: dict[str, list[float]] = {
        k: [] for k in ("decode", "closing", "bilateral", "highlight", "unsharp", "resize")
    }
    steps = [
        ("closing", lambda im: close_hairs(im, params.closing)),
        ("bilateral", lambda im: bilateral_filter(im, params.bilateral)),
        ("highlight", lambda im: highlight_region(im, params.highlight)),
        ("unsharp", lambda im: unsharp_mask(im, params.unsharp)),
        ("resize", lambda im: resize(im, params.image_size, params.interpolation)),
    ]
    for path in paths:
        start = time.perf_counter()
        image = read_image(path)
        times["decode"].append(time.perf_counter() - start)
        for name, step in steps:
            start = time.perf_counter()
            image = step(image)
            times[name].append(time.perf_counter() - start)
    return {k: round(statistics.median(v) * 1000, 3) for k, v in times.items()}


def _shard_job(args: tuple) -> int:
    manifest, shard, shards, params, out = args
    cv2.setNumThreads(1)
    return build_shard(manifest, shard, shards, params, out)


def whole_set_seconds(manifest, params: Preprocessing, processes: int, shards: int) -> float:
    """Wall seconds to preprocess and write every image, ``processes`` shards at a time."""
    out = Path(tempfile.mkdtemp(prefix="skinkd-bench-"))
    jobs = [(manifest, s, shards, params, out / f"shard_{s}.npz") for s in range(shards)]
    try:
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=processes) as pool:
            assert sum(pool.map(_shard_job, jobs)) == len(manifest)
        return time.perf_counter() - start
    finally:
        shutil.rmtree(out)


def dry_run_seconds(repeats: int) -> list[float]:
    """``snakemake -n`` on the HAM10000 preset, in a scratch working directory."""
    workdir = Path(tempfile.mkdtemp(prefix="skinkd-dry-"))
    shutil.copy(PROJECT / "config.yaml", workdir)
    override = workdir / "root.yaml"
    override.write_text(f"dataset:\n  root: {HAM}\n")
    cmd = [
        sys.executable, "-m", "snakemake", "-n", "-s", str(PROJECT / "Snakefile"),
        "-d", str(workdir), "--configfile", str(PROJECT / "config/ham10000.yaml"), str(override),
    ]  # fmt: skip
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        seconds.append(time.perf_counter() - start)
    shutil.rmtree(workdir)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=500, help="images for the per-stage times")
    parser.add_argument("--repeats", type=int, default=5, help="snakemake -n runs")
    parser.add_argument("--shards", type=int, default=8, help="shards (the preset's count)")
    parser.add_argument("--out", default=str(PROJECT / "bench/results/preprocess.json"))
    args = parser.parse_args()
    if not HAM.is_dir():
        sys.exit(f"{HAM} not found: this benchmark needs the real HAM10000 images")
    manifest = load_ham10000(HAM, "HAM10000_metadata.csv", "paper")
    params = Preprocessing()
    cores = os.cpu_count() or 1
    stages = stage_milliseconds(list(manifest["path"][: args.sample]), params)
    one = whole_set_seconds(manifest, params, 1, args.shards)
    every = whole_set_seconds(manifest, params, cores, args.shards)
    dry = dry_run_seconds(args.repeats)
    results = {
        "command": "python bench/preprocess.py "
        f"--sample {args.sample} --repeats {args.repeats} --shards {args.shards}",
        "machine": {
            "cores": cores,
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "opencv": cv2.__version__,
        },
        "images": len(manifest),
        "input_size": "200x150",
        "image_size": params.image_size,
        "stage_ms_median": stages,
        "six_stages_ms_median": round(sum(v for k, v in stages.items() if k != "decode"), 3),
        "whole_set": {
            "1_process": {"seconds": round(one, 2), "images_per_s": round(len(manifest) / one, 1)},
            f"{cores}_processes": {
                "seconds": round(every, 2),
                "images_per_s": round(len(manifest) / every, 1),
            },
            "speedup": round(one / every, 2),
        },
        "snakemake_dry_run_s": {
            "median": round(statistics.median(dry), 3),
            "runs": [round(s, 3) for s in dry],
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
