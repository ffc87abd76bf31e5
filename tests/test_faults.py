"""Faults on the tiny preset: a run SIGKILLed during a preprocessing shard, the teacher's
feature cache, student training or export finishes with --rerun-incomplete and the same
files and metrics, a full disk is a clear error leaving no partial output, a second
Snakemake on the same directory is refused by the lock; an ablation cell killed after a
milestone resumes to the same scores. Every file a run leaves under
results/ loads."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from test_workflow import SNAKEMAKE, TEST_PRESET, snakemake

from helpers import assert_every_result_loads, assert_same_metrics

pytestmark = pytest.mark.workflow

SHARDS = [f"results/test/preprocessed/shard_{k}.npz" for k in range(2)]
TARGETS = ["results/test/data/splits.csv", *SHARDS]


def _start(workdir: Path, *targets: str, flags: tuple[str, ...] = (), **popen) -> subprocess.Popen:
    snakemake(workdir, *targets, "-n", "--configfile", TEST_PRESET)  # copies config.yaml
    command = [*SNAKEMAKE, "-s", str(Path(__file__).parents[1] / "Snakefile"), "-d", str(workdir),
               *targets, "--cores", "2", *flags, "--configfile", TEST_PRESET]  # fmt: skip
    return subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, **popen)  # fmt: skip


def _wait_for(condition, process: subprocess.Popen, what: str, limit: float = 300) -> None:
    start = time.monotonic()
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the run ended before {what}")
        if time.monotonic() - start > limit:
            pytest.fail(f"{what} did not happen in {limit:.0f} s")
        time.sleep(0.05)


def test_a_run_killed_during_the_shards_finishes_with_rerun_incomplete_and_the_same_files(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    clean.mkdir()
    killed.mkdir()
    snakemake(clean, *TARGETS, "--cores", "2", "--configfile", TEST_PRESET)
    run = _start(killed, *TARGETS)
    # Killed while a shard job is writing: its log exists, its output does not yet.
    log = killed / "results/test/logs/preprocess/shard_0.log"
    _wait_for(log.exists, run, "a shard job started")
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    # SIGKILL leaves Snakemake's lock behind: --unlock, as its message says, then resume.
    snakemake(killed, *TARGETS, "--unlock", "--configfile", TEST_PRESET)
    snakemake(killed, *TARGETS, "--cores", "2", "--rerun-incomplete", "--configfile", TEST_PRESET)
    for name in ("data/manifest.csv", "data/splits.csv"):
        assert (killed / "results/test" / name).read_bytes() == (clean / "results/test" / name).read_bytes()
    for shard in SHARDS:
        with np.load(killed / shard) as a, np.load(clean / shard) as b:
            np.testing.assert_array_equal(a["images"], b["images"])
    assert not list((killed / "results").rglob(".*.tmp"))
    assert assert_every_result_loads(killed) >= 6


def _kill_when(workdir: Path, condition, what: str, targets: list[str]) -> None:
    """(Re)start the run with --rerun-incomplete, SIGKILL it and its jobs once ``condition``
    holds, and --unlock as Snakemake's message says."""
    run = _start(workdir, *targets, flags=("--rerun-incomplete",))
    _wait_for(condition, run, what)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    snakemake(workdir, *targets, "--unlock", "--configfile", TEST_PRESET)


def test_a_run_killed_during_features_training_and_export_resumes_to_the_same_metrics(tiny_run, tmp_path):
    """Killed in turn during the teacher's feature cache, student training (after an epoch
    was checkpointed) and the TFLite export; each rerun goes on with --rerun-incomplete and
    the students' metrics equal the uninterrupted tiny run's."""
    evals = ["results/test/eval/student.json", "results/test/eval/student_int8.json"]
    results = tmp_path / "results/test"
    _kill_when(tmp_path, (results / "logs/teacher_features.log").exists, "the feature cache started", evals)
    assert not (results / "teacher/features.npz").exists()
    checkpoint = results / "student/.checkpoints/student_train/state.npz"
    _kill_when(tmp_path, checkpoint.exists, "a student epoch was checkpointed", evals)
    assert not (results / "student/student.keras").exists()
    _kill_when(tmp_path, (results / "logs/export_tflite.log").exists, "the export started", evals)
    assert not (results / "export/student_int8.tflite").exists()
    snakemake(tmp_path, *evals, "--cores", "2", "--rerun-incomplete", "--configfile", TEST_PRESET)
    assert "resuming from the checkpoint of epoch 1" in (results / "logs/student_train.log").read_text()
    assert not checkpoint.exists()
    for name in evals:
        assert_same_metrics(tmp_path / name, tiny_run / name)
    assert not list((tmp_path / "results").rglob(".*.tmp"))
    assert assert_every_result_loads(tmp_path) >= 15


