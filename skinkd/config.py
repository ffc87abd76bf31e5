"""Config checks the JSON schema cannot express, and a stable hash of a config."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skinkd.errors import ConfigError


def check_config(config: Mapping[str, Any]) -> None:
    """Cross-key checks after schema validation; errors name the key's path."""
    fractions = config["split"]["fractions"]
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ConfigError(f"split.fractions: must sum to 1, got {fractions} (sum {sum(fractions):g})")
    if any(f <= 0 for f in fractions):
        raise ConfigError(f"split.fractions: every share must be above 0, got {fractions}")
    dataset = config["dataset"]
    if dataset["kind"] != "synthetic":
        root = dataset["root"]
        if not root:
            raise ConfigError(f"dataset.root: required when dataset.kind is {dataset['kind']}")
        if not Path(root).is_dir():
            raise ConfigError(f"dataset.root: folder {root!r} does not exist")
    overlap = set(dataset["benign_classes"]) & set(dataset["malignant_classes"])
    if overlap:
        raise ConfigError(
            f"dataset.benign_classes, dataset.malignant_classes: {sorted(overlap)} in both"
        )


def config_hash(section: Any) -> str:
    """Short SHA-256 of a config (section), independent of key order."""
    text = json.dumps(section, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
