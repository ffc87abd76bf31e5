"""Light and camera: the colour of a black body along the daylight locus, and the random
photometric augmentation (illuminant, exposure, defocus) that simulates another clinic's
light and optics in training. The acquisition-shift benchmark
(``skinkd.evaluate.shifts``) applies the same physics at fixed severities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from skinkd.errors import ConfigError

# A camera balanced for daylight: 6500 K, in mired (10^6 / K), where equal steps look alike.
DAYLIGHT_KELVIN = 6500.0


def kelvin_rgb(kelvin: float) -> np.ndarray:
    """The RGB colour of a black body at ``kelvin`` (Tanner Helland's fit to the Planckian
    locus, 1..255 per channel), the light a camera balanced for 6500 K sees as tinted."""
    t = kelvin / 100.0
    red = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    if t <= 66:
        green = 99.4708025861 * math.log(t) - 161.1195681661
    else:
        green = 288.1221695283 * (t - 60) ** -0.0755148492
    if t >= 66:
        blue = 255.0
    elif t <= 19:
        blue = 0.0
    else:
        blue = 138.5177312231 * math.log(t - 10) - 305.0447927307
    return np.clip([red, green, blue], 1.0, 255.0)


def illuminant_gains(kelvin: float) -> np.ndarray:
    """Per-channel gains that turn daylight into light of ``kelvin``, their mean 1 (colour
    only; brightness is exposure's)."""
    gains = kelvin_rgb(kelvin) / kelvin_rgb(DAYLIGHT_KELVIN)
    return gains / gains.mean()


def disk_blur(image: np.ndarray, radius: float) -> np.ndarray:
    """A defocused lens: the mean over a disk of ``radius`` pixels (none below half a pixel)."""
    if radius < 0.5:
        return image
    size = 2 * math.ceil(radius) + 1
    yy, xx = np.mgrid[:size, :size] - size // 2
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    return cv2.filter2D(image, -1, disk / disk.sum(), borderType=cv2.BORDER_REFLECT)


@dataclass(frozen=True)
class Photometric:
    """Ranges of the random photometric augmentation (the config's ``augment.illuminant``,
    ``augment.exposure`` and ``augment.blur``; 0 switches each off): the light's colour
    temperature moved by up to +-``illuminant`` mired from daylight, a gain of up to
    2^+-``exposure``, a disk blur of radius up to ``blur`` times the side."""

    illuminant: float = 0.0
    exposure: float = 0.0
    blur: float = 0.0

    @classmethod
    def from_config(cls, section: Mapping) -> Photometric:
        limits = {"illuminant": 120.0, "exposure": 2.0, "blur": 0.1}
        values = {}
        for key, limit in limits.items():
            value = section.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= limit:
                raise ConfigError(f"augment.{key}: must be a number in [0, {limit:g}], got {value!r}")
            values[key] = float(value)
        return cls(**values)

    @property
    def is_identity(self) -> bool:
        return not (self.illuminant or self.exposure or self.blur)


def photometric_batch(
    images: np.ndarray, photometric: Photometric, rng: np.random.Generator
) -> np.ndarray:
    """Each uint8 image (n, S, S, 3) under its own random light, exposure and blur; the draws
    are three uniform numbers per image from ``rng``."""
    unit = 2.0 * rng.random((len(images), 3)) - 1.0
    out = np.empty_like(images)
    mired = 1e6 / DAYLIGHT_KELVIN
    for i, (image, (u_light, u_exposure, u_blur)) in enumerate(zip(images, unit)):
        # Mired below ~25 (40,000 K) is off the fitted locus: held there.
        kelvin = 1e6 / max(25.0, mired + photometric.illuminant * u_light)
        gains = illuminant_gains(kelvin) * 2.0 ** (photometric.exposure * u_exposure)
        shifted = np.clip(np.rint(image * gains), 0, 255).astype(np.uint8)
        out[i] = disk_blur(shifted, photometric.blur * abs(u_blur) * image.shape[0])
    return out
