"""Geometric training augmentation as one ``cv2.warpAffine`` per image.

The config's ``augment`` section asks for a random rotation, vertical and horizontal shifts,
an x shear and a horizontal flip. Chaining four Keras preprocessing layers resamples every
batch four times and cost most of a small student's epoch; composing the five transforms
into one 2x3 matrix resamples once, on the CPU, with OpenCV.

Consistent distillation needs the *same* random view at two resolutions (the teacher sees it
at 224 px, the student at 64 px). So a view is drawn once, as an affine map in a normalised
frame that does not depend on the side, and only ``pixel_matrices`` turns it into pixels:

* continuous image coordinates put pixel ``i`` on ``[i, i + 1)``, its centre at ``i + 0.5``;
* the normalised frame has its origin at the image centre (``side / 2``) and its unit is
  half the side, so the image spans ``[-1, 1]`` on both axes; x points right, y points down
  (row order), as in the arrays.

A map drawn here is a *forward* map: the content at normalised point ``p`` of the input
lands at ``A @ p + t`` in the output. It is composed as flip, then shear, then rotation, then
translation (``A = R @ S @ F``), so shifts are never rotated or sheared: a shift of a
quarter of the side moves the content by a quarter of the side, whatever the angle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import cv2
import numpy as np

from skinkd.errors import ConfigError, DataError

# One row of draws per image, always all five columns whatever the config: the stream a seed
# gives is then the same for every config, and changing one range never reshuffles the
# others.
_N_DRAWS = 5


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random geometric augmentation (the config's ``augment`` section).

    ``rotation`` is in degrees (uniform in +-rotation; positive turns the content
    counter-clockwise on screen). ``height_shift`` and ``width_shift`` are fractions of the
    side (uniform in +-shift; positive moves the content down / right). ``shear`` is the
    x-shear factor, uniform in +-shear, like Keras' ``RandomShear(x_factor=shear)`` (Keras
    shears about the top-left corner, which also shifts the content; here the centre stays,
    so the shifts alone decide where the content goes).
    ``horizontal_flip`` mirrors left-right with probability 0.5.
    """

    rotation: float
    height_shift: float
    width_shift: float
    shear: float
    horizontal_flip: bool

    @classmethod
    def from_config(cls, section: Mapping) -> Augmentation:
        """The ranges of the config's ``augment`` section; ConfigError names a bad key.

        A shift or shear of 1 or more would move content by a whole side or more (nothing of
        the image left to see), so the fractions must lie in [0, 1).
        """
        values = {}
        for field in fields(cls):
            key = f"augment.{field.name}"
            if field.name not in section:
                raise ConfigError(f"{key}: missing")
            value = section[field.name]
            if field.name == "horizontal_flip":
                if not isinstance(value, bool):
                    raise ConfigError(f"{key}: must be true or false, got {value!r}")
            else:
                # bool is an int subclass; `shear: true` is a typo, not a factor of 1.
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"{key}: must be a number, got {value!r}")
                if not math.isfinite(value) or value < 0:
                    raise ConfigError(f"{key}: must be a finite number >= 0, got {value!r}")
                if field.name != "rotation" and value >= 1:
                    raise ConfigError(
                        f"{key}: must be a fraction of the side below 1, got {value!r}"
                    )
                value = float(value)
            values[field.name] = value
        return cls(**values)

    @property
    def is_identity(self) -> bool:
        """True when every range is zero and flipping is off: every drawn view is the image."""
        return not (
            self.rotation
            or self.height_shift
            or self.width_shift
            or self.shear
            or self.horizontal_flip
        )


def compose_transforms(
    rotation_deg: np.ndarray,
    shear: np.ndarray,
    flip: np.ndarray,
    shift_x: np.ndarray,
    shift_y: np.ndarray,
) -> np.ndarray:
    """Normalised forward maps (n, 2, 3) float32 from per-image parameters (each shape (n,)).

    ``rotation_deg`` turns counter-clockwise on screen, ``shear`` adds ``shear * y`` to x,
    ``flip`` (bool) mirrors x, ``shift_x`` / ``shift_y`` are fractions of the side (right /
    down). Applied in the order flip, shear, rotation, translation; shear and rotation act
    about the image centre, so neither adds a shift of its own. ``draw_transforms`` calls it
    with random parameters; callers may also build a chosen view by hand.
    """
    angle = np.deg2rad(np.asarray(rotation_deg, dtype=np.float64))
    n = angle.shape[0]
    cos, sin = np.cos(angle), np.sin(angle)
    # y points down, so a counter-clockwise turn on screen takes +x (right) to -y (up).
    rotate = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], axis=1)
    shear_matrix = np.tile(np.eye(2), (n, 1, 1))
    shear_matrix[:, 0, 1] = shear
    flip_matrix = np.tile(np.eye(2), (n, 1, 1))
    flip_matrix[:, 0, 0] = np.where(np.asarray(flip, dtype=bool), -1.0, 1.0)
    transforms = np.empty((n, 2, 3), dtype=np.float64)
    transforms[:, :, :2] = rotate @ shear_matrix @ flip_matrix
    # A fraction f of the side is 2f half-sides, the normalised unit.
    transforms[:, 0, 2] = 2.0 * np.asarray(shift_x, dtype=np.float64)
    transforms[:, 1, 2] = 2.0 * np.asarray(shift_y, dtype=np.float64)
    return transforms.astype(np.float32)


