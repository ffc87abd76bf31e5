"""One-warp geometric augmentation: exact identity/flip/rotation, shifts, consistent views."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from helpers import AUGMENT
from skinkd.data.augment import (
    Augmentation,
    augment_batch,
    compose_transforms,
    draw_transforms,
    pixel_matrices,
    warp_images,
)
from skinkd.errors import ConfigError, DataError

PROJECT = Path(__file__).resolve().parents[1]
DEFAULT = AUGMENT
NONE = {
    "rotation": 0,
    "height_shift": 0.0,
    "width_shift": 0.0,
    "shear": 0.0,
    "horizontal_flip": False,
}


def random_images(n: int, side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def transforms(n: int, rotation=0.0, shear=0.0, flip=False, shift_x=0.0, shift_y=0.0):
    """``n`` copies of one hand-chosen view."""
    parameters = (rotation, shear, flip, shift_x, shift_y)
    return compose_transforms(*(np.full(n, value) for value in parameters))


def decompose(maps: np.ndarray) -> dict[str, np.ndarray]:
    """Invert A = R(angle) @ [[1, s], [0, 1]] @ diag(+-1, 1), t = 2 * shift, independently."""
    linear = maps[:, :, :2].astype(np.float64)
    flip = np.linalg.det(linear) < 0
    unflipped = linear.copy()
    unflipped[:, :, 0] *= np.where(flip, -1.0, 1.0)[:, None]
    # R @ Sh keeps the x axis's image R @ (1, 0) = (cos, -sin) in the first column.
    angle = np.degrees(np.arctan2(-unflipped[:, 1, 0], unflipped[:, 0, 0]))
    shear = np.einsum("nji,nj->ni", unflipped, unflipped[:, :, 0])[:, 1]  # (R^T A')[0, 1]
    return {
        "rotation": angle,
        "shear": shear,
        "flip": flip,
        "shift_x": maps[:, 0, 2] / 2.0,
        "shift_y": maps[:, 1, 2] / 2.0,
    }


def smooth_image(side: int, phase: float) -> np.ndarray:
    """A smooth RGB pattern sampled at pixel centres of the normalised [-1, 1] frame."""
    coords = (np.arange(side) + 0.5 - side / 2) / (side / 2)
    v, u = np.meshgrid(coords, coords, indexing="ij")
    channels = [
        128 + 70 * np.sin(3 * u + phase) * np.cos(2 * v),
        128 + 60 * np.cos(2.5 * (u + v) - phase),
        128 + 50 * np.sin(4 * v - 2 * u + phase),
    ]
    return np.clip(np.rint(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)


def bright_dot(side: int, row: int, col: int) -> np.ndarray:
    image = np.zeros((1, side, side, 3), dtype=np.uint8)
    image[0, row, col] = 255
    return image


def centroid(image: np.ndarray) -> tuple[float, float]:
    weight = image[..., 0].astype(np.float64)
    rows, cols = np.indices(weight.shape)
    return (rows * weight).sum() / weight.sum(), (cols * weight).sum() / weight.sum()


@pytest.mark.parametrize("side", [1, 7, 64, 224])
def test_identity_transforms_return_images_byte_identical(side):
    images = random_images(4, side)
    assert np.array_equal(warp_images(images, transforms(4)), images)


def test_identity_pixel_matrix_is_exact_so_the_plain_cv2_path_is_exact():
    images = random_images(3, 64)
    matrices = pixel_matrices(transforms(3), 64)
    assert np.array_equal(matrices, np.tile([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], (3, 1, 1)))
    for image, matrix in zip(images, matrices):
        warped = cv2.warpAffine(
            image, matrix, (64, 64), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        assert np.array_equal(warped, image)


@pytest.mark.parametrize("side", [1, 2, 7, 64])
def test_horizontal_flip_equals_reversed_columns_exactly(side):
    images = random_images(3, side)
    assert np.array_equal(
        pixel_matrices(transforms(1, flip=True), side)[0],
        [[-1.0, 0.0, side - 1.0], [0.0, 1.0, 0.0]],
    )
    assert np.array_equal(warp_images(images, transforms(3, flip=True)), images[:, :, ::-1])


@pytest.mark.parametrize("side", [2, 7, 64])
def test_positive_quarter_turn_is_counter_clockwise_rot90_exactly(side):
    # np.rot90 with k=1 over (rows, cols) turns the content counter-clockwise on screen.
    images = random_images(3, side)
    assert np.array_equal(
        warp_images(images, transforms(3, rotation=90.0)), np.rot90(images, 1, axes=(1, 2))
    )
    assert np.array_equal(
        warp_images(images, transforms(3, rotation=-90.0)), np.rot90(images, -1, axes=(1, 2))
    )


@pytest.mark.parametrize(
    ("shift_x", "shift_y", "moved"),
    [(0.25, 0.0, (0, 16)), (-0.25, 0.0, (0, -16)), (0.0, 0.25, (16, 0)), (0.0, -0.25, (-16, 0))],
)
def test_shift_of_a_quarter_side_moves_a_dot_a_quarter_side(shift_x, shift_y, moved):
    side, row, col = 64, 30, 26
    warped = warp_images(
        bright_dot(side, row, col), transforms(1, shift_x=shift_x, shift_y=shift_y)
    )
    new_row, new_col = centroid(warped[0])
    assert abs(new_row - (row + moved[0])) <= 1
    assert abs(new_col - (col + moved[1])) <= 1


def test_shear_moves_rows_below_the_centre_right_and_keeps_the_centre_row():
    side = 64
    below = warp_images(bright_dot(side, 48, 32), transforms(1, shear=0.5))
    centre_row = warp_images(bright_dot(side, 31, 20), transforms(1, shear=0.5))
    # Row 48's centre is (48.5 - 32) / 32 half-sides below the centre: x gains 0.5 * 16.5 px.
    assert abs(centroid(below[0])[1] - (32 + 0.5 * 16.5)) <= 1
    assert abs(centroid(centre_row[0])[1] - (20 - 0.5 * 0.5)) <= 1


def test_same_view_at_224_and_64_px_agrees_after_downscaling():
    rng = np.random.default_rng(3)
    large = np.stack([smooth_image(224, phase) for phase in np.linspace(0, 3, 8)])
    small = np.stack([cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA) for image in large])
    views = draw_transforms(Augmentation.from_config(DEFAULT), 8, rng)

    large_view = warp_images(large, views)
    small_view = warp_images(small, views)
    downscaled = np.stack(
        [cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA) for image in large_view]
    )
    diff = np.abs(downscaled.astype(np.int16) - small_view.astype(np.int16))
    # Measured 0.29; a half-pixel error in the centre convention alone gives 0.9.
    assert diff.mean() < 1

    # The check has teeth: other views of the same images differ by far more.
    other = warp_images(small, draw_transforms(Augmentation.from_config(DEFAULT), 8, rng))
    assert np.abs(downscaled.astype(np.int16) - other.astype(np.int16)).mean() > 10


def test_draw_transforms_same_seed_gives_identical_views():
    augmentation = Augmentation.from_config(DEFAULT)
    first = draw_transforms(augmentation, 50, np.random.default_rng(7))
    second = draw_transforms(augmentation, 50, np.random.default_rng(7))
    other = draw_transforms(augmentation, 50, np.random.default_rng(8))
    assert first.dtype == np.float32 and first.shape == (50, 2, 3)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_draw_transforms_respects_ranges_and_flips_half():
    augmentation = Augmentation(
        rotation=20, height_shift=0.1, width_shift=0.2, shear=0.15, horizontal_flip=True
    )
    parts = decompose(draw_transforms(augmentation, 4000, np.random.default_rng(1)))
    for name, bound in [("rotation", 20), ("shear", 0.15), ("shift_x", 0.2), ("shift_y", 0.1)]:
        values = parts[name]
        assert np.all(np.abs(values) <= bound * (1 + 1e-5)), name
        # Uniform over the whole range: both ends reached, centred on zero.
        assert values.min() < -0.95 * bound and values.max() > 0.95 * bound, name
        assert abs(values.mean()) < 0.05 * bound, name
    assert abs(parts["flip"].mean() - 0.5) < 0.03


def test_each_range_drives_only_its_own_parameter():
    rng = np.random.default_rng(2)
    only_height = Augmentation(
        rotation=0, height_shift=0.2, width_shift=0, shear=0, horizontal_flip=False
    )
    parts = decompose(draw_transforms(only_height, 500, rng))
    assert np.all(parts["shift_x"] == 0) and np.abs(parts["shift_y"]).max() > 0.15
    assert np.all(parts["rotation"] == 0) and np.all(parts["shear"] == 0)
    assert not parts["flip"].any()


def test_changing_one_range_keeps_the_other_draws():
    base = Augmentation.from_config(DEFAULT)
    no_shear = Augmentation.from_config({**DEFAULT, "shear": 0.0})
    first = decompose(draw_transforms(base, 100, np.random.default_rng(4)))
    second = decompose(draw_transforms(no_shear, 100, np.random.default_rng(4)))
    np.testing.assert_allclose(first["rotation"], second["rotation"], atol=1e-4)
    assert np.array_equal(first["flip"], second["flip"])
    assert np.array_equal(first["shift_x"], second["shift_x"])


def test_all_zero_config_is_identity_and_leaves_images_unchanged():
    augmentation = Augmentation.from_config(NONE)
    assert augmentation.is_identity
    assert not Augmentation.from_config({**NONE, "horizontal_flip": True}).is_identity
    maps = draw_transforms(augmentation, 20, np.random.default_rng(0))
    assert np.array_equal(maps, np.tile(np.eye(2, 3, dtype=np.float32), (20, 1, 1)))
    images = random_images(20, 32)
    assert np.array_equal(augment_batch(images, augmentation, np.random.default_rng(0)), images)


def test_augment_batch_is_seeded_and_changes_images():
    images = np.stack([smooth_image(32, phase) for phase in range(6)])
    augmentation = Augmentation.from_config(DEFAULT)
    first = augment_batch(images, augmentation, np.random.default_rng(5))
    second = augment_batch(images, augmentation, np.random.default_rng(5))
    assert first.dtype == np.uint8 and first.shape == images.shape
    assert np.array_equal(first, second)
    assert not np.array_equal(first, images)


def test_project_config_augment_section_parses():
    config = yaml.safe_load((PROJECT / "config.yaml").read_text())
    assert Augmentation.from_config(config["augment"]) == Augmentation(
        rotation=20.0, height_shift=0.1, width_shift=0.1, shear=0.1, horizontal_flip=True
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("rotation", -5),
        ("height_shift", -0.1),
        ("width_shift", -0.1),
        ("shear", -0.1),
        ("height_shift", 1.0),
        ("width_shift", 1.5),
        ("shear", 1),
        ("rotation", float("nan")),
        ("shear", True),
        ("rotation", "20"),
        ("horizontal_flip", 1),
    ],
)
def test_config_errors_name_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"^augment\.{key}:"):
        Augmentation.from_config({**DEFAULT, key: value})


def test_missing_config_key_is_named():
    section = {key: value for key, value in DEFAULT.items() if key != "width_shift"}
    with pytest.raises(ConfigError, match=r"^augment\.width_shift: missing"):
        Augmentation.from_config(section)


@pytest.mark.parametrize(
    ("images", "maps", "message"),
    [
        (random_images(2, 8).astype(np.float32), transforms(2), "expected uint8"),
        (random_images(2, 8)[..., :1], transforms(2), r"expected shape \(n, side, side, 3\)"),
        (random_images(2, 8)[0], transforms(2), r"expected shape \(n, side, side, 3\)"),
        (random_images(2, 8)[:, :, :6], transforms(2), "must be square, got 8x6"),
        (random_images(2, 8), transforms(3), "3 transforms for 2 images"),
        (random_images(2, 8), transforms(2)[:, :, :2], r"expected shape \(n, 2, 3\)"),
    ],
)
def test_warp_images_rejects_bad_input(images, maps, message):
    with pytest.raises(DataError, match=message):
        warp_images(images, maps)


def test_warp_images_writes_into_out_even_when_it_is_the_input():
    images = random_images(3, 16)
    expected = np.rot90(images, 1, axes=(1, 2))
    out = np.empty_like(images)
    assert warp_images(images, transforms(3, rotation=90.0), out=out) is out
    assert np.array_equal(out, expected)
    in_place = images.copy()
    warp_images(in_place, transforms(3, rotation=90.0), out=in_place)
    assert np.array_equal(in_place, expected)
    with pytest.raises(DataError, match="out must be"):
        warp_images(images, transforms(3), out=np.empty((3, 16, 16, 3), dtype=np.float32))
