"""The six preprocessing stages of the paper, in order, as one implementation, after an
optional colour constancy (stage 0, not in the paper).

Stages 1-4 (closing, bilateral filter, highlight, unsharp masking) work on uint8 RGB images
and saturate like OpenCV does; stage 6 (resize) follows them. Stage 5 (rescale to [0, 1]) is
``rescale``, applied when batches are fed: the cache keeps uint8 arrays (4x smaller), and
since resizing is linear, rescaling before or after it gives the same values up to the final
uint8 rounding. Training, evaluation and ``predict`` all call ``preprocess_image``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

_SHAPES = {"rect": cv2.MORPH_RECT, "ellipse": cv2.MORPH_ELLIPSE, "cross": cv2.MORPH_CROSS}
_INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}


_STAGE_SECTIONS = ("color_constancy", "closing", "bilateral", "highlight", "unsharp")
# The paper's stage numbers; 5 (rescale) is applied at feeding time, after the cache; 0,
# colour constancy, is this project's.
STAGE_NUMBERS = {"color_constancy": 0, "closing": 1, "bilateral": 2, "highlight": 3,
                 "unsharp": 4, "resize": 6}  # fmt: skip
COLOR_CONSTANCY_METHODS = ("none", "shades_of_gray", "gray_world", "max_rgb")


@dataclass(frozen=True)
class ColorConstancy:
    # none | shades_of_gray (Minkowski norm p) | gray_world (p = 1) | max_rgb (p = infinity)
    method: str = "none"
    p: float = 6.0


@dataclass(frozen=True)
class Closing:
    enabled: bool = True
    kernel_size: int = 5
    shape: str = "rect"


@dataclass(frozen=True)
class Bilateral:
    enabled: bool = True
    d: int = 9
    sigma_color: float = 75.0
    sigma_space: float = 75.0


@dataclass(frozen=True)
class Highlight:
    enabled: bool = True
    alpha: float = 1.14
    # "bright": the mask marks grey >= Otsu threshold (the skin), as the paper's equation.
    polarity: str = "bright"


@dataclass(frozen=True)
class Unsharp:
    enabled: bool = True
    sigma: float = 2.0
    amount: float = 1.2


@dataclass(frozen=True)
class Preprocessing:
    """Every parameter of the six stages; built from the config's ``preprocess`` section."""

    image_size: int = 224
    color_constancy: ColorConstancy = ColorConstancy()
    closing: Closing = Closing()
    bilateral: Bilateral = Bilateral()
    highlight: Highlight = Highlight()
    unsharp: Unsharp = Unsharp()
    interpolation: str = "auto"

    @classmethod
    def from_config(cls, preprocess: Mapping[str, Any], image_size: int) -> Preprocessing:
        """Build from the validated ``preprocess`` config section and ``image_size``."""
        return cls.from_dict(
            {
                "image_size": image_size,
                **{stage: preprocess.get(stage, {}) for stage in _STAGE_SECTIONS},
                "interpolation": preprocess.get("resize", {}).get("interpolation", "auto"),
            }
        )

    @classmethod
    def from_dict(cls, params: Mapping[str, Any]) -> Preprocessing:
        """Inverse of ``to_dict`` (model cards and rule params carry this form); a form
        written before colour constancy existed had none."""
        return cls(
            image_size=int(params["image_size"]),
            color_constancy=ColorConstancy(**params.get("color_constancy", {})),
            closing=Closing(**params["closing"]),
            bilateral=Bilateral(**params["bilateral"]),
            highlight=Highlight(**params["highlight"]),
            unsharp=Unsharp(**params["unsharp"]),
            interpolation=params["interpolation"],
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of every parameter (for model cards, rule params and logs).
        Without stage 0 it is written as before stage 0 existed, so that the caches and
        model cards of runs made before it keep their parameters, and stay valid."""
        params = dataclasses.asdict(self)
        if self.color_constancy.method == "none":
            del params["color_constancy"]
        return params


def color_constancy(image: np.ndarray, params: ColorConstancy) -> np.ndarray:
    """Stage 0: undo the illuminant's colour (Finlayson and Trezzi 2004, Shades of Gray).

    The illuminant is estimated per channel as the Minkowski p-norm mean of the pixels,
    ``e_c = mean(I_c ** p) ** (1 / p)`` (p = 1: grey world; p = infinity: max-RGB), and each
    channel is divided by it, scaled so that a grey illuminant (e_R = e_G = e_B) leaves the
    image as it is: ``I_c * |e| / (sqrt(3) e_c)``. Rounded and saturated to uint8. Scaling a
    channel by a gain scales its estimate alike, so the output's colours do not depend on
    such gains (its overall brightness follows the illuminant's norm), up to rounding and to
    what they saturated.
    """
    if params.method not in COLOR_CONSTANCY_METHODS:
        raise ValueError(f"color_constancy.method: {params.method!r} is not one of "
                         f"{', '.join(COLOR_CONSTANCY_METHODS)}")  # fmt: skip
    if params.method == "none":
        return image
    pixels = image.reshape(-1, 3).astype(np.float64)
    if params.method == "max_rgb":
        estimate = pixels.max(axis=0)
    else:
        p = 1.0 if params.method == "gray_world" else float(params.p)
        estimate = np.mean(pixels**p, axis=0) ** (1.0 / p)
    # A channel that is black throughout has no colour to correct.
    estimate = np.maximum(estimate, 1e-6)
    gains = np.linalg.norm(estimate) / (np.sqrt(3.0) * estimate)
    return saturate_uint8(image * gains)


def close_hairs(image: np.ndarray, params: Closing) -> np.ndarray:
    """Stage 1: morphological closing (dilate then erode) removes thin dark hairs."""
    k = params.kernel_size
    kernel = cv2.getStructuringElement(_SHAPES[params.shape], (k, k))
    return cv2.morphologyEx(image, cv2.MORPH_CLOSE, kernel)


def bilateral_filter(image: np.ndarray, params: Bilateral) -> np.ndarray:
    """Stage 2: edge-preserving smoothing."""
    return cv2.bilateralFilter(image, params.d, params.sigma_color, params.sigma_space)


def otsu_threshold(grey: np.ndarray) -> int:
    """Otsu's threshold t of a uint8 image: the dark class is grey <= t, the bright one > t."""
    t, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return int(t)


def highlight_region(image: np.ndarray, params: Highlight) -> np.ndarray:
    """Stage 3: Ih = I + alpha * 255 * Is, saturating, with Is the Otsu mask of the grey image.

    grey = 0.299 R + 0.587 G + 0.114 B (OpenCV's RGB2GRAY weights). With the default
    "bright" polarity Is marks the pixels above the Otsu threshold, so the skin is pushed
    towards white and the darker lesion keeps its detail.
    """
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    t = otsu_threshold(grey)
    mask = grey > t if params.polarity == "bright" else grey <= t
    # Adding min(255, round(alpha*255)) with saturation equals clip(I + alpha*255, 0, 255).
    boost = np.uint8(min(255, round(params.alpha * 255)))
    addend = np.where(mask, boost, np.uint8(0)).astype(np.uint8)
    return cv2.add(image, cv2.merge([addend, addend, addend]))


def unsharp_mask(image: np.ndarray, params: Unsharp) -> np.ndarray:
    """Stage 4: Ium = I + k (I - Gaussian(I, sigma)), saturating; kernel size from sigma."""
    blurred = cv2.GaussianBlur(image, (0, 0), params.sigma, sigmaY=params.sigma)
    return cv2.addWeighted(image, 1.0 + params.amount, blurred, -params.amount, 0)


def resize(image: np.ndarray, size: int, interpolation: str) -> np.ndarray:
    """Stage 6: resize to size x size, only when the image is not that size already.

    ``auto`` averages over the source pixels (area) when an axis shrinks and interpolates
    linearly when both grow: a linear shrink samples only a few source pixels per output
    pixel, so 200x150 -> 64 px aliases fine texture into noise.
    """
    if image.shape[0] == size and image.shape[1] == size:
        return image
    if interpolation == "auto":
        interpolation = "area" if max(image.shape[:2]) > size else "linear"
    return cv2.resize(image, (size, size), interpolation=_INTERPOLATIONS[interpolation])


def saturate_uint8(values: np.ndarray) -> np.ndarray:
    """Pixel values rounded to the nearest integer and clipped to 0..255, as uint8."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def rescale(images: np.ndarray) -> np.ndarray:
    """Stage 5: uint8 [0, 255] to float32 [0, 1]; applied when batches are fed."""
    return images.astype(np.float32) / np.float32(255.0)


def _stages(params: Preprocessing) -> list[tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    stages: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = []
    if params.color_constancy.method != "none":
        stages.append(("color_constancy", lambda im: color_constancy(im, params.color_constancy)))
    if params.closing.enabled:
        stages.append(("closing", lambda im: close_hairs(im, params.closing)))
    if params.bilateral.enabled:
        stages.append(("bilateral", lambda im: bilateral_filter(im, params.bilateral)))
    if params.highlight.enabled:
        stages.append(("highlight", lambda im: highlight_region(im, params.highlight)))
    if params.unsharp.enabled:
        stages.append(("unsharp", lambda im: unsharp_mask(im, params.unsharp)))
    stages.append(("resize", lambda im: resize(im, params.image_size, params.interpolation)))
    return stages


def stage_outputs(image: np.ndarray, params: Preprocessing) -> list[tuple[str, np.ndarray]]:
    """The image after each enabled stage, starting with the input (for figures and tests)."""
    outputs = [("original", image)]
    for name, stage in _stages(params):
        outputs.append((name, stage(outputs[-1][1])))
    return outputs


def preprocess_image(image: np.ndarray, params: Preprocessing) -> np.ndarray:
    """All enabled stages on one RGB uint8 image; returns uint8 (size, size, 3)."""
    for _, stage in _stages(params):
        image = stage(image)
    return image
