"""External validation: a trained model scored on another labelled set, and the overlap of
that set with the run's own images found before any number is read.

Overlap: every external image against every image of the run (its manifest or split table),
by SHA-256 (byte-identical copies) and by the perceptual hash of the leakage table (resized
and re-encoded copies). An external image that matches a training or validation image is
left out of the second set of metrics: the model has seen it. Pandas-free: the edge
install's ``skinkd evaluate`` (``skinkd.edge.evaluate``) uses it.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skinkd.data.hashing import hashes_to_uint64
from skinkd.errors import DataError
from skinkd.evaluate.metrics import RATE_METRICS, evaluate_probabilities

SEEN_SPLITS = ("train", "val")
_SPLIT_ORDER = (*SEEN_SPLITS, "test")
WHOLE_RUN = "run"
_REFERENCE_COLUMNS = ("image_id", "sha256", "phash")


def ordered_splits(names: Sequence[str]) -> list[str]:
    """The distinct split names, train, val and test first, so that every run reports them
    in the same order whatever the row order of its splits file."""
    present = dict.fromkeys(names)
    return [s for s in _SPLIT_ORDER if s in present] + [s for s in present if s not in _SPLIT_ORDER]


@dataclass(frozen=True)
class Reference:
    """The run's images: ids, the split of each (``run`` for a manifest without splits),
    SHA-256 hex digests and perceptual hashes."""

    image_ids: np.ndarray
    splits: np.ndarray
    sha256: np.ndarray
    phash: np.ndarray

    @property
    def split_names(self) -> list[str]:
        return ordered_splits(self.splits.tolist())

    @property
    def seen_splits(self) -> tuple[str, ...]:
        """Splits the model learnt from or was selected on (all of a manifest without splits)."""
        return (WHOLE_RUN,) if self.split_names == [WHOLE_RUN] else SEEN_SPLITS


_PHASH = re.compile(r"[0-9a-fA-F]{16}")


_AGAINST = "--against takes a run's results/<name> folder, its data/splits.csv or its data/manifest.csv"


def _require(path: Path, header: Sequence[str], columns: Sequence[str], hint: str = _AGAINST) -> None:
    missing = [column for column in columns if column not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; {hint}")


def _csv_records(
    path: Path, required: Sequence[str], hint: str = _AGAINST
) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise DataError(f"{path}: manifest does not exist")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    _require(path, header, required, hint)
    if not rows:
        raise DataError(f"{path}: no images in the manifest")
    return header, rows


def read_reference(path: str | os.PathLike) -> Reference:
    """A run's images: its results folder, or its data/splits.csv (hashes from the
    manifest.csv beside it) or data/manifest.csv (no splits: every image counts as seen)."""
    path = Path(path)
    if path.is_dir():
        path = path / "data" / "splits.csv" if (path / "data").is_dir() else path / "splits.csv"
    header, rows = _csv_records(path, ("image_id",))
    if "split" in header and not {"sha256", "phash"} <= set(header):
        _, manifest = _csv_records(path.parent / "manifest.csv", _REFERENCE_COLUMNS)
        hashes = {row["image_id"]: row for row in manifest}
        unknown = [row["image_id"] for row in rows if row["image_id"] not in hashes]
        if unknown:
            raise DataError(f"{path}: image {unknown[0]} is not in {path.parent / 'manifest.csv'}")
        rows = [hashes[row["image_id"]] | {"split": row["split"]} for row in rows]
    else:
        _require(path, header, _REFERENCE_COLUMNS)
    bad = next((row for row in rows if not _PHASH.fullmatch(row["phash"] or "")), None)
    if bad is not None:
        raise DataError(
            f"{path}: image {bad['image_id']} has phash {bad['phash']!r}, not 16 hex digits"
        )
    return Reference(
        image_ids=np.array([row["image_id"] for row in rows]),
        splits=np.array([row.get("split") or WHOLE_RUN for row in rows]),
        sha256=np.array([row["sha256"] for row in rows]),
        phash=hashes_to_uint64([row["phash"] for row in rows]),
    )


def unseen_images(images_csv: str | os.PathLike, overlap_csv: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Paths and labels of an external set's images (``external_images``'s table) that its
    overlap table (``external_overlap``) does not mark seen by the run."""
    hint = "the external_images and external_overlap rules write these tables"
    _, images = _csv_records(Path(images_csv), ("image_id", "path", "label"), hint)
    _, overlap = _csv_records(Path(overlap_csv), ("image_id", "seen"), hint)
    seen = {row["image_id"] for row in overlap if row["seen"] == "True"}
    unseen = [row for row in images if row["image_id"] not in seen]
    return [row["path"] for row in unseen], np.array([int(row["label"]) for row in unseen], dtype=np.int64)


