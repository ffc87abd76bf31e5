"""One synthetic dermoscopy-like lesion, drawn: skin, border, colours, hairs, optics.

Benign lesions are round/elliptic, symmetric, smooth and evenly brown; malignant ones
have irregular, asymmetric borders and several colours (dark brown, black, blue-grey,
reddish, whitish regression). Size, position, shade, skin tone and brightness are drawn
from the same distributions for both classes, so global colour statistics overlap and a
classifier has to look at structure. ``render_views`` draws several near-duplicate views
of one lesion, as a dermatologist's repeated photographs.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

__all__ = ["render_lesion", "render_views"]

# Resolution of the border-radius lookup table (radius as a function of angle).
_ANGLE_BINS = 720

# Lesion palette (RGB in [0, 1]).
_BROWN_DARK = np.array([0.30, 0.18, 0.12], np.float32)
_BROWN_LIGHT = np.array([0.72, 0.52, 0.40], np.float32)
_HAIR = np.array([0.12, 0.09, 0.08], np.float32)
# Blotch colours of malignant lesions; both darker and lighter than the base brown so
# the lesion's mean colour stays in the benign range while its variance does not.
_BLOTCH_COLOURS = np.array(
    [
        [0.22, 0.12, 0.09],  # dark brown
        [0.10, 0.08, 0.09],  # black
        [0.42, 0.46, 0.54],  # blue-grey
        [0.70, 0.36, 0.34],  # reddish
        [0.82, 0.70, 0.66],  # whitish regression
    ],
    np.float32,
)


@lru_cache(maxsize=8)
def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates, cached because every image of a dataset shares them."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs.setflags(write=False)
    ys.setflags(write=False)
    return xs, ys


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cell: float) -> np.ndarray:
    """Zero-mean, roughly unit-variance noise with feature size `cell` pixels."""
    gw = max(2, int(math.ceil(width / cell)) + 1)
    gh = max(2, int(math.ceil(height / cell)) + 1)
    coarse = rng.standard_normal((gh, gw), dtype=np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def _skin(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Skin-coloured background with texture at a few scales."""
    s = min(width, height)
    tone = rng.uniform(0.0, 1.0)
    light = np.array([0.94, 0.78, 0.70], np.float32)
    tan = np.array([0.78, 0.57, 0.45], np.float32)
    base = light + (tan - light) * tone + rng.normal(0.0, 0.025, 3).astype(np.float32)
    # Cell sizes relative to the image so that texture scales with resolution.
    lum = (
        0.045 * _smooth_noise(rng, width, height, s / 3.0)
        + 0.025 * _smooth_noise(rng, width, height, s / 12.0)
        + 0.015 * _smooth_noise(rng, width, height, max(1.5, s / 40.0))
    )
    # Patchy erythema: a little extra red, less green/blue, never a green cast.
    redness = 0.025 * np.abs(_smooth_noise(rng, width, height, s / 5.0))
    img = base[None, None, :] * (1.0 + lum)[:, :, None]
    img[:, :, 0] += redness
    img[:, :, 1] -= redness
    img[:, :, 2] -= 0.5 * redness
    return img


def _border_radius(rng: np.random.Generator, malignant: bool, r0: float) -> np.ndarray:
    """Border radius as a lookup table over angle: smooth for benign, wobbly for malignant."""
    theta = np.linspace(-math.pi, math.pi, _ANGLE_BINS, endpoint=False, dtype=np.float32)
    rel = np.ones_like(theta)
    if malignant:
        # Low harmonics make lobes and asymmetry, higher ones a jagged, notched edge.
        harmonics = [(k, rng.uniform(0.04, 0.13)) for k in range(1, 5)]
        harmonics += [(k, rng.uniform(0.0, 0.06) * 5.0 / k) for k in range(5, 16)]
    else:
        harmonics = [(k, rng.uniform(0.0, 0.025)) for k in range(2, 4)]
    for k, amp in harmonics:
        rel += amp * np.cos(k * theta + rng.uniform(0.0, 2.0 * math.pi)).astype(np.float32)
    return r0 * np.maximum(rel, 0.35)


