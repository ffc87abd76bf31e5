"""Content hashes: SHA-256 for exact copies, a 64-bit perceptual hash for near-duplicates."""

from __future__ import annotations

import hashlib
import os

import cv2
import numpy as np

from skinkd.data.images import decode_image, read_bytes
from skinkd.errors import DataError


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in blocks (model and weight files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def perceptual_hash(image: np.ndarray) -> str:
    """pHash of an RGB image: signs of the 8x8 lowest DCT frequencies of a 32x32 grey copy
    against their median, as 16 hex digits. Robust to resizing, compression and small shifts.
    """
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].ravel()
    bits = low > np.median(low)
    return f"{int(np.packbits(bits).view('>u8')[0]):016x}"


def hashes_to_uint64(hashes: list[str] | np.ndarray) -> np.ndarray:
    return np.array([int(h, 16) for h in hashes], dtype=np.uint64)


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int, block: int = 2048) -> np.ndarray:
    """All index pairs (i < j) whose hashes differ in at most ``max_distance`` bits.

    Blocked all-pairs Hamming distances: 10,000 images take about a second.
    """
    n = len(hashes)
    found = []
    for start in range(0, n, block):
        rows = hashes[start : start + block]
        dist = np.bitwise_count(rows[:, None] ^ hashes[None, :])
        i, j = np.nonzero(dist <= max_distance)
        i = i + start
        keep = i < j
        found.append(np.stack([i[keep], j[keep]], axis=1))
    return np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)


def inspect_image(path: str) -> dict[str, object]:
    """Size and hashes of one image, or ``{"error": message}`` when it cannot be used."""
    try:
        data = read_bytes(path)
        image = decode_image(data, path)
    except DataError as exc:
        return {"error": str(exc)}
    return {
        "width": image.shape[1],
        "height": image.shape[0],
        "sha256": sha256(data),
        "phash": perceptual_hash(image),
    }
