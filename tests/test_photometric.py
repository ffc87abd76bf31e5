"""Photometric augmentation: another light, exposure and focus in training, seeded apart
from the geometric views, each range doing what it names."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import AUGMENT
from skinkd.data.augment import Augmentation
from skinkd.data.photometric import (
    Photometric,
    disk_blur,
    illuminant_gains,
    kelvin_rgb,
    magnify,
    photometric_batch,
    tone_curve,
    vignette,
)
from skinkd.data.preprocess import rescale
from skinkd.errors import ConfigError
from skinkd.nn.batches import ImageBatches


def images(n: int = 6, side: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(60, 200, (n, side, side, 3), dtype=np.uint8)


def test_daylight_is_white_and_the_locus_runs_warm_to_cool():
    np.testing.assert_allclose(illuminant_gains(6500), 1.0, atol=0.02)
    warm, cool = illuminant_gains(3000), illuminant_gains(12000)
    assert warm[0] > 1 > warm[2] and cool[2] > 1 > cool[0]
    assert illuminant_gains(3000).mean() == pytest.approx(1.0)
    assert (kelvin_rgb(1000) >= 1).all() and (kelvin_rgb(40000) <= 255).all()


def test_each_range_changes_what_it_names_and_nothing_else():
    batch = images()
    rng = lambda: np.random.default_rng(5)  # noqa: E731
    light = photometric_batch(batch, Photometric(illuminant=100), rng())
    ratio = light.reshape(6, -1, 3).mean(1) / batch.reshape(6, -1, 3).mean(1)
    assert (np.abs(ratio[:, 0] - ratio[:, 2]) > 0.05).any()  # red against blue: a colour cast
    exposed = photometric_batch(batch, Photometric(exposure=1), rng())
    scale = exposed.reshape(6, -1).mean(1) / batch.reshape(6, -1).mean(1)
    assert (np.abs(scale - 1) > 0.1).any()
    channels = exposed.reshape(6, -1, 3).mean(1) / batch.reshape(6, -1, 3).mean(1)
    np.testing.assert_allclose(channels[:, 0], channels[:, 2], rtol=0.05)  # no cast
    blurred = photometric_batch(batch, Photometric(blur=0.1), rng())
    sharpness = lambda x: np.abs(np.diff(x.astype(float), axis=2)).mean()  # noqa: E731
    assert sharpness(blurred) < 0.8 * sharpness(batch)
    np.testing.assert_array_equal(photometric_batch(batch, Photometric(), rng()), batch)
    np.testing.assert_array_equal(disk_blur(batch[0], 0.4), batch[0])


def test_tone_curve_and_vignette_do_what_they_name():
    image = images(1, 40)[0]
    np.testing.assert_array_equal(tone_curve(image, 1.0, 1.0), image)
    assert tone_curve(image, 2.0, 1.0).mean() < image.mean() - 10  # gamma 2 darkens mid-tones
    assert tone_curve(image, 1.0, 0.5).std() < 0.6 * image.std()
    np.testing.assert_array_equal(vignette(image, 0.0, 1.0), image)
    dark = vignette(image, 0.6, 1.0).astype(float) / image
    assert dark[20, 20].mean() > 0.99 and dark[0, 0].mean() < 0.5  # the corners lose light
    assert (vignette(image, 0.0, 0.7)[0, 0] == 0).all()  # outside the circular field: black


def test_camera_ranges_change_the_image_and_draw_after_the_light():
    batch = images()
    for camera in (Photometric(gamma=1.0), Photometric(contrast=1.0), Photometric(vignetting=0.75)):
        assert not camera.is_identity and camera.has_camera
        assert not np.array_equal(photometric_batch(batch, camera, np.random.default_rng(2)), batch)
    corners = photometric_batch(batch, Photometric(vignetting=0.75), np.random.default_rng(2))
    assert corners[:, 0, 0].mean() < batch[:, 0, 0].mean() - 10
    # The light alone draws three numbers per image, as before the camera's ranges existed.
    used, fresh = np.random.default_rng(4), np.random.default_rng(4)
    photometric_batch(batch, Photometric(illuminant=100), used)
    fresh.random((len(batch), 3))
    assert used.random() == fresh.random()


def test_magnification_scales_the_content_about_the_centre_and_draws_last():
    image = np.full((40, 40, 3), 200, np.uint8)
    image[15:25, 15:25] = 40  # a dark 10-px lesion in the middle
    dark = lambda x: int((x[:, :, 0] < 120).sum())  # noqa: E731
    np.testing.assert_array_equal(magnify(image, 1.0), image)
    assert 350 < dark(magnify(image, 2.0)) < 450  # twice the side: four times the area
    assert 40 < dark(magnify(image, 0.75)) < 75  # 3/4 of the side: about 9/16 of the area
    assert dark(magnify(image, 0.75)[:5]) == 0  # the mirrored border is skin, not lesion
    batch = np.repeat(image[None], 6, axis=0)
    zoomed = photometric_batch(batch, Photometric(magnification=1.0), np.random.default_rng(3))
    assert not Photometric(magnification=1.0).is_identity and len({dark(x) for x in zoomed}) > 3
    # Drawn after the light's three numbers and the camera's three: older ranges draw as before.
    used, fresh = np.random.default_rng(4), np.random.default_rng(4)
    photometric_batch(batch, Photometric(gamma=0.5, magnification=0.5), used)
    fresh.random((6, 3)), fresh.random((6, 3)), fresh.random(6)
    assert used.random() == fresh.random()
    with pytest.raises(ConfigError, match=r"augment.magnification: must be a number in \[0, 1\]"):
        Photometric.from_config({"magnification": 1.5})


def test_config_ranges_are_checked_and_default_off():
    assert Photometric.from_config(AUGMENT).is_identity
    assert Photometric.from_config({**AUGMENT, "exposure": 0.5}) == Photometric(exposure=0.5)
    with pytest.raises(ConfigError, match=r"augment.blur: must be a number in \[0, 0.1\]"):
        Photometric.from_config({"blur": 0.5})
    with pytest.raises(ConfigError, match="augment.illuminant"):
        Photometric.from_config({"illuminant": True})
    with pytest.raises(ConfigError, match=r"augment.vignetting: must be a number in \[0, 0.75\]"):
        Photometric.from_config({"vignetting": 0.9})


def test_batches_add_the_light_on_their_own_stream():
    batch, labels = images(8), np.zeros(8, int)
    geometric = Augmentation.from_config(AUGMENT)
    plain = ImageBatches(batch, labels, 8, augmentation=geometric, seed=3)
    lit = ImageBatches(batch, labels, 8, augmentation=geometric, seed=3,
                       photometric=Photometric(illuminant=80, exposure=0.5))  # fmt: skip
    a, b = plain[0][0], lit[0][0]
    assert not np.allclose(a, b)
    # The same views underneath: the geometric draws did not move.
    light = np.random.default_rng([3, 0, 0, 1])
    expected = photometric_batch(np.rint(a * 255).astype(np.uint8), lit.photometric, light)
    np.testing.assert_allclose(b, rescale(expected), atol=1.5 / 255)
    np.testing.assert_array_equal(lit[0][0], b)
    off = ImageBatches(batch, labels, 8, photometric=Photometric())
    np.testing.assert_array_equal(off[0][0], rescale(batch))