def draw_transforms(augmentation: Augmentation, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random views as normalised forward maps, (n, 2, 3) float32.

    The same matrices serve every resolution (see ``pixel_matrices``), which is what lets the
    teacher and the student see one view at their own sides. Seeded by ``rng`` alone.
    """
    # Uniform in [-1, 1), scaled per column by its range below.
    unit = 2.0 * rng.random((n, _N_DRAWS)) - 1.0
    return compose_transforms(
        rotation_deg=augmentation.rotation * unit[:, 0],
        shear=augmentation.shear * unit[:, 1],
        flip=(unit[:, 2] < 0.0) & augmentation.horizontal_flip,
        shift_x=augmentation.width_shift * unit[:, 3],
        shift_y=augmentation.height_shift * unit[:, 4],
    )


def view_transforms(augmentation: Augmentation, n: int, seed: int, view: int) -> np.ndarray:
    """View ``view`` (1..K) of each of ``n`` training images: the one stream of cached views
    that the teacher's feature cache, its soft labels and consistent distillation share."""
    return draw_transforms(augmentation, n, np.random.default_rng([seed, view]))


# The dihedral group of the square as normalised linear maps (y down): the four
# counter-clockwise right-angle turns of the image, then the same after a left-right mirror.
_TURNS = np.array([[[1, 0], [0, 1]], [[0, 1], [-1, 0]], [[-1, 0], [0, -1]], [[0, -1], [1, 0]]])
_MIRROR = np.array([[-1, 0], [0, 1]])
DIHEDRAL = np.concatenate([_TURNS, _TURNS @ _MIRROR])


def dihedral_transforms(n: int) -> np.ndarray:
    """The eight flips and right-angle rotations of each of ``n`` images as normalised maps,
    (8, n, 2, 3) float32, the identity first. Exact integer matrices: a warp by one of them
    moves whole pixels and resamples nothing (``pixel_matrices``)."""
    transforms = np.zeros((len(DIHEDRAL), n, 2, 3), dtype=np.float32)
    transforms[:, :, :, :2] = DIHEDRAL[:, None]
    return transforms


def _check_transforms(transforms: np.ndarray) -> None:
    if transforms.ndim != 3 or transforms.shape[1:] != (2, 3):
        raise DataError(f"transforms: expected shape (n, 2, 3), got {transforms.shape}")


def pixel_matrices(transforms: np.ndarray, side: int) -> np.ndarray:
    """The normalised maps as cv2 forward matrices (n, 2, 3) float64 for a square ``side``.

    cv2 indexes pixel centres by integers, so cv2's ``q`` is continuous ``q + 0.5`` and the
    normalised point ``(q + 0.5 - side / 2) / (side / 2) = (q - c) / h`` with
    ``c = (side - 1) / 2`` and ``h = side / 2``. Conjugating ``p -> A p + t`` gives
    ``q -> A q + (c - A c + h t)``. With ``A = I, t = 0`` the offset is exactly 0 and with a
    flip it is exactly ``side - 1``, so both warps land on pixel centres and are exact.
    """
    transforms = np.asarray(transforms)
    _check_transforms(transforms)
    if side < 1:
        raise DataError(f"pixel_matrices: side must be >= 1, got {side}")
    linear = transforms[:, :, :2].astype(np.float64)
    centre = np.full(2, (side - 1) / 2.0)
    matrices = np.empty((transforms.shape[0], 2, 3), dtype=np.float64)
    matrices[:, :, :2] = linear
    matrices[:, :, 2] = centre - linear @ centre + (side / 2.0) * transforms[:, :, 2]
    return matrices


def _check_images(images: np.ndarray, what: str) -> None:
    if images.dtype != np.uint8:
        raise DataError(f"{what}: expected uint8 images, got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[3] != 3:
        raise DataError(f"{what}: expected shape (n, side, side, 3), got {images.shape}")
    if images.shape[1] != images.shape[2]:
        raise DataError(f"{what}: images must be square, got {images.shape[1]}x{images.shape[2]}")


def warp_images(
    images: np.ndarray, transforms: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Each image (uint8 (n, S, S, 3)) warped by its normalised map; uint8, same shape.

    One bilinear ``cv2.warpAffine`` per image; what the map pulls in from outside the image
    repeats the nearest edge pixel (BORDER_REPLICATE, Keras' ``fill_mode="nearest"``, which
    the Keras augmenter used). ``out``, if given, is a C-contiguous uint8 array of the same
    shape written in place (it may be ``images`` itself: OpenCV copies a source that is also
    its destination) and returned.
    """
    _check_images(images, "warp_images")
    transforms = np.asarray(transforms)
    _check_transforms(transforms)
    n, side = images.shape[0], images.shape[1]
    if transforms.shape[0] != n:
        raise DataError(f"warp_images: {transforms.shape[0]} transforms for {n} images")
    if out is None:
        out = np.empty_like(images, order="C")
    elif out.dtype != np.uint8 or out.shape != images.shape or not out.flags.c_contiguous:
        raise DataError(
            f"warp_images: out must be a C-contiguous uint8 array of shape {images.shape}, "
            f"got {out.dtype} {out.shape}"
        )
    # OpenCV wants each image's rows contiguous; a no-op for the usual C-ordered batch.
    images = np.ascontiguousarray(images)
    for image, matrix, target in zip(images, pixel_matrices(transforms, side), out):
        cv2.warpAffine(
            image,
            matrix,
            (side, side),
            dst=target,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
    return out


def augment_batch(
    images: np.ndarray, augmentation: Augmentation, rng: np.random.Generator
) -> np.ndarray:
    """A fresh random view of each image: ``draw_transforms`` then ``warp_images``.

    To show the same views at another resolution, call the two steps yourself and warp both
    batches with the same transforms.
    """
    _check_images(images, "augment_batch")
    return warp_images(images, draw_transforms(augmentation, images.shape[0], rng))
