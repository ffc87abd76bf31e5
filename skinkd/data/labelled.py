"""Labelled image sets on disk, read without pandas (``skinkd evaluate`` runs on the edge
install): class folders, a CSV of ``image,label``, the ISIC challenge ground truth, and PH2's
own label file.

Each reader returns a ``LabelledSet``: the usable rows and the rejected ones with the reason.
A bad row (missing image, unknown label, a row that is not one-hot, a path leaving the set's
folder) is an error naming the file and line with ``on_bad_image="error"``, a rejection with
``"skip"``. The images themselves are checked later, by whoever decodes them.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from skinkd.data.images import IMAGE_SUFFIXES
from skinkd.errors import ConfigError, DataError

LABEL_NAMES = ("benign", "malignant")
HAM_DX = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
HAM_MALIGNANT = {
    # The paper's mapping reproduces its counts (3,195 malignant); bkl and vasc are benign
    # clinically, hence the second mapping.
    "paper": frozenset({"mel", "bcc", "akiec", "bkl", "vasc"}),
    "clinical": frozenset({"mel", "bcc", "akiec"}),
}
ISIC_COLUMNS = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
LAYOUTS = ("folder", "csv", "isic", "ph2")
# PH2 (Mendonca et al. 2013): melanoma is malignant, common and atypical nevi benign.
PH2_COLUMNS = ("image_id", "file", "dx", "malignant")
PH2_DX = {"common_nevus": 0, "atypical_nevus": 0, "melanoma": 1}
DIVISIONS = ("train", "test")
_LABEL_WORDS = {"benign": 0, "malignant": 1, "0": 0, "1": 1}
_SHOWN_ERRORS = 10


@dataclass(frozen=True)
class LabelledImage:
    image_id: str
    path: str
    label: int
    dx: str = ""


@dataclass
class LabelledSet:
    """Usable rows, and rejected ones as (where, reason)."""

    images: list[LabelledImage] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


def image_files(folder: Path) -> list[Path]:
    """Image files (jpg, jpeg, png, bmp; not hidden) under ``folder``, recursively, sorted."""
    files = [
        Path(dirpath) / name
        for dirpath, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith(".")
    ]
    return sorted(files)


def require_dir(path: Path, what: str) -> None:
    if not path.exists():
        raise DataError(f"{path}: {what} does not exist")
    if not path.is_dir():
        raise DataError(f"{path}: {what} is not a folder")


def refuse_outside(root: Path, paths: Sequence[str | os.PathLike], what: str) -> None:
    """Raise DataError if a path leaves ``root`` once ``..`` and symlinks are resolved: a
    metadata row or a link must not make the workflow read files elsewhere."""
    top = root.resolve()
    for path in paths:
        real = Path(path).resolve()
        if not real.is_relative_to(top):
            raise DataError(
                f"{path}: {what} leaves the data root {root} (it resolves to {real}); "
                "images must lie inside it"
            )


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


def folder_records(
    root: str | os.PathLike, benign_classes: Sequence[str], malignant_classes: Sequence[str]
) -> list[dict[str, object]]:
    """``<class>/`` or ``train|test/<class>/`` folders: one record per image with image_id
    (the path below ``root``), path, label, class_folder and division ("" when flat).

    An absent or entirely empty ``test/`` is allowed; a class with no image at all is not.
    """
    root = Path(root)
    require_dir(root, "dataset.root")
    divisions = [d for d in DIVISIONS if (root / d).is_dir()]
    tops = [(root / d, d) for d in divisions] if divisions else [(root, "")]
    records: list[dict[str, object]] = []
    per_class = {0: 0, 1: 0}
    for top, division in tops:
        classes = _class_folders(top, benign_classes, malignant_classes)
        files = {sub: image_files(sub) for sub, _ in classes}
        if division and not any(files.values()):
            continue
        for sub, label in classes:
            if not files[sub]:
                raise DataError(f"{sub}: empty class folder (no jpg/jpeg/png/bmp images)")
            for path in files[sub]:
                image_id = path.relative_to(root).as_posix()
                records.append(
                    {"image_id": image_id, "path": str(path), "label": label,
                     "class_folder": sub.name, "division": division}
                )  # fmt: skip
                per_class[label] += 1
    for label, count in per_class.items():
        if count == 0:
            raise DataError(f"{root}: no {LABEL_NAMES[label]} images in any class folder")
    refuse_outside(root, [str(r["path"]) for r in records], "image")
    return records


def detect_layout(labels: str | os.PathLike) -> str:
    """folder for a folder; isic for a CSV whose header has the ISIC diagnosis columns; ph2
    for PH2's image_id,file,dx,malignant; csv for one with image and label columns."""
    path = Path(labels)
    if path.is_dir():
        return "folder"
    header = _read_rows(path)[0][1]
    if set(ISIC_COLUMNS) <= set(header):
        return "isic"
    if set(PH2_COLUMNS) <= set(header):
        return "ph2"
    if {"image", "label"} <= set(header):
        return "csv"
    raise DataError(
        f"{path}: cannot tell the layout from the header {header}: a labels CSV has the "
        f"columns image,label, an ISIC ground truth image,{','.join(ISIC_COLUMNS)}, PH2's "
        f"{','.join(PH2_COLUMNS)}"
    )


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every non-blank row, numbered as an editor shows them."""
    if not path.is_file():
        raise DataError(f"{path}: labels file does not exist")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            rows = []
            line = 1
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append((line, [cell.strip() for cell in row]))
                line = reader.line_num + 1
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path}: empty labels file (no header)")
    return rows


def _table(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a CSV with ``required`` columns; a row of the wrong
    length becomes {"": why}."""
    (_, header), *body = _read_rows(path)
    missing = [column for column in required if column not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(header)})"
        )
    if not body:
        raise DataError(f"{path}: no rows below the header")
    rows = []
    for line, cells in body:
        if len(cells) != len(header):
            rows.append((line, {"": f"{len(cells)} fields, the header has {len(header)}"}))
        else:
            rows.append((line, dict(zip(header, cells, strict=True))))
    return rows


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if it stays inside ``root`` (symlinks resolved), else None."""
    if not relative or Path(relative).is_absolute():
        return None
    path = root / relative
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    return path


def _csv_set(labels: Path) -> LabelledSet:
    found = LabelledSet()
    seen: set[str] = set()
    for line, row in _table(labels, ("image", "label")):
        where = f"{labels}:{line}"
        if "" in row:
            found.rejected.append((where, row[""]))
            continue
        path = _inside(labels.parent, row["image"])
        # The id is the normalised relative path: ./a.jpg and sub/../a.jpg are a.jpg.
        image_id = Path(os.path.normpath(row["image"])).as_posix()
        label = _LABEL_WORDS.get(row["label"].lower())
        if path is None:
            reason = f"image path {row['image']!r} is empty, absolute or leaves {labels.parent}"
        elif label is None:
            reason = f"unknown label {row['label']!r} (benign, malignant, 0 or 1)"
        elif not path.is_file():
            reason = f"image {path} does not exist"
        elif image_id in seen:
            reason = f"image {image_id!r} is listed twice"
        else:
            seen.add(image_id)
            found.images.append(LabelledImage(image_id, str(path), label))
            continue
        found.rejected.append((where, reason))
    return found


def _isic_set(labels: Path, images: Path, mapping: str) -> LabelledSet:
    require_dir(images, "images folder")
    by_stem: dict[str, list[Path]] = {}
    for path in image_files(images):
        by_stem.setdefault(path.stem, []).append(path)
    malignant = HAM_MALIGNANT[mapping]
    found = LabelledSet()
    seen: set[str] = set()
    for line, row in _table(labels, ("image", *ISIC_COLUMNS)):
        where = f"{labels}:{line}"
        if "" in row:
            found.rejected.append((where, row[""]))
            continue
        try:
            values = [float(row[column]) for column in ISIC_COLUMNS]
        except ValueError:
            found.rejected.append((where, "a diagnosis column is not a number"))
            continue
        hot = [column for column, value in zip(ISIC_COLUMNS, values, strict=True) if value == 1.0]
        paths = by_stem.get(row["image"], [])
        if len(hot) != 1 or sum(values) != 1.0:
            reason = f"not one-hot over {','.join(ISIC_COLUMNS)}: {values}"
        elif not paths:
            reason = f"no image {row['image']}.(jpg|jpeg|png|bmp) under {images}"
        elif len(paths) > 1:
            reason = f"{len(paths)} images named {row['image']} under {images}: {paths[:2]}"
        elif not paths[0].resolve().is_relative_to(images.resolve()):
            reason = f"image {paths[0]} leaves {images} (it resolves to {paths[0].resolve()})"
        elif row["image"] in seen:
            reason = f"image {row['image']!r} is listed twice"
        else:
            seen.add(row["image"])
            dx = hot[0].lower()
            found.images.append(LabelledImage(row["image"], str(paths[0]), int(dx in malignant), dx))
            continue
        found.rejected.append((where, reason))
    return found


def _ph2_set(labels: Path) -> LabelledSet:
    """PH2's labels.csv: the label from ``dx`` (melanoma malignant, the nevi benign), which
    its ``malignant`` column must agree with; ``file`` relative to the CSV."""
    found = LabelledSet()
    seen: set[str] = set()
    for line, row in _table(labels, PH2_COLUMNS):
        where = f"{labels}:{line}"
        if "" in row:
            found.rejected.append((where, row[""]))
            continue
        path = _inside(labels.parent, row["file"])
        label = PH2_DX.get(row["dx"])
        if path is None:
            reason = f"image path {row['file']!r} is empty, absolute or leaves {labels.parent}"
        elif label is None:
            reason = f"unknown dx {row['dx']!r} ({', '.join(PH2_DX)})"
        elif row["malignant"] != str(label):
            reason = f"malignant {row['malignant']!r} contradicts dx {row['dx']!r}"
        elif not path.is_file():
            reason = f"image {path} does not exist"
        elif row["image_id"] in seen:
            reason = f"image {row['image_id']!r} is listed twice"
        else:
            seen.add(row["image_id"])
            found.images.append(LabelledImage(row["image_id"], str(path), label, row["dx"]))
            continue
        found.rejected.append((where, reason))
    return found


def read_labelled_set(
    layout: str,
    labels: str | os.PathLike,
    *,
    images: str | os.PathLike | None = None,
    mapping: str = "clinical",
    on_bad_image: str = "error",
    benign_classes: Sequence[str] = ("benign",),
    malignant_classes: Sequence[str] = ("malignant",),
) -> LabelledSet:
    """Read a labelled set. ``labels``: the class folder's root (folder), the image,label
    CSV (csv; paths relative to it), the ISIC ground-truth CSV (isic; images by name
    under ``images``, default the CSV's folder) or PH2's labels.csv (ph2). ``mapping`` turns
    diagnoses into benign / malignant (isic). Both classes must remain."""
    if layout not in LAYOUTS:
        raise ConfigError(f"layout: {layout!r} is not one of {', '.join(LAYOUTS)}")
    if mapping not in HAM_MALIGNANT:
        raise ConfigError(f"mapping: {mapping!r} is not one of {', '.join(HAM_MALIGNANT)}")
    labels = Path(labels)
    if layout == "folder":
        records = folder_records(labels, benign_classes, malignant_classes)
        found = LabelledSet(
            [LabelledImage(str(r["image_id"]), str(r["path"]), int(r["label"])) for r in records]
        )
    elif layout == "csv":
        found = _csv_set(labels)
    elif layout == "ph2":
        found = _ph2_set(labels)
    else:
        found = _isic_set(labels, Path(images) if images else labels.parent, mapping)
    if found.rejected:
        reject(found.rejected, on_bad_image, "row")
    for label, name in enumerate(LABEL_NAMES):
        if not any(image.label == label for image in found.images):
            raise DataError(
                f"{labels}: no {name} images ({len(found.rejected)} rows rejected); metrics "
                "need both classes"
            )
    return found


def reject(rejected: Sequence[tuple[str, str]], on_bad_image: str, what: str) -> None:
    """Raise one DataError listing the bad rows or images, unless ``on_bad_image`` is skip."""
    if on_bad_image == "skip" or not rejected:
        return
    shown = "\n  ".join(f"{where}: {reason}" for where, reason in rejected[:_SHOWN_ERRORS])
    more = len(rejected) - _SHOWN_ERRORS
    raise DataError(
        f"{len(rejected)} bad {what}(s):\n  {shown}"
        + (f"\n  ... and {more} more" if more > 0 else "")
        + "\n(set dataset.on_bad_image: skip, or --on-bad-image skip, to leave them out and "
        "list them)"
    )
