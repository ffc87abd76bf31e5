"""Stratified, grouped, seeded train/val/test splits and the leakage they allow."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from skinkd.data.hashing import hashes_to_uint64, near_duplicate_pairs

SPLITS = ("train", "val", "test")


def assign_splits(
    labels: Sequence[int],
    groups: Sequence[str],
    fractions: Sequence[float],
    seed: int,
    names: Sequence[str] = SPLITS,
) -> np.ndarray:
    """Split names per image: whole groups go to one split, each label stratum is divided
    by image count in the given fractions, and the same inputs give the same answer.

    A group's stratum is its most severe label (malignant if any image is malignant).
    Groups are shuffled within their stratum, then laid end to end; a group goes to the
    split whose share of the stratum contains the group's midpoint.
    """
    frame = pd.DataFrame({"label": np.asarray(labels), "group": np.asarray(groups, dtype=str)})
    per_group = frame.groupby("group", sort=True).agg(label=("label", "max"), size=("label", "size"))
    bounds = np.cumsum(np.asarray(fractions, dtype=float))
    bounds = bounds / bounds[-1]
    rng = np.random.default_rng(seed)
    split_of_group: dict[str, str] = {}
    for _, stratum in per_group.groupby("label", sort=True):
        order = rng.permutation(len(stratum))
        sizes = stratum["size"].to_numpy()[order]
        ends = np.cumsum(sizes)
        midpoints = (ends - sizes / 2) / ends[-1]
        which = np.searchsorted(bounds, midpoints, side="right")
        which = np.minimum(which, len(names) - 1)
        for group, index in zip(stratum.index[order], which, strict=True):
            split_of_group[group] = names[index]
    return frame["group"].map(split_of_group).to_numpy()


def make_splits(
    manifest: pd.DataFrame,
    group_by: str,
    fractions: Sequence[float],
    seed: int,
    keep_division: bool = False,
) -> pd.DataFrame:
    """The split table (image_id, group, label, [dx,] split) for a manifest.

    ``group_by="lesion"`` keeps every image of a group together; ``"image"`` splits images
    independently (the paper's split). With ``keep_division`` and a manifest whose
    ``division`` column marks test images, those form the test split and the rest is divided
    into train and val in the ratio of the first two fractions.
    """
    groups = manifest["group"] if group_by == "lesion" else manifest["image_id"]
    split = np.empty(len(manifest), dtype=object)
    fixed_test = np.zeros(len(manifest), dtype=bool)
    if keep_division and "division" in manifest:
        fixed_test = (manifest["division"] == "test").to_numpy()
    if fixed_test.any():
        split[fixed_test] = "test"
        rest = ~fixed_test
        split[rest] = assign_splits(
            manifest.loc[rest, "label"], groups[rest], fractions[:2], seed, names=SPLITS[:2]
        )
    else:
        split[:] = assign_splits(manifest["label"], groups, fractions, seed)
    table = pd.DataFrame(
        {
            "image_id": manifest["image_id"],
            "group": manifest["group"],
            "label": manifest["label"],
            "split": split,
        }
    )
    if "dx" in manifest:
        # Seven-class training (teacher.classes / student.classes: dx) reads it from here.
        table.insert(3, "dx", manifest["dx"].to_numpy())
    return table


def _pairs_crossing(pairs: np.ndarray, split: np.ndarray) -> tuple[int, int]:
    if len(pairs) == 0:
        return 0, 0
    a, b = split[pairs[:, 0]], split[pairs[:, 1]]
    crossing = a != b
    train_test = ((a == "train") & (b == "test")) | ((a == "test") & (b == "train"))
    return int(crossing.sum()), int(train_test.sum())


def leakage_table(
    manifest: pd.DataFrame,
    fractions: Sequence[float],
    seed: int,
    hash_distance: int,
    keep_division: bool = False,
) -> pd.DataFrame:
    """For both grouping modes: lesions and (near-)duplicate images that cross the splits."""
    near = near_duplicate_pairs(hashes_to_uint64(manifest["phash"]), hash_distance)
    sha = manifest["sha256"].to_numpy()
    exact_mask = sha[near[:, 0]] == sha[near[:, 1]] if len(near) else np.zeros(0, bool)
    rows = []
    for group_by in ("lesion", "image"):
        split = make_splits(manifest, group_by, fractions, seed, keep_division)["split"].to_numpy()
        per_lesion = pd.DataFrame({"group": manifest["group"], "split": split})
        n_splits = per_lesion.groupby("group")["split"].nunique()
        crossing_lesions = n_splits.index[n_splits > 1]
        near_cross, near_train_test = _pairs_crossing(near, split)
        exact_cross, exact_train_test = _pairs_crossing(near[exact_mask], split)
        rows.append(
            {
                "group_by": group_by,
                "images": len(manifest),
                "lesions": int(manifest["group"].nunique()),
                "multi_image_lesions": int((manifest.groupby("group").size() > 1).sum()),
                "lesions_crossing_splits": len(crossing_lesions),
                "images_in_crossing_lesions": int(
                    per_lesion["group"].isin(crossing_lesions).sum()
                ),
                "hash_distance": hash_distance,
                "near_duplicate_pairs": len(near),
                "near_duplicate_pairs_crossing": near_cross,
                "near_duplicate_pairs_train_test": near_train_test,
                "exact_duplicate_pairs_crossing": exact_cross,
                "exact_duplicate_pairs_train_test": exact_train_test,
            }
        )
    return pd.DataFrame(rows)


def subsample_indices(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """At most ``limit`` indices, stratified by label and seeded (all of them if no limit)."""
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        share = round(limit * len(members) / len(labels))
        keep.append(rng.choice(members, share, replace=False))
    return np.sort(np.concatenate(keep))
