"""The runs' archive: one small JSON per run of docs/runs.yaml (``docs/runs/<name>.json``),
written by ``snakemake suite`` when the run finishes and committed with the code.

It holds exactly what docs/results.md reads from ``results/<name>/`` (evaluations,
calibration, ablation and epoch tables, external sets, wall and job time) and the record of
the run (command, commit, finish time). docs/results.md can then be regenerated on a
machine that holds only some runs' outputs, or none, and a later session reruns one run
without rerunning the others.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from skinkd.atomic import write_text
from skinkd.errors import DataError

# The load_run fields that are tables.
TABLES = ("ablation", "epochs")


def write_archive(run: Mapping[str, Any], record: Mapping[str, Any], out: str | os.PathLike) -> None:
    """Write one run (``results_doc.load_run``'s dict) and its suite ``record`` atomically."""
    document = {key: value for key, value in run.items() if key not in TABLES}
    for key in TABLES:
        table = run.get(key)
        document[key] = None if table is None else table.to_dict(orient="records")
    document["record"] = dict(record)
    write_text(json.dumps(document, indent=1) + "\n", out)


def read_archive(path: str | os.PathLike) -> dict[str, Any] | None:
    """The run as ``load_run`` gives it (tables as DataFrames), or None if not archived."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable run archive ({exc})") from exc
    for key in TABLES:
        if document.get(key) is not None:
            document[key] = pd.DataFrame.from_records(document[key])
    return document