def _lesion_colour(
    rng: np.random.Generator,
    malignant: bool,
    s: int,
    u: np.ndarray,
    v: np.ndarray,
    inner: np.ndarray,
    base: np.ndarray,
) -> np.ndarray:
    """Per-pixel lesion colour on the lesion's crop.

    u, v are lesion-centred coordinates and `inner` is 1 at the centre, 0 at the border.
    """
    ch, cw = inner.shape
    # Both classes: mild darkening towards the centre and fine mottling.
    grad = 1.0 - rng.uniform(0.0, 0.25) * inner
    mottle = 1.0 + 0.04 * _smooth_noise(rng, cw, ch, max(1.5, s / 25.0))
    col = base[None, None, :] * (grad * mottle)[:, :, None]
    if not malignant:
        return col
    n_blotch = int(rng.integers(2, 5))
    choice = rng.choice(len(_BLOTCH_COLOURS), size=n_blotch, replace=False)
    for idx in choice:
        field = _smooth_noise(rng, cw, ch, s / rng.uniform(5.0, 9.0))
        # Tilt the field so blotches pile up on one side of the lesion: asymmetric colour.
        ang = rng.uniform(0.0, 2.0 * math.pi)
        tilt = (math.cos(ang) * u + math.sin(ang) * v) * (2.4 / s)
        weight = np.clip((field + tilt - rng.uniform(0.2, 0.7)) * 1.5, 0.0, 1.0)
        weight *= rng.uniform(0.7, 1.0)
        col += (_BLOTCH_COLOURS[idx][None, None, :] - col) * weight[:, :, None]
    return col


Hair = tuple[np.ndarray, int, int]  # (curve points in pixels, thickness, darkness 0..255)


def _hairs(rng: np.random.Generator, width: int, height: int) -> list[Hair]:
    """0-8 thin, gently curved hairs crossing the image."""
    s = min(width, height)
    # Endpoints well outside the frame, so a rotated/shifted view never shows a hair end.
    mx, my = 0.2 * width, 0.2 * height
    sides = [
        lambda t: (t * width, -my),
        lambda t: (t * width, height + my),
        lambda t: (-mx, t * height),
        lambda t: (width + mx, t * height),
    ]
    t = np.linspace(0.0, 1.0, 48)[:, None]
    hairs = []
    for _ in range(int(rng.integers(0, 9))):
        a, b = rng.choice(4, size=2, replace=False)
        p0 = np.array(sides[a](rng.uniform(0.0, 1.0)))
        p2 = np.array(sides[b](rng.uniform(0.0, 1.0)))
        # Control point pushed sideways from the chord: gently curved, never looping.
        chord = p2 - p0
        p1 = (p0 + p2) / 2 + np.array([-chord[1], chord[0]]) * rng.uniform(-0.25, 0.25)
        curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        thick = max(1, int(round(rng.uniform(1.0, 3.0) * s / 150.0)))
        hairs.append((curve, thick, int(rng.uniform(0.45, 0.85) * 255)))
    return hairs


def _draw_hairs(img: np.ndarray, hairs: list[Hair], matrix: np.ndarray | None = None) -> np.ndarray:
    """Darken img (float RGB, in place) along the hairs, optionally moved by a 2x3 affine."""
    if not hairs:
        return img
    height, width = img.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    shift = 2  # sub-pixel precision for smooth anti-aliased curves
    for curve, thick, shade in hairs:
        if matrix is not None:
            curve = curve @ matrix[:, :2].T + matrix[:, 2]
        pts = np.round(curve * (1 << shift)).astype(np.int32)
        cv2.polylines(mask, [pts], False, shade, thick, cv2.LINE_AA, shift)
    hair = mask.astype(np.float32) * (1.0 / 255.0)
    img += (_HAIR[None, None, :] - img) * hair[:, :, None]
    return img


def _lesion_base_colour(rng: np.random.Generator) -> np.ndarray:
    """Main lesion colour, drawn identically for both classes."""
    shade = rng.uniform(0.0, 1.0)
    base = _BROWN_DARK + (_BROWN_LIGHT - _BROWN_DARK) * shade
    # Hue jitter along plausible axes (reddish, greyish/bluish nevi exist, green ones do
    # not): keeps channel ratios uninformative about the class.
    warmth = rng.normal(0.0, 0.12)
    base = base * np.array([1.0 + warmth, 1.0, 1.0 - warmth], np.float32)
    base = base + (base.mean() - base) * (0.6 * rng.uniform(0.0, 1.0) ** 2)
    return np.clip(base, 0.03, 0.95).astype(np.float32)


