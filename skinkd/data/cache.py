"""The preprocessed-image cache: uint8 shards of the manifest, with labels and image ids."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from skinkd.atomic import atomic_path
from skinkd.data.images import read_image
from skinkd.data.preprocess import Preprocessing, preprocess_image
from skinkd.errors import DataError

log = logging.getLogger(__name__)


def shard_rows(manifest: pd.DataFrame, shard: int, shards: int) -> pd.DataFrame:
    """The manifest rows of one shard: contiguous, near-equal chunks in manifest order."""
    bounds = np.linspace(0, len(manifest), shards + 1).round().astype(int)
    return manifest.iloc[bounds[shard] : bounds[shard + 1]]


def preprocess_paths(paths: Sequence[str], params: Preprocessing) -> np.ndarray:
    """Read and preprocess images into one uint8 array (n, size, size, 3)."""
    size = params.image_size
    images = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        images[i] = preprocess_image(read_image(path), params)
    return images


def write_shard(
    path: str | os.PathLike, images: np.ndarray, labels: np.ndarray, image_ids: Sequence[str]
) -> None:
    """Write one shard atomically (uncompressed .npz: loading is a plain read)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            images=images,
            labels=np.asarray(labels, dtype=np.int64),
            image_ids=np.asarray(image_ids, dtype=str),
        )


def build_shard(
    manifest: pd.DataFrame, shard: int, shards: int, params: Preprocessing, out: str | os.PathLike
) -> int:
    """Preprocess one shard of the manifest into ``out``; returns the number of images."""
    rows = shard_rows(manifest, shard, shards)
    images = preprocess_paths(list(rows["path"]), params)
    write_shard(out, images, rows["label"].to_numpy(), list(rows["image_id"]))
    log.info("shard %d/%d: %d images of %dx%d", shard, shards, len(rows), *images.shape[1:3])
    return len(rows)


def _select(
    images: np.ndarray, labels: np.ndarray, ids: np.ndarray, wanted: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    position = pd.Series(np.arange(len(ids)), index=ids)
    missing = [i for i in wanted if i not in position.index]
    if missing:
        raise DataError(f"{len(missing)} image id(s) not in the cache shards, e.g. {missing[:3]}")
    take = position.loc[list(wanted)].to_numpy()
    return images[take], labels[take], ids[take]


def load_shards(
    paths: Sequence[str | os.PathLike], image_ids: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate shards into (images, labels, image_ids), optionally only the given ids
    in the given order (a split's images)."""
    parts = [np.load(Path(p), allow_pickle=False) for p in paths]
    images = np.concatenate([p["images"] for p in parts])
    labels = np.concatenate([p["labels"] for p in parts])
    ids = np.concatenate([p["image_ids"] for p in parts])
    if image_ids is None:
        return images, labels, ids
    return _select(images, labels, ids, image_ids)


def load_splits(
    paths: Sequence[str | os.PathLike], splits: pd.DataFrame, names: Sequence[str]
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(images, labels, image_ids) of each named split, in split-table order, reading the
    shards once (the whole cache can be gigabytes)."""
    wanted = {}
    for name in names:
        wanted[name] = list(splits.loc[splits["split"] == name, "image_id"])
        if not wanted[name]:
            raise DataError(f"the {name} split is empty")
    everything = load_shards(paths)
    return {name: _select(*everything, ids) for name, ids in wanted.items()}


def load_split(
    paths: Sequence[str | os.PathLike], splits: pd.DataFrame, split: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, image_ids) of one split ("train", "val" or "test"), in split-table order."""
    return load_splits(paths, splits, [split])[split]
