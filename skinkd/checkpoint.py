"""Where a training job keeps its epoch checkpoint, and the key that says whose it is.

Light on purpose (no Keras): rule scripts build the checkpoint before training starts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Checkpoint:
    """A job's epoch checkpoint (outside the rule's outputs) and the key of everything that
    determines the run: a checkpoint under another key is ignored."""

    folder: Path
    key: str

    @property
    def path(self) -> Path:
        return Path(self.folder) / "state.npz"

    def remove(self) -> None:
        """Delete the checkpoint, and its folder once empty (a finished job leaves none)."""
        self.path.unlink(missing_ok=True)
        for folder in (Path(self.folder), Path(self.folder).parent):
            if folder.name and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def job_checkpoint(
    rule: str,
    output: str | os.PathLike,
    wildcards: Mapping[str, str],
    params: Mapping[str, Any],
    inputs: Sequence[str | os.PathLike],
) -> Checkpoint:
    """The checkpoint of one job: in ``.checkpoints/`` beside its first output (not an
    output, so Snakemake neither demands nor deletes it), keyed by the rule, its wildcards,
    its params and each input's path, size and modification time (a changed input or
    setting starts afresh; hashing gigabytes of features would cost minutes)."""
    stamps = []
    for path in map(Path, inputs):
        stat = path.stat()
        stamps.append([str(path), stat.st_size, stat.st_mtime_ns])
    text = json.dumps(
        {"rule": rule, "wildcards": dict(wildcards), "params": dict(params), "inputs": stamps},
        sort_keys=True,
        default=str,
    )
    name = "-".join([rule, *(str(value) for value in wildcards.values())])
    folder = Path(output).parent / ".checkpoints" / name
    return Checkpoint(folder, hashlib.sha256(text.encode()).hexdigest()[:16])
