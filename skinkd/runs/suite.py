"""The set of runs behind docs/results.md (docs/runs.yaml), as Snakemake commands.

Each entry names a run (its results go under ``results/<name>/``), a label, the targets and
the preset files layered on config.yaml. ``snakemake suite`` runs them one after the other
through the same workflow; every run resumes where it stopped, like any Snakemake run.
"""

from __future__ import annotations

import logging
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from skinkd.errors import ConfigError, SkinkdError

log = logging.getLogger(__name__)

REQUIRED = ("name", "label", "configfiles")
# Keys that name another run to compare with (split, distillation, training budget).
COMPARISONS = ("compare_split_with", "compare_distillation_with", "compare_budget_with")
OPTIONAL = ("targets", *COMPARISONS, "paper_dataset", "target_auc")


def _read(path: Path) -> Mapping[str, Any]:
    try:
        document = yaml.safe_load(path.read_text())
        document["runs"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: cannot read a 'runs' list ({exc})") from exc
    return document


def load_notes(path: str | Path) -> list[str]:
    """Free-text notes of the runs file (``notes:``), e.g. why a GPU run is missing."""
    notes = _read(Path(path)).get("notes") or []
    for i, note in enumerate(notes):
        if not isinstance(note, str):
            # An unquoted ": " inside a note turns it into a mapping.
            raise ConfigError(
                f"{path}: notes[{i}] is not text (a colon followed by a space inside it? "
                "quote the note)"
            )
    return notes


def load_runs(path: str | Path) -> list[dict[str, Any]]:
    """The runs listed in ``path``, checked: unique names, known keys, targets default [all]."""
    path = Path(path)
    entries = _read(path)["runs"]
    runs, names = [], set()
    for i, entry in enumerate(entries):
        where = f"{path}: runs[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {entry!r}")
        missing = [key for key in REQUIRED if key not in entry]
        unknown = sorted(set(entry) - set(REQUIRED) - set(OPTIONAL))
        if missing or unknown:
            raise ConfigError(f"{where}: missing keys {missing}, unknown keys {unknown}")
        if entry["name"] in names:
            raise ConfigError(f"{where}: name {entry['name']!r} listed twice")
        names.add(entry["name"])
        runs.append({"targets": ["all"], **entry})
    for run in runs:
        for key in COMPARISONS:
            if key in run and run[key] not in names:
                raise ConfigError(f"{path}: run {run['name']!r}: {key} names no run: {run[key]!r}")
        if run.get("paper_dataset", "ham10000") not in ("ham10000", "kaggle"):
            raise ConfigError(f"{path}: run {run['name']!r}: paper_dataset must be ham10000 or kaggle")
    return runs


def display_command(run: Mapping[str, Any], cores: int = 2) -> str:
    """The command a user types for one run, from the project root."""
    words = ["snakemake", *run["targets"], "--cores", str(cores)]
    if run["configfiles"]:
        words += ["--configfile", *run["configfiles"]]
    return " ".join(words)


def snakemake_command(
    run: Mapping[str, Any], cores: int, snakefile: str | Path, workdir: str | Path
) -> list[str]:
    """The same command as :func:`display_command`, with this interpreter's Snakemake."""
    command = [sys.executable, "-m", "snakemake", *run["targets"], "--cores", str(cores)]
    command += ["--snakefile", str(snakefile), "--directory", str(workdir)]
    if run["configfiles"]:
        command += ["--configfile", *[str(Path(workdir) / f) for f in run["configfiles"]]]
    return command


def wall_seconds(run_dir: str | Path, pattern: str = "benchmarks/**/*.tsv") -> float:
    """Time during which at least one of the run's jobs was running.

    Each Snakemake benchmark file is written when its job ends and holds the job's duration,
    so [mtime - s, mtime] is the job's interval; their union is the run's wall time without
    the idle gaps between separate invocations (and counts parallel jobs once).
    """
    intervals = []
    for path in Path(run_dir).glob(pattern):
        end = path.stat().st_mtime
        for seconds in pd.read_csv(path, sep="\t")["s"]:
            intervals.append((end - float(seconds), end))
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def job_seconds(run_dir: str | Path) -> float:
    """Sum of the run's job durations (parallel jobs counted each)."""
    paths = Path(run_dir).rglob("benchmarks/**/*.tsv")
    return float(sum(pd.read_csv(p, sep="\t")["s"].sum() for p in paths))


def run_one(
    run: Mapping[str, Any], cores: int, snakefile: str | Path, workdir: str | Path, log_path: str | Path
) -> dict[str, Any]:
    """Run (or resume) one run; its Snakemake output goes to ``log_path``. A record of it."""
    command = snakemake_command(run, cores, snakefile, workdir)
    log.info("run %s: %s", run["name"], " ".join(command))
    busy_before, own_before = machine_busy_seconds(), children_cpu_seconds()
    started = time.time()
    with open(log_path, "a") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    seconds = time.time() - started
    busy_after, own = machine_busy_seconds(), children_cpu_seconds() - own_before
    if code != 0:
        raise SkinkdError(f"run {run['name']!r} failed (exit {code}); its Snakemake log: {log_path}")
    log.info("run %s done in %.1f s", run["name"], seconds)
    return {
        "name": run["name"],
        "command": display_command(run, cores),
        "seconds_this_invocation": round(seconds, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": code_commit(workdir),
        "other_cpu_share": None
        if busy_before is None or busy_after is None
        else other_cpu_share(busy_after[0] - busy_before[0], own, seconds, busy_after[1]),
    }


def machine_busy_seconds(stat: str | Path = "/proc/stat") -> tuple[float, int] | None:
    """CPU seconds every process on the machine has spent busy since boot, and the number of
    CPUs they were counted over; None where the kernel does not say (not Linux)."""
    try:
        lines = Path(stat).read_text().splitlines()
        fields = lines[0].split()
        ticks = [int(value) for value in fields[1:9]]
    except (OSError, ValueError, IndexError):
        return None
    if fields[0] != "cpu" or len(ticks) < 5:
        return None
    cpus = sum(1 for line in lines if re.match(r"cpu\d+ ", line))
    # user nice system idle iowait irq softirq steal (guest time is inside user and nice).
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), max(cpus, 1)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def other_cpu_share(machine_busy: float, own: float, wall: float, cores: int) -> float:
    """The share of the machine's CPU that processes other than the run took while it ran:
    above a few percent, its wall times were not measured alone."""
    if wall <= 0:
        return 0.0
    return round(min(1.0, max(0.0, machine_busy - own) / (wall * cores)), 3)


# What the suite itself writes: Snakemake deletes a run's archive when the run starts, which
# is no change to the code it runs.
SUITE_OUTPUTS = ("docs/runs", "docs/results.md")


def code_commit(workdir: str | Path) -> str:
    """The checkout's commit, ``+changes`` where tracked files other than the suite's own
    outputs differ from it; ``unknown`` outside git."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(workdir), *args], capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                      *(f":(exclude){path}" for path in SUITE_OUTPUTS))  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if changed else "")
