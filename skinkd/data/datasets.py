"""Dataset loaders: each turns a dataset on disk into a source table, one row per image.

A source table has ``image_id``, ``path``, ``label`` (0 benign, 1 malignant), ``label_name``,
``group`` (the unit that must not cross splits) and the dataset's own fields. The manifest
(``skinkd.data.manifest``) then checks every image and adds content hashes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from skinkd.data.labelled import (
    HAM_DX,
    HAM_MALIGNANT,
    LABEL_NAMES,
    folder_records,
    image_files,
    refuse_outside,
    require_dir,
)
from skinkd.errors import DataError

HAM_REQUIRED = ("lesion_id", "image_id", "dx")
HAM_OPTIONAL = ("dx_type", "age", "sex", "localization")
HAM_PART_DIRS = ("HAM10000_images_part_1", "HAM10000_images_part_2")


def _finish(rows: pd.DataFrame) -> pd.DataFrame:
    rows["label_name"] = [LABEL_NAMES[v] for v in rows["label"]]
    rows["label"] = rows["label"].astype("int64")
    leading = ["image_id", "path", "label", "label_name", "group"]
    rest = [c for c in rows.columns if c not in leading]
    return rows[leading + rest].sort_values("image_id", kind="stable").reset_index(drop=True)


def ham10000_image_dirs(root: Path) -> list[Path]:
    """The official two-part layout if present, else ``images/``, else the root itself."""
    parts = [root / d for d in HAM_PART_DIRS if (root / d).is_dir()]
    if parts:
        return parts
    if (root / "images").is_dir():
        return [root / "images"]
    return [root]


def load_ham10000(root: str | os.PathLike, metadata: str | os.PathLike, mapping: str) -> pd.DataFrame:
    """HAM10000: metadata CSV (CRLF or LF) plus images in the official or a single folder."""
    root = Path(root)
    require_dir(root, "dataset.root")
    meta_path = Path(metadata) if Path(metadata).is_absolute() else root / metadata
    if not meta_path.is_file():
        raise DataError(f"{meta_path}: metadata file does not exist")
    try:
        meta = pd.read_csv(meta_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{meta_path}: not a readable CSV ({exc})") from None
    meta.columns = [c.strip() for c in meta.columns]
    missing = [c for c in HAM_REQUIRED if c not in meta.columns]
    if missing:
        raise DataError(
            f"{meta_path}: missing column(s) {', '.join(missing)} "
            f"(found: {', '.join(meta.columns)})"
        )
    if meta.empty:
        raise DataError(f"{meta_path}: no rows")
    for column in meta.columns:
        meta[column] = meta[column].str.strip()
    unknown = sorted(set(meta["dx"]) - set(HAM_DX))
    if unknown:
        first = meta.index[meta["dx"].isin(unknown)][0]
        raise DataError(
            f"{meta_path}: unknown dx value(s) {', '.join(map(repr, unknown))} "
            f"(first on line {first + 2}); known: {', '.join(HAM_DX)}"
        )
    duplicated = sorted(set(meta.loc[meta["image_id"].duplicated(), "image_id"]))
    if duplicated:
        raise DataError(
            f"{meta_path}: duplicate image_id {', '.join(duplicated[:5])}"
            + (f" and {len(duplicated) - 5} more" if len(duplicated) > 5 else "")
        )
    dirs = ham10000_image_dirs(root)
    found: dict[str, Path] = {}
    for folder in dirs:
        for path in image_files(folder):
            found.setdefault(path.stem, path)
    malignant = HAM_MALIGNANT[mapping]
    rows = pd.DataFrame(
        {
            "image_id": meta["image_id"],
            # A missing file keeps its expected name so the manifest reports it clearly.
            "path": [
                str(found.get(i, dirs[0] / f"{i}.jpg")) for i in meta["image_id"]
            ],
            "label": [int(dx in malignant) for dx in meta["dx"]],
            "group": meta["lesion_id"],
            "lesion_id": meta["lesion_id"],
            "dx": meta["dx"],
        }
    )
    for column in HAM_OPTIONAL:
        rows[column] = meta[column] if column in meta.columns else ""
    refuse_outside(root, rows["path"], f"an image of {meta_path}")
    return _finish(rows)


def load_folder(
    root: str | os.PathLike, benign_classes: Sequence[str], malignant_classes: Sequence[str]
) -> pd.DataFrame:
    """``<class>/`` or ``train|test/<class>/`` folders of images (``labelled.folder_records``).

    The ``division`` column keeps an existing train/test division ("" for a flat layout).
    """
    records = folder_records(root, benign_classes, malignant_classes)
    rows = pd.DataFrame(
        records, columns=["image_id", "path", "label", "class_folder", "division"]
    )
    rows.insert(3, "group", rows["image_id"])
    return _finish(rows)


def load_synthetic(root: str | os.PathLike) -> pd.DataFrame:
    """The generated dataset: ``images/`` plus ``metadata.csv`` from ``skinkd.data.synthetic``."""
    root = Path(root)
    meta_path = root / "metadata.csv"
    if not meta_path.is_file():
        raise DataError(f"{meta_path}: synthetic metadata file does not exist")
    meta = pd.read_csv(meta_path, dtype=str)
    rows = pd.DataFrame(
        {
            "image_id": meta["image_id"],
            "path": [str(root / "images" / f"{i}.jpg") for i in meta["image_id"]],
            "label": [LABEL_NAMES.index(name) for name in meta["label"]],
            "group": meta["lesion_id"],
            "lesion_id": meta["lesion_id"],
        }
    )
    return _finish(rows)


def load_source(dataset: Mapping[str, Any]) -> pd.DataFrame:
    """The source table for the ``dataset`` rule params (kind, root and the kind's keys)."""
    kind = dataset["kind"]
    if kind == "synthetic":
        return load_synthetic(dataset["root"])
    if kind == "ham10000":
        return load_ham10000(dataset["root"], dataset["metadata"], dataset["mapping"])
    if kind == "folder":
        return load_folder(
            dataset["root"], dataset["benign_classes"], dataset["malignant_classes"]
        )
    raise DataError(f"dataset.kind: unknown kind {kind!r}")