def overlap_rows(
    image_ids: Sequence[str],
    sha256: Sequence[str],
    phash: Sequence[str],
    reference: Reference,
    max_distance: int,
    block: int = 256,
) -> list[dict[str, Any]]:
    """One row per external image: its byte-identical run image (id and split, "" if none),
    the nearest run image of each split by perceptual hash and its distance in bits, the
    splits it matches (identical, or at most ``max_distance`` bits apart) and ``seen``:
    whether one of them is a split the model learnt from or was selected on."""
    exact = {digest: i for i, digest in reversed(list(enumerate(reference.sha256)))}
    external = hashes_to_uint64(list(phash))
    splits = reference.split_names
    members = {split: np.flatnonzero(reference.splits == split) for split in splits}
    nearest = {split: np.empty(len(external), np.int64) for split in splits}
    distance = {split: np.empty(len(external), np.int64) for split in splits}
    for start in range(0, len(external), block):
        rows = external[start : start + block, None]
        for split, index in members.items():
            # Blocked, so that 1,000 x 10,000 distances stay a few megabytes at a time.
            bits = np.bitwise_count(rows ^ reference.phash[index][None, :])
            best = bits.argmin(axis=1)
            nearest[split][start : start + block] = index[best]
            distance[split][start : start + block] = bits[np.arange(len(best)), best]
    found = []
    for k, image_id in enumerate(image_ids):
        twin = exact.get(sha256[k])
        row: dict[str, Any] = {
            "image_id": image_id,
            "identical_to": "" if twin is None else str(reference.image_ids[twin]),
            "identical_split": "" if twin is None else str(reference.splits[twin]),
        }
        matched = {row["identical_split"]} - {""}
        for split in splits:
            row[f"nearest_{split}"] = str(reference.image_ids[nearest[split][k]])
            row[f"distance_{split}"] = int(distance[split][k])
            if distance[split][k] <= max_distance:
                matched.add(split)
        row["matched_splits"] = ";".join(s for s in splits if s in matched)
        row["seen"] = bool(matched & set(reference.seen_splits))
        found.append(row)
    return found


def overlap_counts(rows: Sequence[Mapping[str, Any]], splits: Sequence[str]) -> dict[str, int]:
    """How many external images are identical to a run image, match each of ``splits``,
    and were seen (the ones the second set of metrics leaves out)."""
    counts = {
        "images": len(rows),
        "identical": sum(1 for row in rows if row["identical_to"]),
    }
    for split in splits:
        counts[f"match_{split}"] = sum(
            1 for row in rows if split in str(row["matched_splits"]).split(";")
        )
    counts["seen"] = sum(1 for row in rows if row["seen"])
    return counts


def evaluate_external(
    model: str,
    labels: np.ndarray,
    prob_malignant: np.ndarray,
    thresholds: Mapping[str, float],
    *,
    seen: np.ndarray | None,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """{subset: {"n", "benign", "malignant", "thresholds": {name: evaluate_probabilities}}}
    for the whole set and, given ``seen``, for the images the model has not seen. A subset
    holding one class only gets a ``note`` instead of metrics (no AUC, no intervals)."""
    labels = np.asarray(labels)
    prob = np.asarray(prob_malignant, dtype=np.float64)
    subsets = {"all": np.ones(len(labels), bool)}
    if seen is not None:
        subsets["without_overlap"] = ~np.asarray(seen, bool)
    result: dict[str, Any] = {}
    for subset, keep in subsets.items():
        counts = np.bincount(labels[keep], minlength=2)
        entry: dict[str, Any] = {
            "n": int(keep.sum()),
            "benign": int(counts[0]),
            "malignant": int(counts[1]),
        }
        if counts.min() == 0:
            entry["note"] = "one class only: no ROC AUC, sensitivity or specificity"
        else:
            entry["thresholds"] = {
                name: evaluate_probabilities(
                    model, labels[keep], prob[keep], value, n_boot=n_boot, seed=seed
                )
                for name, value in thresholds.items()
            }
        result[subset] = entry
    return result


def metrics_rows(models: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``evaluate_external`` results as flat rows: model, subset, threshold (name and value),
    image counts, each rate metric with its interval bounds (NaN rows for one-class subsets)."""
    rows = []
    for model, subsets in models.items():
        for subset, entry in subsets.items():
            base = {"model": model, "subset": subset, "n": entry["n"],
                    "benign": entry["benign"], "malignant": entry["malignant"]}  # fmt: skip
            for name, evaluation in entry.get("thresholds", {}).items():
                row = {**base, "threshold_choice": name, "threshold": evaluation["threshold"]}
                for metric in RATE_METRICS:
                    low, high = evaluation["intervals"][metric]
                    row.update({metric: evaluation["metrics"][metric],
                                f"{metric}_low": low, f"{metric}_high": high})  # fmt: skip
                rows.append(row)
            if "thresholds" not in entry:
                rows.append({**base, "threshold_choice": "", "threshold": math.nan})
    return rows
