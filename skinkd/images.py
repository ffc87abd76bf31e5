"""Reading images from disk into RGB uint8 arrays, with clear errors for bad files.

Every reader in the project (manifest, preprocessing, predict) goes through ``read_image`` so
that colour modes are handled once: greyscale becomes three equal channels, an alpha channel
is dropped, 16-bit samples are scaled to 8 bits, CMYK JPEGs are converted by the decoder.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from skinkd.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

_MAGIC = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"BM": "BMP",
}
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"


def _format_of(data: bytes) -> str | None:
    for magic, name in _MAGIC.items():
        if data.startswith(magic):
            return name
    return None


def _check_complete(data: bytes, fmt: str, source: str) -> None:
    # OpenCV decodes some truncated files with a grey fill and only a warning on stderr.
    tail = data[-64:].rstrip(b"\x00\r\n ")
    if fmt == "JPEG" and not tail.endswith(_JPEG_END):
        raise DataError(f"{source}: truncated JPEG (no end-of-image marker)")
    if fmt == "PNG" and _PNG_END not in tail:
        raise DataError(f"{source}: truncated PNG (no IEND chunk)")


def decode_image(data: bytes, source: str) -> np.ndarray:
    """Decode encoded image bytes into an RGB uint8 array; ``source`` names the file in errors."""
    if len(data) == 0:
        raise DataError(f"{source}: empty file (0 bytes)")
    fmt = _format_of(data)
    if fmt is None:
        raise DataError(
            f"{source}: not a JPEG, PNG or BMP image (file starts with {data[:8]!r})"
        )
    _check_complete(data, fmt, source)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(f"{source}: corrupt {fmt} (the decoder could not read it)")
    if image.dtype == np.uint16:
        image = np.round(image / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DataError(f"{source}: unsupported sample type {image.dtype} (8 or 16 bit expected)")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise DataError(f"{source}: unsupported number of channels ({channels})")


def read_bytes(path: str | os.PathLike) -> bytes:
    """Read a file's bytes; a missing or unreadable file raises DataError naming it."""
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{p}: file does not exist") from None
    except IsADirectoryError:
        raise DataError(f"{p}: is a directory, not an image file") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot be read ({exc.strerror})") from None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image file as RGB uint8 (height, width, 3)."""
    return decode_image(read_bytes(path), str(path))
