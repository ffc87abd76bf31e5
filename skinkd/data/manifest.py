"""The manifest: the source table with every image checked, measured and hashed.

Every image is decoded here once, so a bad file is found before the split is drawn, and the
split never has to change when an image is left out later.
"""

from __future__ import annotations

import logging

import pandas as pd

from skinkd.data.hashing import inspect_image
from skinkd.data.labelled import LabelledSet
from skinkd.errors import DataError
from skinkd.parallel import map_in_processes

log = logging.getLogger(__name__)
_SHOWN_ERRORS = 10


def build_manifest(
    source: pd.DataFrame, on_bad_image: str = "error", processes: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check every image of a source table; return (manifest, rejected).

    With ``on_bad_image="error"`` any bad image raises one DataError listing them; with
    ``"skip"`` they are left out and returned in ``rejected`` (image_id, path, reason).
    """
    results = map_in_processes(inspect_image, list(source["path"]), processes)
    info = pd.DataFrame(results, index=source.index)
    bad = info["error"].notna() if "error" in info else pd.Series(False, index=source.index)
    rejected = pd.DataFrame(
        {
            "image_id": source.loc[bad, "image_id"],
            "path": source.loc[bad, "path"],
            "reason": info.loc[bad, "error"] if bad.any() else pd.Series(dtype=str),
        }
    ).reset_index(drop=True)
    if bad.any() and on_bad_image == "error":
        shown = "\n  ".join(rejected["reason"].head(_SHOWN_ERRORS))
        more = len(rejected) - _SHOWN_ERRORS
        raise DataError(
            f"{len(rejected)} bad image(s):\n  {shown}"
            + (f"\n  ... and {more} more" if more > 0 else "")
            + "\n(set dataset.on_bad_image: skip to leave them out and list them in rejected.csv)"
        )
    for reason in rejected["reason"]:
        log.warning("skipped: %s", reason)
    manifest = source.loc[~bad].copy()
    # Checked before the size columns are read: with every image bad there are none.
    for label, name in ((0, "benign"), (1, "malignant")):
        if not (manifest["label"] == label).any():
            raise DataError(f"no {name} images left after checking ({len(rejected)} rejected)")
    good = info.loc[~bad]
    manifest["width"] = good["width"].astype("int64")
    manifest["height"] = good["height"].astype("int64")
    manifest["sha256"] = good["sha256"]
    manifest["phash"] = good["phash"]
    return manifest.reset_index(drop=True), rejected


def read_manifest(path: str) -> pd.DataFrame:
    """Read a manifest (or split table) CSV keeping ids and hashes as strings."""
    text_columns = ("image_id", "group", "lesion_id", "phash", "sha256", "path", "division")
    return pd.read_csv(
        path, dtype={c: str for c in text_columns}, keep_default_na=False, na_values=[]
    )


def labelled_manifest(
    labelled: LabelledSet, on_bad_image: str = "error", processes: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``build_manifest`` for a labelled set from elsewhere (``skinkd.data.labelled``): the rows
    it rejected come first in ``rejected``, named by file and line."""
    source = pd.DataFrame(
        [vars(image) for image in labelled.images], columns=["image_id", "path", "label", "dx"]
    )
    manifest, rejected = build_manifest(source, on_bad_image, processes)
    rows = pd.DataFrame(
        [(where, "", reason) for where, reason in labelled.rejected],
        columns=["image_id", "path", "reason"],
    )
    return manifest, pd.concat([rows, rejected], ignore_index=True)