def test_an_ablation_cell_killed_after_its_milestone_resumes_to_the_same_scores(tiny_run, tmp_path):
    """Killed once its epoch-1 milestone snapshot and checkpoint are written: the rerun
    resumes from epoch 1 and scores the milestone and the final student as the uninterrupted
    cell did (the snapshot outlived the killed process)."""
    cell = "results/test/ablation/cells/baseline/seed_0.json"
    run = tmp_path / "run"
    # The tiny run as it stands (times kept, so that nothing upstream of the cell reruns).
    shutil.copytree(tiny_run, run, symlinks=True, ignore=shutil.ignore_patterns("ablation"))
    checkpoints = run / "results/test/ablation/cells/baseline/.checkpoints"

    def milestone_written() -> bool:
        states = list(checkpoints.glob("*/state.npz"))
        if not states or not list(checkpoints.glob("*/snapshots-*/epoch_1.keras")):
            return False
        try:
            with np.load(states[0]) as data:
                return json.loads(str(data["meta"]))["epoch"] >= 1
        except (OSError, ValueError, KeyError):
            return False  # being written

    _kill_when(run, milestone_written, "the milestone was checkpointed", [cell])
    assert not (run / cell).exists()
    snakemake(run, cell, "--cores", "2", "--rerun-incomplete", "--configfile", TEST_PRESET)
    log = (run / "results/test/logs/ablation/baseline_seed_0.log").read_text()
    assert "resuming from the checkpoint of epoch 1" in log
    assert not checkpoints.exists()
    snakemake(tiny_run, cell, "--cores", "2", "--configfile", TEST_PRESET)
    got, want = (json.loads((root / cell).read_text()) for root in (run, tiny_run))
    assert [m["epochs"] for m in got["milestones"]] == [1, 2]
    for key in ("val_roc_auc", "test_roc_auc"):
        np.testing.assert_allclose([m[key] for m in got["milestones"]], [m[key] for m in want["milestones"]],
                                   atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(got["test"]["roc_auc"], want["test"]["roc_auc"], atol=1e-6)


def test_a_full_disk_is_a_clear_error_and_leaves_no_partial_output(tmp_path):
    snakemake(tmp_path, "results/test/data/splits.csv", "--cores", "2", "--configfile", TEST_PRESET)

    def small_files() -> None:
        # 200 kB per file: the data jobs fit, a preprocessed shard (about 550 kB) does not.
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    command = [*SNAKEMAKE, "-s", str(Path(__file__).parents[1] / "Snakefile"), "-d", str(tmp_path),
               SHARDS[0], "--cores", "1", "--configfile", TEST_PRESET]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, preexec_fn=small_files)
    assert result.returncode != 0
    log = (tmp_path / "results/test/logs/preprocess/shard_0.log").read_text()
    assert "disk full while writing" in log and "free space and run again" in log
    assert "Traceback" not in log
    assert not (tmp_path / SHARDS[0]).exists()
    assert not list((tmp_path / "results").rglob(".*.tmp"))


def test_a_second_snakemake_on_the_same_directory_is_refused_by_the_lock(tmp_path):
    # The teacher keeps the first run busy (and locked) for tens of seconds, well past the
    # second Snakemake's start-up; the data jobs alone can finish before it.
    targets = [*TARGETS, "results/test/teacher/soft_labels.npz"]
    first = _start(tmp_path, *targets)
    _wait_for(lambda: any((tmp_path / ".snakemake/locks").glob("*")), first, "the first run locked")
    # --rerun-incomplete gets past the check for the first run's incomplete files: the lock
    # is what refuses it.
    second = snakemake(tmp_path, *targets, "--cores", "1", "--rerun-incomplete", "--configfile",
                       TEST_PRESET, check=False)  # fmt: skip
    assert second.returncode != 0
    assert "cannot be locked" in second.stdout + second.stderr
    assert first.wait(timeout=600) == 0
    assert assert_every_result_loads(tmp_path) >= 6
