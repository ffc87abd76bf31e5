"""Rule jobs size their thread pools to the rule's threads (skinkd.workflow.run_rule)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import PROJECT

JOB = textwrap.dedent("""
    import json, os, sys, types
    import keras
    import numpy as np
    import tensorflow as tf
    from skinkd.workflow import run_rule

    def main():
        keras.ops.matmul(np.ones((64, 64), "float32"), np.ones((64, 64), "float32"))
        print(json.dumps({
            "intra": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter": tf.config.threading.get_inter_op_parallelism_threads(),
            "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                                                   "TF_NUM_INTEROP_THREADS")},
        }))

    run_rule(types.SimpleNamespace(threads=int(sys.argv[1]), log=[]), main)
""")


def job_pools(threads: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", JOB, str(threads)], capture_output=True, text=True, cwd=PROJECT,
        timeout=300, check=True, env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("threads", [1, 3])
def test_a_rule_job_sizes_tensorflow_and_openmp_to_its_threads(threads):
    pools = job_pools(threads)
    assert pools["intra"] == pools["inter"] == threads
    assert set(pools["env"].values()) == {str(threads)}


def test_a_pool_started_before_run_rule_is_left_alone_with_a_warning(caplog):
    probe = JOB.replace("from skinkd.workflow import run_rule", "from skinkd.workflow import run_rule\nkeras.ops.ones((1,))")
    result = subprocess.run(
        [sys.executable, "-c", probe, "1"], capture_output=True, text=True, cwd=PROJECT,
        timeout=300, check=True, env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert "TensorFlow thread pools not resized" in result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["intra"] == 0
