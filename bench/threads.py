"""Benchmark: a grid of one-thread ablation cells on every core, with the jobs' thread pools
sized to their rule's threads (this checkout) and without (the code at --before), side by
side (not a test).

Each side gets a Snakemake workdir of its own on the tiny synthetic preset, enlarged so a
cell takes seconds (--images synthetic images, --epochs student epochs at 48 px) and with
four cells: baseline and three optimizers, one seed. The upstream jobs (data, teacher, soft
labels) run once per side, untimed. Then `snakemake ablation --cores N --forcerun
ablation_cell` runs the four one-thread cells --repeats times, the two sides alternating;
each time the wall seconds and the CPU seconds (user + system of every child process) are
recorded, and the medians and their ratios are reported. Writes bench/results/threads.json.

    .venv/bin/python bench/threads.py [--before REV] [--cores 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from report import machine, write_report  # noqa: E402  (bench/ is the script's folder)
from skinkd.runs.suite import children_cpu_seconds  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "threads.json"


def grid_config(images: int, epochs: int) -> dict:
    factors = {name: [] for name in ("batch_size", "learning_rate", "temperature", "alpha",
                                     "feature_conversion", "epochs", "distillation", "classes")}  # fmt: skip
    return {
        "dataset": {"synthetic": {"n_images": images}},
        "student": {"epochs": epochs},
        "ablation": {"seeds": [0], "factors": {**factors, "optimizer": ["adam", "nadam", "rmsprop"]},
                     "preprocessing": []},  # fmt: skip
    }


def snakemake(source: Path, workdir: Path, *args: str) -> None:
    # Targets go before --configfile, which takes every later word as a file.
    cmd = [sys.executable, "-m", "snakemake", "-s", str(source / "Snakefile"), "-d", str(workdir),
           *args, "--configfile", str(source / "config/test.yaml"), str(workdir / "grid.yaml")]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    if result.returncode != 0:
        raise SystemExit(f"snakemake failed in {workdir}:\n{result.stderr[-3000:]}")


def timed_grid(source: Path, workdir: Path, cores: int) -> dict[str, float]:
    before = children_cpu_seconds()
    start = time.perf_counter()
    snakemake(source, workdir, "ablation", "--cores", str(cores), "--forcerun", "ablation_cell")
    wall = time.perf_counter() - start
    cpu = children_cpu_seconds() - before
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="c6c7f0f", help="git revision without the sizing")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="skinkd-threads-") as tmp:
        tmp = Path(tmp)
        before_source = tmp / "before"
        subprocess.run(["git", "-C", str(PROJECT), "worktree", "add", "--detach", str(before_source),
                        args.before], check=True, capture_output=True)  # fmt: skip
        sides = {"before": before_source, "after": PROJECT}
        try:
            for side, source in sides.items():
                workdir = tmp / f"run_{side}"
                workdir.mkdir()
                shutil.copy(source / "config.yaml", workdir / "config.yaml")
                (workdir / "grid.yaml").write_text(yaml.safe_dump(grid_config(args.images, args.epochs)))
                snakemake(source, workdir, "all", "--cores", str(args.cores))
            runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
            for repeat in range(args.repeats):
                for side, source in sides.items():
                    runs[side].append(timed_grid(source, tmp / f"run_{side}", args.cores))
                    print(side, repeat, runs[side][-1], flush=True)
        finally:
            subprocess.run(["git", "-C", str(PROJECT), "worktree", "remove", "--force",
                            str(before_source)], check=False)  # fmt: skip

    medians = {side: {key: statistics.median(r[key] for r in rows) for key in ("wall_s", "cpu_s")}
               for side, rows in runs.items()}  # fmt: skip
    write_report(
        {
            "benchmark": "four one-thread ablation cells on every core, thread pools sized or not",
            "machine": machine(),
            "cores": args.cores,
            "cells": 4,
            "images": args.images,
            "student_epochs": args.epochs,
            "before": args.before,
            "runs": runs,
            "median": medians,
            "after_over_before": {key: round(medians["after"][key] / medians["before"][key], 3)
                                  for key in ("wall_s", "cpu_s")},  # fmt: skip
        },
        RESULTS,
    )


if __name__ == "__main__":
    main()
