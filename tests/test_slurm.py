"""A real single-node Slurm: the workflow's Slurm profile submits every job of the tiny preset
through `--executor slurm`, and they give the same files and metrics as a local run.

The test starts munged, slurmctld and slurmd itself (Debian's slurm-wlm packages, which
.ci/run installs) and stops exactly those processes, by the process ids they wrote. srun
inside a job reads /etc/slurm/slurm.conf (the job-step executor drops SLURM_CONF), so the
test writes that file for its run and removes it; where one exists already, another Slurm
owns the machine and the test skips rather than touch it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from test_workflow import TEST_PRESET, planned_jobs, snakemake

from conftest import PROJECT
from helpers import assert_every_result_loads, assert_same_metrics

pytestmark = pytest.mark.workflow

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(pid_file: Path) -> None:
    if not pid_file.is_file():
        return
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        pytest.skip(f"Slurm is not installed ({', '.join(missing)} missing; .ci/run installs "
                    "munge slurmctld slurmd slurm-client): Slurm test skipped")  # fmt: skip
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld and slurmd needs root: Slurm test skipped")
    if SYSTEM_CONF.exists():
        pytest.skip(f"{SYSTEM_CONF} exists: another Slurm owns this machine, left untouched")
    home = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (home / sub).mkdir()
    key = home / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    socket_path = home / "munge.sock"
    node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    conf = home / "slurm.conf"
    conf.write_text(f"""ClusterName=skinkd
SlurmctldHost={socket.gethostname()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket_path}
StateSaveLocation={home / 'state'}
SlurmdSpoolDir={home / 'spool'}
SlurmctldPidFile={home / 'slurmctld.pid'}
SlurmdPidFile={home / 'slurmd.pid'}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmctldLogFile={home / 'slurmctld.log'}
SlurmdLogFile={home / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=3600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
{node} State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
    pid_files = [home / "slurmd.pid", home / "slurmctld.pid", home / "munged.pid"]
    shutil.copy(conf, SYSTEM_CONF)
    try:
        subprocess.run(["munged", "--force", "--key-file", str(key), "--socket", str(socket_path),
                        "--pid-file", str(home / "munged.pid"), "--log-file", str(home / "munged.log"),
                        "--seed-file", str(home / "munge.seed")], check=True)  # fmt: skip
        subprocess.run(["slurmctld", "-f", str(conf)], check=True)
        subprocess.run(["slurmd", "-f", str(conf)], check=True)
        for _ in range(60):
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip()
            if state == "idle":
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the Slurm node did not come up (sinfo: {state!r})")
        yield home
    finally:
        for pid_file in pid_files:
            _stop(pid_file)
        SYSTEM_CONF.unlink(missing_ok=True)


def test_tiny_preset_runs_through_slurm_and_matches_a_local_run(slurm, tiny_run, tmp_path):
    cluster, plan = tmp_path / "cluster", tmp_path / "plan"
    cluster.mkdir()
    plan.mkdir()
    planned = planned_jobs(plan, "--configfile", TEST_PRESET)
    result = snakemake(
        cluster, "--configfile", TEST_PRESET, "--workflow-profile", str(PROJECT / "workflow/profiles/slurm"),
        "--slurm-no-account", "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        "--max-threads", str(os.cpu_count()),  # the node has no more CPUs to give
        check=False, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    job_ids = re.findall(r"submitted with SLURM jobid (\d+)", output)
    # Every job but the local rule `all` is its own Slurm job.
    assert len(job_ids) == planned.total() - planned["all"] and len(job_ids) > 20, output[-4000:]
    queue = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T"], capture_output=True, text=True)
    states = dict(line.split() for line in queue.stdout.splitlines())
    assert all(states.get(job) == "COMPLETED" for job in job_ids), states
    results, local = cluster / "results/test", tiny_run / "results/test"
    for name in ("data/manifest.csv", "data/splits.csv"):
        assert (results / name).read_bytes() == (local / name).read_bytes()
    for k in range(2):
        with np.load(results / f"preprocessed/shard_{k}.npz") as a, \
                np.load(local / f"preprocessed/shard_{k}.npz") as b:  # fmt: skip
            assert sorted(a.files) == sorted(b.files)
            for name in a.files:
                np.testing.assert_array_equal(a[name], b[name])
    for name in ("teacher", "student", "student_fp16", "student_int8"):
        assert_same_metrics(results / f"eval/{name}.json", local / f"eval/{name}.json")
    assert assert_every_result_loads(cluster) >= 25
