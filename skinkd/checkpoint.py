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


# Inputs up to this size are hashed whole. A larger one (the caches and models: .npz and
# .keras, zip files) by its size, its first and its last MiB: a zip's central directory, at
# its end, holds every member's CRC-32, so any changed member changes it. Hashing gigabytes
# whole would cost minutes at every job start.
WHOLE_HASH_BYTES = 64 << 20
EDGE_BYTES = 1 << 20


def content_fingerprint(path: str | os.PathLike) -> str:
    """A digest of the file's content (whole, or size and edges for a large zip); a folder
    is named only, its content being vouched for by the manifests that list it."""
    path = Path(path)
    if path.is_dir():
        return "folder"
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        head = handle.read(EDGE_BYTES)
        digest.update(head)
        if size > WHOLE_HASH_BYTES and head.startswith(b"PK"):
            handle.seek(size - EDGE_BYTES)
            digest.update(handle.read())
        else:
            for block in iter(lambda: handle.read(EDGE_BYTES), b""):
                digest.update(block)
    return digest.hexdigest()


def job_checkpoint(
    rule: str,
    output: str | os.PathLike,
    wildcards: Mapping[str, str],
    params: Mapping[str, Any],
    inputs: Sequence[str | os.PathLike],
) -> Checkpoint:
    """The checkpoint of one job: in ``.checkpoints/`` beside its first output (not an
    output, so Snakemake neither demands nor deletes it), keyed by the rule, its wildcards,
    its params and each input's path and content (:func:`content_fingerprint`): a changed
    input or setting starts afresh, while inputs that only got new times (data copied or
    mounted again, then touched) keep their checkpoint."""
    stamps = [[str(path), content_fingerprint(path)] for path in map(Path, inputs)]
    text = json.dumps(
        {"rule": rule, "wildcards": dict(wildcards), "params": dict(params), "inputs": stamps},
        sort_keys=True,
        default=str,
    )
    name = "-".join([rule, *(str(value) for value in wildcards.values())])
    folder = Path(output).parent / ".checkpoints" / name
    return Checkpoint(folder, hashlib.sha256(text.encode()).hexdigest()[:16])
