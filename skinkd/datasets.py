"""Dataset loaders: each turns a dataset on disk into a source table, one row per image.

A source table has ``image_id``, ``path``, ``label`` (0 benign, 1 malignant), ``label_name``,
``group`` (the unit that must not cross splits) and the dataset's own fields. The manifest
(``skinkd.manifest``) then checks every image and adds content hashes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any
from pathlib import Path

import pandas as pd

from skinkd.errors import DataError
from skinkd.images import IMAGE_SUFFIXES

LABEL_NAMES = ("benign", "malignant")
HAM_DX = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
HAM_MALIGNANT = {
    # The paper's mapping reproduces its counts (3,195 malignant); bkl and vasc are benign
    # clinically, hence the second mapping.
    "paper": frozenset({"mel", "bcc", "akiec", "bkl", "vasc"}),
    "clinical": frozenset({"mel", "bcc", "akiec"}),
}
HAM_REQUIRED = ("lesion_id", "image_id", "dx")
HAM_OPTIONAL = ("dx_type", "age", "sex", "localization")
HAM_PART_DIRS = ("HAM10000_images_part_1", "HAM10000_images_part_2")
DIVISIONS = ("train", "test")


def _require_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise DataError(f"{path}: {what} does not exist")
    if not path.is_dir():
        raise DataError(f"{path}: {what} is not a folder")


def _image_files(folder: Path) -> list[Path]:
    files = [
        Path(dirpath) / name
        for dirpath, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")
    ]
    return sorted(files)


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
    _require_dir(root, "dataset.root")
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
        for path in _image_files(folder):
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
    return _finish(rows)


def _class_folders(
    folder: Path, benign: Sequence[str], malignant: Sequence[str]
) -> list[tuple[Path, int]]:
    known = {name: 0 for name in benign} | {name: 1 for name in malignant}
    classes = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name not in known:
            raise DataError(
                f"{sub}: unknown class folder {sub.name!r}; known classes are benign "
                f"{list(benign)} and malignant {list(malignant)} "
                "(dataset.benign_classes, dataset.malignant_classes)"
            )
        classes.append((sub, known[sub.name]))
    return classes


def load_folder(
    root: str | os.PathLike, benign_classes: Sequence[str], malignant_classes: Sequence[str]
) -> pd.DataFrame:
    """``<class>/`` or ``train|test/<class>/`` folders of images.

    The ``division`` column keeps an existing train/test division ("" for a flat layout).
    An absent or entirely empty ``test/`` is allowed; a class with no image at all is not.
    """
    root = Path(root)
    _require_dir(root, "dataset.root")
    divisions = [d for d in DIVISIONS if (root / d).is_dir()]
    tops = [(root / d, d) for d in divisions] if divisions else [(root, "")]
    records = []
    per_class: dict[int, int] = {0: 0, 1: 0}
    for top, division in tops:
        classes = _class_folders(top, benign_classes, malignant_classes)
        counts = {sub: len(_image_files(sub)) for sub, _ in classes}
        if division and sum(counts.values()) == 0:
            continue
        for sub, label in classes:
            if counts[sub] == 0:
                raise DataError(f"{sub}: empty class folder (no jpg/jpeg/png/bmp images)")
            for path in _image_files(sub):
                image_id = path.relative_to(root).as_posix()
                records.append((image_id, str(path), label, image_id, sub.name, division))
                per_class[label] += 1
    for label, count in per_class.items():
        if count == 0:
            raise DataError(f"{root}: no {LABEL_NAMES[label]} images in any class folder")
    rows = pd.DataFrame(
        records, columns=["image_id", "path", "label", "group", "class_folder", "division"]
    )
    return _finish(rows)


def load_synthetic(root: str | os.PathLike) -> pd.DataFrame:
    """The generated dataset: ``images/`` plus ``metadata.csv`` from ``skinkd.synthetic``."""
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
