"""Glue for rule scripts: logging to the rule's log and errors without tracebacks."""

from __future__ import annotations

import errno
import logging
import sys
from collections.abc import Callable
from typing import Any

from skinkd.checkpoint import Checkpoint, job_checkpoint
from skinkd.errors import SkinkdError

# No space left, the file-size limit (RLIMIT_FSIZE), the disk quota.
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


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
