"""The acquisition-shift benchmark: what another camera, light or handling does to a model.

Each shift is applied to the raw image, before any preprocessing, at five severities, with
the parameters below (also in docs/method.md). Where a shift has a direction (warmer or
cooler light, brighter or darker), each image draws it from a generator seeded by the
benchmark's seed, the shift, the severity and the image's position, so every model sees the
very same shifted images.

| shift | severity 1 .. 5 |
|---|---|
| illuminant | colour temperature 5000 .. 2700 K (warm) or 7500 .. 16000 K (cool) against 6500 K |
| exposure | gain 2^(+-0.3) .. 2^(+-1.5) |
| gamma_contrast | gamma 1.15 .. 2.0 or its inverse, then contrast 0.9 .. 0.5 about the mean |
| defocus | disk blur of radius 1 .. 6 % of the shorter side |
| jpeg | JPEG quality 75 .. 10 |
| resolution | shrunk to 0.7 .. 0.15 of its size by area, enlarged back linearly |
| vignetting | light falling to 1 - 0.15 .. 0.75 at the corners, black outside a circular field of 1.0 .. 0.7 half-diagonals |
| rotation_zoom | turned by +-10 .. 60 degrees and zoomed in 1.05 .. 1.4 times (edges repeated) |
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from skinkd.data.photometric import disk_blur, illuminant_gains, tone_curve, vignette
from skinkd.data.preprocess import saturate_uint8
from skinkd.errors import ConfigError

SEVERITIES = (1, 2, 3, 4, 5)
WARM_KELVIN = (5000, 4200, 3600, 3100, 2700)
COOL_KELVIN = (7500, 8500, 10000, 12500, 16000)
EXPOSURE_EV = (0.3, 0.6, 0.9, 1.2, 1.5)
GAMMA = (1.15, 1.3, 1.5, 1.75, 2.0)
CONTRAST = (0.9, 0.8, 0.7, 0.6, 0.5)
DEFOCUS_RADIUS = (0.01, 0.02, 0.03, 0.045, 0.06)
JPEG_QUALITY = (75, 50, 30, 20, 10)
RESOLUTION_SCALE = (0.7, 0.5, 0.35, 0.25, 0.15)
VIGNETTE_FALLOFF = (0.15, 0.3, 0.45, 0.6, 0.75)
FIELD_RADIUS = (1.0, 0.92, 0.85, 0.78, 0.7)
ROTATION_DEG = (10, 20, 30, 45, 60)
ZOOM = (1.05, 1.1, 1.2, 1.3, 1.4)


def _sign(rng: np.random.Generator) -> int:
    return 1 if rng.random() < 0.5 else -1


def illuminant(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    kelvin = (WARM_KELVIN if _sign(rng) > 0 else COOL_KELVIN)[level]
    # Colour only: the gains keep the mean level, exposure is a shift of its own.
    return saturate_uint8(image * illuminant_gains(kelvin))


def exposure(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return saturate_uint8(image * 2.0 ** (_sign(rng) * EXPOSURE_EV[level]))


def gamma_contrast(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return tone_curve(image, GAMMA[level] ** _sign(rng), CONTRAST[level])


def defocus(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return disk_blur(image, max(1.0, DEFOCUS_RADIUS[level] * min(image.shape[:2])))


def jpeg(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    quality = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY[level]]
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), quality)
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def resolution(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    scale = RESOLUTION_SCALE[level]
    small = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)  # fmt: skip
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def vignetting(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    return vignette(image, VIGNETTE_FALLOFF[level], FIELD_RADIUS[level])


def rotation_zoom(image: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    angle = _sign(rng) * ROTATION_DEG[level]
    matrix = cv2.getRotationMatrix2D((width / 2 - 0.5, height / 2 - 0.5), angle, ZOOM[level])
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)  # fmt: skip


SHIFTS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "illuminant": illuminant,
    "exposure": exposure,
    "gamma_contrast": gamma_contrast,
    "defocus": defocus,
    "jpeg": jpeg,
    "resolution": resolution,
    "vignetting": vignetting,
    "rotation_zoom": rotation_zoom,
}


def shift_image(image: np.ndarray, shift: str, severity: int, seed: int, index: int) -> np.ndarray:
    """The uint8 RGB ``image`` (the ``index``-th of the benchmark) under ``shift`` at
    ``severity`` (1..5), drawn from the generator of (seed, shift, severity, index)."""
    if shift not in SHIFTS:
        raise ConfigError(f"shift: {shift!r} is not one of {', '.join(SHIFTS)}")
    if severity not in SEVERITIES:
        raise ConfigError(f"severity: {severity!r} is not one of {SEVERITIES}")
    rng = np.random.default_rng([seed, list(SHIFTS).index(shift), severity, index])
    return SHIFTS[shift](image, severity - 1, rng)
