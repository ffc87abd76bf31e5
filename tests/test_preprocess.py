"""The six preprocessing stages, each against an independent expectation."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from skimage.filters import threshold_otsu

from skinkd.data.preprocess import (
    Bilateral,
    ColorConstancy,
    Closing,
    Highlight,
    Preprocessing,
    Unsharp,
    bilateral_filter,
    close_hairs,
    color_constancy,
    highlight_region,
    otsu_threshold,
    preprocess_image,
    rescale,
    resize,
    stage_outputs,
    unsharp_mask,
)


def numpy_otsu(grey: np.ndarray) -> int:
    """Otsu by brute force: the split t (dark <= t) that maximises between-class variance."""
    hist = np.bincount(grey.ravel(), minlength=256).astype(float)
    levels = np.arange(256)
    best, best_t = -1.0, 0
    for t in range(255):
        w0, w1 = hist[: t + 1].sum(), hist[t + 1 :].sum()
        if w0 == 0 or w1 == 0:
            continue
        m0 = (hist[: t + 1] * levels[: t + 1]).sum() / w0
        m1 = (hist[t + 1 :] * levels[t + 1 :]).sum() / w1
        between = w0 * w1 * (m0 - m1) ** 2
        if between > best:
            best, best_t = between, t
    return best_t


def bimodal_grey(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dark = rng.normal(70, 12, 3000)
    bright = rng.normal(180, 20, 5000)
    values = np.clip(np.concatenate([dark, bright]), 0, 255).astype(np.uint8)
    return rng.permutation(values).reshape(80, 100)


def test_otsu_threshold_equals_numpy_and_scikit_image():
    grey = bimodal_grey()
    t = otsu_threshold(grey)
    assert t == numpy_otsu(grey)
    assert t == int(threshold_otsu(grey))
    assert 90 < t < 160


def skin_with_dark_disc(size: int = 64, radius: int = 14) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= radius**2
    image = np.full((size, size, 3), (200, 160, 140), dtype=np.uint8)
    image[disc] = (60, 40, 30)
    return image, disc


def test_highlight_saturates_skin_and_keeps_lesion():
    image, disc = skin_with_dark_disc()
    out = highlight_region(image, Highlight(alpha=1.14))
    assert (out[~disc] == 255).all()
    np.testing.assert_array_equal(out[disc], image[disc])


def test_highlight_adds_alpha_times_255_below_saturation():
    image, disc = skin_with_dark_disc()
    out = highlight_region(image, Highlight(alpha=0.1))
    expected = np.clip(image[~disc].astype(int) + round(0.1 * 255), 0, 255)
    np.testing.assert_array_equal(out[~disc], expected)
    np.testing.assert_array_equal(out[disc], image[disc])


def test_highlight_dark_polarity_marks_the_lesion():
    image, disc = skin_with_dark_disc()
    out = highlight_region(image, Highlight(alpha=0.2, polarity="dark"))
    np.testing.assert_array_equal(out[~disc], image[~disc])
    np.testing.assert_array_equal(out[disc], image[disc].astype(int) + round(0.2 * 255))


def test_highlight_uses_the_specified_grey_weights():
    # Two colours whose grey value falls on either side of the threshold only with
    # 0.299 R + 0.587 G + 0.114 B (an equal-weight mean would rank them the other way).
    image = np.zeros((10, 20, 3), dtype=np.uint8)
    image[:, :10] = (0, 200, 0)  # grey 117, mean 67
    image[:, 10:] = (0, 0, 250)  # grey 29, mean 83
    out = highlight_region(image, Highlight(alpha=1.0))
    assert (out[:, :10] == 255).all()
    np.testing.assert_array_equal(out[:, 10:], image[:, 10:])


def test_closing_removes_thin_dark_line_and_keeps_large_dark_disc():
    image = np.full((80, 80, 3), 190, dtype=np.uint8)
    image[20:22, 5:75] = 20  # a 2 px hair
    yy, xx = np.mgrid[:80, :80]
    disc = (yy - 55) ** 2 + (xx - 40) ** 2 <= 12**2
    image[disc] = 40
    out = close_hairs(image, Closing(kernel_size=5))
    assert (out[18:24, 5:75] == 190).all(), "the hair should be filled with the background"
    inner = (yy - 55) ** 2 + (xx - 40) ** 2 <= 10**2
    assert (out[inner] == 40).all(), "the lesion-sized disc should survive closing"
    dark = (out[..., 0] == 40).sum()
    assert dark == pytest.approx(disc.sum(), rel=0.05)
    assert (out[~disc] == 190).all()


def test_closing_with_too_small_kernel_keeps_the_line():
    image = np.full((40, 40, 3), 190, dtype=np.uint8)
    image[20:22, :] = 20
    out = close_hairs(image, Closing(kernel_size=1))
    np.testing.assert_array_equal(out, image)


def gaussian_kernel(sigma: float) -> np.ndarray:
    # OpenCV's size rule for uint8 images: 2 * round(3 sigma) + 1 taps.
    radius = int(round(3 * sigma))
    x = np.arange(-radius, radius + 1)
    k = np.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def test_unsharp_raises_step_edge_contrast_by_expected_amount():
    low, high, sigma, amount = 80.0, 160.0, 2.0, 1.2
    row = np.where(np.arange(64) < 32, low, high)
    image = np.repeat(row[None, :, None], 3, axis=2).repeat(40, axis=0).astype(np.uint8)
    out = unsharp_mask(image, Unsharp(sigma=sigma, amount=amount))
    k = gaussian_kernel(sigma)
    padded = np.pad(row, len(k) // 2, mode="reflect")
    blurred = np.convolve(padded, k, mode="valid")
    expected = np.clip(row + amount * (row - blurred), 0, 255)
    got = out[20, :, 0].astype(float)
    np.testing.assert_allclose(got, expected, atol=1.0)
    # The overshoot on each side of the edge: k * (step - blurred step) at the edge pixel.
    overshoot = amount * (high - blurred[32])
    assert got.max() - high == pytest.approx(overshoot, abs=1.0)
    assert got.max() - got.min() > (high - low) * 1.5


def test_bilateral_smooths_noise_but_keeps_the_edge():
    rng = np.random.default_rng(1)
    row = np.where(np.arange(64) < 32, 60, 190).astype(float)
    clean = np.repeat(row[None, :, None], 3, axis=2).repeat(64, axis=0)
    noisy = np.clip(clean + rng.normal(0, 6, clean.shape), 0, 255).astype(np.uint8)
    out = bilateral_filter(noisy, Bilateral(d=9, sigma_color=40, sigma_space=75))
    flat = (slice(8, 56), slice(4, 26))
    assert out[flat].std() < noisy[flat].std() / 2
    edge_step = out[:, 33].astype(float).mean() - out[:, 30].astype(float).mean()
    assert edge_step > 0.9 * (190 - 60)


def test_resize_only_when_not_already_square_target():
    square = np.zeros((224, 224, 3), np.uint8)
    assert resize(square, 224, "linear") is square
    out = resize(np.zeros((150, 200, 3), np.uint8), 224, "linear")
    assert out.shape == (224, 224, 3)


def test_auto_resize_averages_when_shrinking_and_interpolates_when_enlarging():
    # Columns alternate black and white: a 3x shrink must give grey, not a sampled pattern.
    stripes = np.zeros((150, 201, 3), np.uint8)
    stripes[:, ::2] = 255
    shrunk = resize(stripes, 67, "auto")
    np.testing.assert_array_equal(shrunk, resize(stripes, 67, "area"))
    # Area: every output pixel averages three columns (1 or 2 white); linear picks columns.
    assert shrunk.std() < 60 < resize(stripes, 67, "linear").std()
    small = np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize(small, 224, "auto"), resize(small, 224, "linear"))
    assert Preprocessing().interpolation == "auto"


def test_rescale_maps_uint8_to_unit_interval():
    images = np.array([[0, 51, 255]], dtype=np.uint8)
    np.testing.assert_allclose(rescale(images), [[0.0, 0.2, 1.0]])
    assert rescale(images).dtype == np.float32


def test_preprocess_image_runs_the_stages_in_order():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    params = Preprocessing(image_size=32)
    outputs = stage_outputs(image, params)
    assert [name for name, _ in outputs] == [
        "original",
        "closing",
        "bilateral",
        "highlight",
        "unsharp",
        "resize",
    ]
    by_hand = resize(
        unsharp_mask(
            highlight_region(
                bilateral_filter(close_hairs(image, params.closing), params.bilateral),
                params.highlight,
            ),
            params.unsharp,
        ),
        32,
        "area",  # the default (auto) shrinks by area
    )
    np.testing.assert_array_equal(preprocess_image(image, params), by_hand)
    np.testing.assert_array_equal(outputs[-1][1], by_hand)


def test_disabled_stages_are_left_out():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    params = Preprocessing.from_config(
        {stage: {"enabled": False} for stage in ("closing", "bilateral", "highlight", "unsharp")},
        image_size=40,
    )
    assert [name for name, _ in stage_outputs(image, params)] == ["original", "resize"]
    np.testing.assert_array_equal(preprocess_image(image, params), image)


def test_config_defaults_match_the_spec(project):
    from snakemake.utils import validate

    config = {}
    validate(config, str(project / "workflow/schemas/config.schema.yaml"))
    params = Preprocessing.from_config(config["preprocess"], config["image_size"])
    assert params == Preprocessing()
    assert params.image_size == 224
    assert (params.closing.kernel_size, params.closing.shape) == (5, "rect")
    assert (params.bilateral.d, params.bilateral.sigma_color, params.bilateral.sigma_space) == (
        9,
        75,
        75,
    )
    assert (params.highlight.alpha, params.unsharp.sigma, params.unsharp.amount) == (1.14, 2.0, 1.2)
    # The shipped default run keeps every stage parameter of the spec (only its size differs).
    shipped = yaml.safe_load((project / "config.yaml").read_text())
    assert Preprocessing.from_config(shipped["preprocess"], 224) == params


def test_parameters_round_trip_through_a_plain_dict():
    params = Preprocessing(image_size=64, unsharp=Unsharp(sigma=1.5, amount=0.7), interpolation="area")
    assert Preprocessing.from_dict(params.to_dict()) == params


@pytest.mark.parametrize("method", ["shades_of_gray", "gray_world", "max_rgb"])
def test_color_constancy_undoes_an_illuminant_and_keeps_a_grey_one(method):
    rng = np.random.default_rng(4)
    scene = rng.integers(40, 160, (60, 80, 3)).astype(np.float64)
    params = ColorConstancy(method=method, p=6)
    # A warm illuminant: per-channel gains that saturate nothing.
    warm = np.rint(scene * [1.45, 1.0, 0.7]).astype(np.uint8)
    cool = np.rint(scene * [0.8, 1.0, 1.35]).astype(np.uint8)
    a, b = color_constancy(warm, params), color_constancy(cool, params)
    # The same colours; only the overall brightness may differ (the illuminant's norm).
    brightness = b.mean() / a.mean()
    assert np.abs(a * brightness - b).max() <= 3
    assert np.abs(warm.astype(int) - cool.astype(int)).max() > 50
    # The estimate, by its definition, of what came out: grey (equal channels).
    pixels = a.reshape(-1, 3).astype(np.float64)
    if method == "max_rgb":
        estimate = pixels.max(axis=0)
    else:
        p = 1 if method == "gray_world" else 6
        estimate = np.mean(pixels**p, axis=0) ** (1 / p)
    assert np.ptp(estimate) / estimate.mean() < 0.02
    grey = np.repeat(rng.integers(0, 256, (30, 30, 1), dtype=np.uint8), 3, axis=2)
    np.testing.assert_array_equal(color_constancy(grey, params), grey)


def test_color_constancy_is_stage_zero_and_round_trips():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    section = {"color_constancy": {"method": "shades_of_gray", "p": 6},
               **{s: {"enabled": False} for s in ("closing", "bilateral", "highlight", "unsharp")}}  # fmt: skip
    params = Preprocessing.from_config(section, image_size=40)
    assert [name for name, _ in stage_outputs(image, params)] == ["original", "color_constancy", "resize"]
    np.testing.assert_array_equal(preprocess_image(image, params), color_constancy(image, params.color_constancy))
    assert Preprocessing.from_dict(params.to_dict()) == params
    # Without stage 0 the parameters read as they did before it existed, and back.
    plain = Preprocessing(image_size=40)
    assert "color_constancy" not in plain.to_dict()
    assert Preprocessing.from_dict(plain.to_dict()) == plain
    with pytest.raises(ValueError, match="'white_patch' is not one of"):
        color_constancy(image, ColorConstancy(method="white_patch"))
