"""The set of runs behind docs/results.md: the runs file, commands and wall time."""

from __future__ import annotations

import subprocess

import os
import re
import sys

import pytest
import yaml
from snakemake.utils import update_config, validate

from conftest import PROJECT, require_shared
from skinkd.config import check_config, check_schema
from skinkd.errors import ConfigError
from skinkd.runs.suite import (
    display_command,
    load_notes,
    load_runs,
    snakemake_command,
    wall_seconds,
)


def write_runs(tmp_path, text):
    path = tmp_path / "runs.yaml"
    path.write_text(text)
    return path


def test_project_runs_file_loads_and_names_existing_presets():
    runs = load_runs(PROJECT / "docs" / "runs.yaml")
    assert {"ham10000_pretrained", "ham10000_pretrained_image", "kaggle_cpu"} <= {r["name"] for r in runs}
    for run in runs:
        for path in run["configfiles"]:
            assert (PROJECT / path).is_file(), f"{run['name']}: {path}"
    assert load_notes(PROJECT / "docs" / "runs.yaml")


@pytest.mark.parametrize("run", load_runs(PROJECT / "docs" / "runs.yaml"), ids=lambda run: run["name"])
def test_every_run_layers_its_presets_into_a_valid_config(run, monkeypatch):
    """Each run's presets, layered on config.yaml as Snakemake layers them, pass the schema
    and the cross-key checks (dataset roots are relative to the project)."""
    if run["configfiles"]:
        require_shared("")
    monkeypatch.chdir(PROJECT)
    config = yaml.safe_load((PROJECT / "config.yaml").read_text())
    for path in run["configfiles"]:
        update_config(config, yaml.safe_load((PROJECT / path).read_text()))
    schema = PROJECT / "workflow" / "schemas" / "config.schema.yaml"
    check_schema(config, schema)
    validate(config, schema=str(schema))
    check_config(config)
    assert config["name"] == run["name"]