def _render_scene(
    rng: np.random.Generator, malignant: bool, width: int, height: int
) -> tuple[np.ndarray, list[Hair]]:
    """Skin + lesion as float RGB, and the hairs to draw over it (kept apart so views can move them)."""
    s = min(width, height)
    img = _skin(rng, width, height)

    r0 = rng.uniform(0.17, 0.32) * s
    cx = width / 2 + rng.uniform(-0.12, 0.12) * width
    cy = height / 2 + rng.uniform(-0.12, 0.12) * height
    aspect = math.sqrt(rng.uniform(1.0, 1.35))
    phi = rng.uniform(0.0, math.pi)
    lut = _border_radius(rng, malignant, r0)
    edge = rng.uniform(0.04, 0.12) * r0
    opacity = rng.uniform(0.8, 1.0)
    base = _lesion_base_colour(rng)

    # Work only on the lesion's bounding box: most pixels are plain skin.
    reach = float(lut.max()) * aspect + edge + 2.0
    x0, x1 = max(0, int(cx - reach)), min(width, int(math.ceil(cx + reach)) + 1)
    y0, y1 = max(0, int(cy - reach)), min(height, int(math.ceil(cy + reach)) + 1)
    xs, ys = _grid(width, height)
    dx = xs[y0:y1, x0:x1] - cx
    dy = ys[y0:y1, x0:x1] - cy
    # Elliptic coordinates: rho is the distance in the lesion's own (rotated, squashed) frame.
    u = (math.cos(phi) * dx + math.sin(phi) * dy) / aspect
    v = (-math.sin(phi) * dx + math.cos(phi) * dy) * aspect
    rho = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    bins = ((theta + math.pi) * (_ANGLE_BINS / (2 * math.pi))).astype(np.int32) % _ANGLE_BINS
    radius = lut[bins]
    alpha = np.clip((radius - rho) / edge + 0.5, 0.0, 1.0) * opacity
    inner = np.clip(1.0 - rho / radius, 0.0, 1.0)

    col = _lesion_colour(rng, malignant, s, u, v, inner, base)
    crop = img[y0:y1, x0:x1]
    crop += (col - crop) * alpha[:, :, None]

    return img, _hairs(rng, width, height)


@lru_cache(maxsize=8)
def _radial(width: int, height: int) -> np.ndarray:
    """Distance from the image centre, 1.0 at the corners."""
    xs, ys = _grid(width, height)
    r = np.sqrt((xs - width / 2) ** 2 + (ys - height / 2) ** 2) / (0.5 * math.hypot(width, height))
    r.setflags(write=False)
    return r


def _optics(
    rng: np.random.Generator, scene: np.ndarray, brightness: float, vignette: float, v_inner: float
) -> np.ndarray:
    """Dermatoscope look: dark corners, global brightness, slight blur and sensor noise; to uint8."""
    height, width = scene.shape[:2]
    fall = np.clip((_radial(width, height) - v_inner) * (1.0 / (1.0 - v_inner)), 0.0, 1.0)
    factor = (255.0 * brightness) * (1.0 - vignette * fall * fall)
    img = scene * factor[:, :, None]
    img = cv2.GaussianBlur(img, (0, 0), 0.5 * min(width, height) / 150.0)
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(0.012 * 255.0)
    img += 0.5
    np.clip(img, 0.0, 255.0, out=img)
    return img.astype(np.uint8)


def _optics_params(rng: np.random.Generator) -> tuple[float, float, float]:
    return rng.uniform(0.85, 1.08), rng.uniform(0.35, 0.8), rng.uniform(0.45, 0.7)


def _view_matrix(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Same lesion seen again: small rotation and shift (the scope frame stays put)."""
    m = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-12.0, 12.0), 1.0)
    m[0, 2] += rng.uniform(-0.04, 0.04) * width
    m[1, 2] += rng.uniform(-0.04, 0.04) * height
    return m


def render_lesion(rng: np.random.Generator, malignant: bool, width: int, height: int) -> np.ndarray:
    """One RGB uint8 image (height, width, 3)."""
    return render_views(rng, malignant, width, height, 1)[0]


def render_views(
    rng: np.random.Generator, malignant: bool, width: int, height: int, n_views: int
) -> list[np.ndarray]:
    """n_views near-duplicate RGB images of one lesion."""
    scene, hairs = _render_scene(rng, malignant, width, height)
    brightness, vignette, v_inner = _optics_params(rng)
    views = []
    for k in range(n_views):
        if k == 0:
            img = _draw_hairs(scene.copy() if n_views > 1 else scene, hairs)
            views.append(_optics(rng, img, brightness, vignette, v_inner))
        else:
            m = _view_matrix(rng, width, height)
            # Reflected borders only ever show smooth skin; hairs are redrawn, not reflected.
            img = cv2.warpAffine(
                scene, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
            )
            img = _draw_hairs(img, hairs, m)
            views.append(_optics(rng, img, brightness * rng.uniform(0.92, 1.08), vignette, v_inner))
    return views
