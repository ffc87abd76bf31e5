"""Seeded generator of the default embedded dataset: dermoscopy-like images of lesions
drawn by ``skinkd.data.lesions``, written as JPEGs with a metadata table.

Images are grouped into lesions (1..views_per_lesion_max near-duplicate views each) so
that downstream splits can be made by lesion, as with HAM10000.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from skinkd.data.lesions import render_views

__all__ = ["generate_synthetic", "METADATA_COLUMNS"]

METADATA_COLUMNS = ["image_id", "lesion_id", "label", "width", "height"]


# Share of lesions with a single view; the rest get 2..views_per_lesion_max views.
_SINGLE_VIEW_SHARE = 0.75


def _validate(
    n_images: int, width: int, height: int, malignant_fraction: float, views_per_lesion_max: int, quality: int
) -> int:
    """Check arguments; return the number of malignant images to aim for."""
    if int(n_images) != n_images or n_images < 2:
        raise ValueError(f"n_images must be an integer >= 2, got {n_images!r}")
    if int(width) != width or width < 32:
        raise ValueError(f"width must be an integer >= 32, got {width!r}")
    if int(height) != height or height < 32:
        raise ValueError(f"height must be an integer >= 32, got {height!r}")
    if not (0.0 < malignant_fraction < 1.0):
        raise ValueError(f"malignant_fraction must be in (0, 1), got {malignant_fraction!r}")
    if int(views_per_lesion_max) != views_per_lesion_max or views_per_lesion_max < 1:
        raise ValueError(f"views_per_lesion_max must be an integer >= 1, got {views_per_lesion_max!r}")
    if int(quality) != quality or not (1 <= quality <= 100):
        raise ValueError(f"quality must be an integer in 1..100, got {quality!r}")
    target = int(round(n_images * malignant_fraction))
    if not (1 <= target <= n_images - 1):
        raise ValueError(
            f"malignant_fraction={malignant_fraction!r} with n_images={n_images} leaves one class empty"
        )
    return target


def _plan_lesions(
    rng: np.random.Generator, n_images: int, views_max: int, target_malignant: int
) -> tuple[list[int], list[bool]]:
    """Views per lesion and lesion labels, summing to n_images with ~target malignant images."""
    views: list[int] = []
    left = n_images
    while left > 0:
        k = 1
        if views_max > 1 and rng.uniform() >= _SINGLE_VIEW_SHARE:
            k = int(rng.integers(2, views_max + 1))
        # Cap so there are always >= 2 lesions, hence room for both classes.
        cap = n_images - 1 if not views else left
        k = min(k, cap)
        views.append(k)
        left -= k
    # Greedy in random order: malignant while it fits; exact whenever 1-view lesions remain.
    malignant = [False] * len(views)
    count = 0
    for i in rng.permutation(len(views)):
        if count + views[i] <= target_malignant:
            malignant[i] = True
            count += views[i]
    if count == 0:  # every lesion had more views than the target: take the smallest
        malignant[int(np.argmin(views))] = True
    return views, malignant


def generate_synthetic(
    out_dir: Path,
    n_images: int,
    seed: int,
    width: int = 200,
    height: int = 150,
    malignant_fraction: float = 0.4,
    views_per_lesion_max: int = 3,
    quality: int = 92,
) -> pd.DataFrame:
    """Write out_dir/images/<image_id>.jpg and out_dir/metadata.csv; return the metadata frame."""
    target = _validate(n_images, width, height, malignant_fraction, views_per_lesion_max, quality)
    n_images, width, height, quality = int(n_images), int(width), int(height), int(quality)
    out_dir = Path(out_dir)

    root = np.random.default_rng(seed)
    views, malignant = _plan_lesions(root, n_images, int(views_per_lesion_max), target)
    # One independent child generator per lesion: lesion i's pixels depend only on
    # (seed, i, its label, its view count), not on how many draws other lesions used.
    lesion_rngs = root.spawn(len(views))

    # Build in a hidden sibling and swap in at the end, so a killed job never leaves a
    # half-written dataset under out_dir.
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    for stale in (tmp, old):  # leftovers of an earlier killed run with the same pid
        if stale.exists():
            shutil.rmtree(stale)
    try:
        (tmp / "images").mkdir(parents=True)
        rows = []
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        for lesion, (n_views, mal, lrng) in enumerate(zip(views, malignant, lesion_rngs)):
            for img in render_views(lrng, mal, width, height, n_views):
                image_id = f"SYN_{len(rows):06d}"
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
                if not ok:
                    raise RuntimeError(f"JPEG encoding failed for {image_id}")
                (tmp / "images" / f"{image_id}.jpg").write_bytes(buf.tobytes())
                rows.append((image_id, f"SYNL_{lesion:06d}", "malignant" if mal else "benign", width, height))
        meta = pd.DataFrame(rows, columns=METADATA_COLUMNS)
        meta.to_csv(tmp / "metadata.csv", index=False, lineterminator="\n")
        # Move the old dataset aside first (a rename, instant) and delete it only after the
        # new one is in place, so out_dir is never a mix of old and new files.
        if out_dir.is_symlink() or out_dir.is_file():
            out_dir.unlink()
        elif out_dir.exists():
            out_dir.rename(old)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out_dir.exists():  # failed mid-swap: put the old data back
            old.rename(out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return meta