def test_targets_default_to_all_and_commands_layer_the_presets(tmp_path):
    path = write_runs(tmp_path, "runs:\n- {name: a, label: A, configfiles: [config/x.yaml, config/y.yaml]}\n")
    (run,) = load_runs(path)
    assert run["targets"] == ["all"]
    assert display_command(run) == "snakemake all --cores 2 --configfile config/x.yaml config/y.yaml"
    command = snakemake_command(run, 4, "/p/Snakefile", tmp_path)
    assert command[:3] == [sys.executable, "-m", "snakemake"]
    assert command[3:6] == ["all", "--cores", "4"]
    assert command[-2:] == [str(tmp_path / "config/x.yaml"), str(tmp_path / "config/y.yaml")]
    assert "--snakefile" in command and "/p/Snakefile" in command


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("runs:\n- {name: a, label: A}\n", "missing keys ['configfiles']"),
        ("runs:\n- {name: a, label: A, configfiles: [], seed: 1}\n", "unknown keys ['seed']"),
        ("runs:\n- {name: a, label: A, configfiles: []}\n- {name: a, label: B, configfiles: []}\n", "listed twice"),
        ("runs:\n- {name: a, label: A, configfiles: [], compare_split_with: b}\n", "compare_split_with names no run"),
        ("runs:\n- {name: a, label: A, configfiles: [], paper_dataset: isic}\n", "paper_dataset"),
        ("runs:\n- {name: a, label: A, configfiles: [], paper_dataset: isic}\n- {name: b, label: B, configfiles: []}\n",
         "run 'a': paper_dataset"),
        ("runs:\n- {name: a, label: A, configfiles: [], compare_budget_with: b}\n", "compare_budget_with names no run"),
        ("no_runs: []\n", "cannot read a 'runs' list"),
    ],
)
def test_bad_runs_file_names_the_file_and_the_problem(tmp_path, text, message):
    path = write_runs(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        load_runs(path)
    assert str(path) in str(error.value)


def test_a_note_that_yaml_reads_as_a_mapping_is_refused(tmp_path):
    path = write_runs(tmp_path, "runs: []\nnotes:\n- fine\n- not run: no GPU was lent\n")
    with pytest.raises(ConfigError, match=re.escape("notes[1] is not text")) as error:
        load_notes(path)
    assert str(path) in str(error.value)


def benchmark(path, seconds, end):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\n" + f"{seconds}\t0:00:00\n")
    os.utime(path, (end, end))


def test_wall_time_is_the_union_of_job_intervals(tmp_path):
    # Two jobs in parallel (0-100, 50-150), then one alone after an idle gap (1000-1010).
    benchmark(tmp_path / "benchmarks/a.tsv", 100, 1_000_100)
    benchmark(tmp_path / "benchmarks/b.tsv", 100, 1_000_150)
    benchmark(tmp_path / "benchmarks/ablation/c.tsv", 10, 1_001_010)
    assert wall_seconds(tmp_path) == pytest.approx(160)
    assert wall_seconds(tmp_path, "benchmarks/ablation/*.tsv") == pytest.approx(10)


def test_a_run_records_the_commit_of_its_code(tmp_path):
    from skinkd.runs.suite import code_commit

    assert code_commit(tmp_path) == "unknown"
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    (tmp_path / "a.txt").write_text("one\n")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.run([*git[:3], "rev-parse", "--short=12", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    assert code_commit(tmp_path) == head
    # The suite's own archive, deleted by Snakemake as its run starts, is no code change.
    (tmp_path / "docs/runs").mkdir(parents=True)
    (tmp_path / "docs/runs/r.json").write_text("{}\n")
    subprocess.run([*git, "add", "docs/runs/r.json"], check=True)
    subprocess.run([*git, "commit", "-qm", "archive"], check=True)
    head = subprocess.run([*git[:3], "rev-parse", "--short=12", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    (tmp_path / "docs/runs/r.json").unlink()
    assert code_commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("two\n")
    assert code_commit(tmp_path) == f"{head}+changes"


def test_the_machine_busy_time_comes_from_the_kernel_counters(tmp_path):
    from skinkd.runs.suite import machine_busy_seconds

    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice, then per-CPU lines.
    stat.write_text("cpu  300 20 100 5000 80 0 10 0 40 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    busy, cpus = machine_busy_seconds(stat)
    assert busy == pytest.approx(430 / os.sysconf("SC_CLK_TCK"))
    assert cpus == 1
    stat.write_text("intr 1 2 3\n")
    assert machine_busy_seconds(stat) is None
    assert machine_busy_seconds(tmp_path / "absent") is None


def test_the_share_of_other_work_leaves_out_the_runs_own_cpu():
    from skinkd.runs.suite import other_cpu_share

    # 150 busy CPU seconds in 100 s on 2 cores, 50 of them the run's own: others took half.
    assert other_cpu_share(150.0, 50.0, 100.0, 2) == pytest.approx(0.5)
    assert other_cpu_share(150.0, 100.0, 100.0, 2) == pytest.approx(0.25)
    assert other_cpu_share(40.0, 50.0, 100.0, 2) == 0.0
    assert other_cpu_share(900.0, 0.0, 100.0, 2) == 1.0


def test_a_run_records_how_much_other_work_shared_its_machine(tmp_path, monkeypatch):
    from skinkd.runs import suite

    monkeypatch.setattr(suite, "snakemake_command", lambda *args: [sys.executable, "-c", "sum(range(10**6))"])
    run = {"name": "r", "targets": ["all"], "configfiles": []}
    counters = iter([(0.0, 2), (10_000.0, 2)])
    monkeypatch.setattr(suite, "machine_busy_seconds", lambda: next(counters))
    record = suite.run_one(run, 2, "Snakefile", tmp_path, tmp_path / "log")
    assert record["other_cpu_share"] == 1.0
    monkeypatch.setattr(suite, "machine_busy_seconds", lambda: None)
    assert suite.run_one(run, 2, "Snakefile", tmp_path, tmp_path / "log")["other_cpu_share"] is None
