"""Light and camera: the colour of a black body along the daylight locus, and the random
photometric augmentation (illuminant, exposure, defocus; a camera's tone curve, a
dermoscope's vignetting and its magnification) that simulates another clinic's light,
optics and camera in training. The acquisition-shift benchmark
(``skinkd.evaluate.shifts``) applies the same physics at fixed severities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from skinkd.data.preprocess import saturate_uint8
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


def tone_curve(image: np.ndarray, gamma: float, contrast: float) -> np.ndarray:
    """Another camera's tone curve: each value (0..1) to the power ``gamma``, then its
    contrast about the image's mean multiplied by ``contrast``."""
    unit = (image / 255.0) ** gamma
    mean = unit.mean()
    return saturate_uint8(255.0 * (mean + contrast * (unit - mean)))


def vignette(image: np.ndarray, falloff: float, field: float) -> np.ndarray:
    """A contact dermoscope's optics: light falling by ``falloff`` (quadratically) towards
    the corners, and black outside a circular field of radius ``field`` half-diagonals."""
    height, width = image.shape[:2]
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    # Distance from the centre in half-diagonals: 1 at the corners.
    r = np.hypot(xx + 0.5 - width / 2, yy + 0.5 - height / 2) / (math.hypot(width, height) / 2)
    light = (1.0 - falloff * r**2) * (r <= field)
    return saturate_uint8(image * light[:, :, None])


def magnify(image: np.ndarray, factor: float) -> np.ndarray:
    """Another dermoscope's magnification: the content scaled by ``factor`` about the centre
    (above 1 zooms in), the frame kept; zooming out mirrors the edges into the new border,
    so the border stays skin rather than a colour no camera gives."""
    if factor == 1.0:
        return image
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2 - 0.5, height / 2 - 0.5), 0.0, factor)
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)  # fmt: skip


# The augmentation's field shrinks with its falloff, as the benchmark's severities do
# (falloff 0.15 .. 0.75 with fields 1.0 .. 0.7).
FIELD_PER_FALLOFF = 0.4


@dataclass(frozen=True)
class Photometric:
    """Ranges of the random photometric augmentation (the config's ``augment`` keys of the
    same names; 0 switches each off): the light's colour temperature moved by up to
    +-``illuminant`` mired from daylight, a gain of up to 2^+-``exposure``, a disk blur of
    radius up to ``blur`` times the side, a tone curve with gamma up to 2^+-``gamma`` and
    contrast times up to 2^+-``contrast``, light falling by up to ``vignetting`` at the
    corners with the field cut to a circle of 1 - 0.4 times that fall, the content scaled
    by up to 2^+-``magnification`` (a dermoscope that frames the lesion larger or smaller:
    lesion size in the frame is then no cue that holds across devices)."""

    illuminant: float = 0.0
    exposure: float = 0.0
    blur: float = 0.0
    gamma: float = 0.0
    contrast: float = 0.0
    vignetting: float = 0.0
    magnification: float = 0.0

    @classmethod
    def from_config(cls, section: Mapping) -> Photometric:
        limits = {"illuminant": 120.0, "exposure": 2.0, "blur": 0.1, "gamma": 1.0,
                  "contrast": 1.0, "vignetting": 0.75, "magnification": 1.0}  # fmt: skip
        values = {}
        for key, limit in limits.items():
            value = section.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= limit:
                raise ConfigError(f"augment.{key}: must be a number in [0, {limit:g}], got {value!r}")
            values[key] = float(value)
        return cls(**values)

    @property
    def is_identity(self) -> bool:
        return not (self.illuminant or self.exposure or self.blur or self.has_camera
                    or self.magnification)  # fmt: skip

    @property
    def has_camera(self) -> bool:
        """Whether the tone curve or the vignetting is on."""
        return bool(self.gamma or self.contrast or self.vignetting)


def photometric_batch(
    images: np.ndarray, photometric: Photometric, rng: np.random.Generator
) -> np.ndarray:
    """Each uint8 image (n, S, S, 3) under its own random light, exposure and blur, and,
    where their ranges are on, its own tone curve, vignetting and magnification; the draws
    are three uniform numbers per image from ``rng``, then three more for the camera's, then
    one for the magnification."""
    unit = 2.0 * rng.random((len(images), 3)) - 1.0
    # Drawn after the first three, and only when on: the ranges set before stay as they drew.
    camera = 2.0 * rng.random((len(images), 3)) - 1.0 if photometric.has_camera else None
    zoom = 2.0 * rng.random(len(images)) - 1.0 if photometric.magnification else None
    out = np.empty_like(images)
    mired = 1e6 / DAYLIGHT_KELVIN
    for i, (image, (u_light, u_exposure, u_blur)) in enumerate(zip(images, unit)):
        # Mired below ~25 (40,000 K) is off the fitted locus: held there.
        kelvin = 1e6 / max(25.0, mired + photometric.illuminant * u_light)
        gains = illuminant_gains(kelvin) * 2.0 ** (photometric.exposure * u_exposure)
        if zoom is not None:
            # The frame first: the light and the optics act on what the camera frames.
            image = magnify(image, 2.0 ** (photometric.magnification * zoom[i]))
        shifted = saturate_uint8(image * gains)
        if camera is not None:
            # Light (vignetting) before the optics' blur, the camera's tone curve after.
            falloff = photometric.vignetting * abs(camera[i, 2])
            shifted = vignette(shifted, falloff, 1.0 - FIELD_PER_FALLOFF * falloff)
        shifted = disk_blur(shifted, photometric.blur * abs(u_blur) * image.shape[0])
        if camera is not None:
            shifted = tone_curve(shifted, 2.0 ** (photometric.gamma * camera[i, 0]),
                                 2.0 ** (photometric.contrast * camera[i, 1]))  # fmt: skip
        out[i] = shifted
    return out
