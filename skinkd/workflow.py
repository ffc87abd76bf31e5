"""Glue for rule scripts: logging to the rule's log, thread pools sized to the rule's
threads, and errors without tracebacks."""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from skinkd.checkpoint import Checkpoint, job_checkpoint
from skinkd.errors import SkinkdError

# No space left, the file-size limit (RLIMIT_FSIZE), the disk quota.
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# Read by OpenMP and by TensorFlow when it starts its runtime (at the first op).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def limit_threads(threads: int) -> None:
    """Size the job's thread pools to ``threads``: OpenMP's, TensorFlow's intra-op and
    inter-op pools, and PyTorch's where it is loaded. Unset, TensorFlow sizes its pools to
    every core of the machine, so one-thread jobs side by side oversubscribe the cores."""
    count = max(1, int(threads))
    for name in THREAD_VARIABLES:
        os.environ[name] = str(count)
    tensorflow = sys.modules.get("tensorflow")
    if tensorflow is not None:
        try:
            tensorflow.config.threading.set_intra_op_parallelism_threads(count)
            tensorflow.config.threading.set_inter_op_parallelism_threads(count)
        except RuntimeError as exc:
            logging.getLogger("skinkd").warning("TensorFlow thread pools not resized: %s", exc)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(count)


def run_rule(snakemake: Any, main: Callable[[], None]) -> None:
    """Send logging to ``snakemake.log[0]`` and run ``main``; a SkinkdError becomes one clear
    line in the log and on stderr, and a non-zero exit (Snakemake then removes the outputs).
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if snakemake.log:
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    limit_threads(snakemake.threads)
    try:
        main()
    except SkinkdError as exc:
        logging.getLogger("skinkd").error("%s", exc)
        sys.exit(1)
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        # Atomic writers have removed their staged files: nothing partial is left.
        logging.getLogger("skinkd").error(
            "disk full while writing %s (%s): free space and run again", exc.filename or "output", exc.strerror
        )
        sys.exit(1)


def rule_checkpoint(snakemake: Any) -> Checkpoint:
    """The epoch checkpoint of the running training job (``skinkd.checkpoint``)."""
    return job_checkpoint(
        snakemake.rule,
        snakemake.output[0],
        dict(snakemake.wildcards.items()),
        dict(snakemake.params.items()),
        list(snakemake.input),
    )
