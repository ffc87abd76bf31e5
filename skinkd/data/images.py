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
# Refused before decoding: a few hundred bytes can declare an image whose pixels would
# take gigabytes (a decompression bomb). 100 megapixels is 4x a 24-megapixel dermatoscope.
MAX_PIXELS = 100_000_000
# JPEG start-of-frame markers (they carry the size); C4, C8 and CC are other segments.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


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


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first start-of-frame segment, None if there is none."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_SOF:
            return int.from_bytes(data[i + 7 : i + 9]), int.from_bytes(data[i + 5 : i + 7])
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2 : i + 4])
    return None


def declared_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) as the file's header states it, read without decoding."""
    if fmt == "PNG" and len(data) >= 24:
        return int.from_bytes(data[16:20]), int.from_bytes(data[20:24])
    if fmt == "BMP" and len(data) >= 26:
        width = int.from_bytes(data[18:22], "little", signed=True)
        height = int.from_bytes(data[22:26], "little", signed=True)
        return abs(width), abs(height)
    if fmt == "JPEG":
        return _jpeg_size(data)
    return None


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
    size = declared_size(data, fmt)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise DataError(
            f"{source}: {fmt} header declares {size[0]}x{size[1]} pixels, over the "
            f"{MAX_PIXELS:,}-pixel limit (refused before decoding: a decompression bomb?)"
        )
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        # Damaged headers can trip the decoder's own assertions (found by tests/test_fuzz.py).
        reason = str(exc).strip().splitlines()[-1]
        raise DataError(f"{source}: corrupt {fmt} (the decoder refused it: {reason})") from None
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
