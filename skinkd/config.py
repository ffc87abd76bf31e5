"""Config checks the JSON schema cannot express, and a stable hash of a config."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from skinkd.errors import ConfigError


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path]
    return "".join(parts).lstrip(".") or "(top level)"


def schema_errors(config: Mapping[str, Any], schema_path: str | Path) -> list[str]:
    """Every schema violation as 'key.path: problem', e.g. 'split.group_by: ... is not one of'."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_key_path(e)}: {e.message}" for e in errors]


def check_schema(config: Mapping[str, Any], schema_path: str | Path) -> None:
    """Raise one ConfigError listing every schema violation with its key path."""
    errors = schema_errors(config, schema_path)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


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
    for section in ("teacher", "student"):
        if config[section]["classes"] == "dx" and dataset["kind"] != "ham10000":
            raise ConfigError(
                f"{section}.classes: dx needs the HAM10000 diagnoses, but dataset.kind is "
                f"{dataset['kind']} (no dx per image); use binary"
            )
    if config["student"]["classes"] == "dx" and config["teacher"]["classes"] != "dx":
        raise ConfigError(
            "student.classes: dx distils seven-class soft labels, so it needs "
            "teacher.classes: dx"
        )
    views = config["teacher"]["distillation_views"]
    views = config["teacher"]["augmented_views"] if views is None else views
    if config["student"]["distillation"] == "consistent" and not views:
        raise ConfigError(
            "student.distillation: consistent trains on the teacher's logits of augmented "
            "views, so it needs teacher.distillation_views (or, where that is null, "
            "teacher.augmented_views) of 1 or more"
        )
    _check_external(config.get("external", []))
    _check_ablation(config)
    overlap = set(dataset["benign_classes"]) & set(dataset["malignant_classes"])
    if overlap:
        raise ConfigError(
            f"dataset.benign_classes, dataset.malignant_classes: {sorted(overlap)} in both"
        )


def _check_external(sets: list[Mapping[str, Any]]) -> None:
    seen: set[str] = set()
    for i, entry in enumerate(sets):
        key = f"external[{i}]"
        if entry["name"] in seen:
            raise ConfigError(f"{key}.name: {entry['name']!r} is used by another set")
        seen.add(entry["name"])
        needs = "root" if entry["layout"] == "folder" else "labels"
        if not entry.get(needs):
            raise ConfigError(f"{key}.{needs}: required for the {entry['layout']} layout")
        if entry.get("labels") and not Path(entry["labels"]).is_file():
            raise ConfigError(f"{key}.labels: file {entry['labels']!r} does not exist")
        if entry.get("root") and not Path(entry["root"]).is_dir():
            raise ConfigError(f"{key}.root: folder {entry['root']!r} does not exist")


def _check_ablation(config: Mapping[str, Any]) -> None:
    ablation = config["ablation"]
    cells = [(f"ablation.factors.{factor}", {factor: value})
             for factor, values in ablation["factors"].items() for value in values]  # fmt: skip
    cells += [(f"ablation.combinations[{i}]", c) for i, c in enumerate(ablation["combinations"])]
    for key, cell in cells:
        if cell.get("classes") == "dx" and config["teacher"]["classes"] != "dx":
            raise ConfigError(f"{key}: a dx student distils seven-class soft labels, so it "
                              "needs teacher.classes: dx")  # fmt: skip
        if needs_two_caches(cell, config["image_size"]):
            raise ConfigError(f"{key}: {TWO_CACHES}")


TWO_CACHES = "image_size and preprocessing each need a cache of their own; combine one of them"


def needs_two_caches(cell: Mapping[str, Any], image_size: int | None) -> bool:
    """Whether an ablation cell (factor -> value) asks for another input side and a
    preprocessing variant at once: each is a preprocessed cache of its own (the run's images
    at that side, or the variant at the run's side), and a cell trains on one cache."""
    other_side = cell.get("image_size", image_size) != image_size
    return other_side and cell.get("preprocessing", "all") != "all"


def config_hash(section: Any) -> str:
    """Short SHA-256 of a config (section), independent of key order."""
    text = json.dumps(section, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
