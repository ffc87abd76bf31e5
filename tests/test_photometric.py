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
    photometric_batch,
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


def test_config_ranges_are_checked_and_default_off():
    assert Photometric.from_config(AUGMENT).is_identity
    assert Photometric.from_config({**AUGMENT, "exposure": 0.5}) == Photometric(exposure=0.5)
    with pytest.raises(ConfigError, match=r"augment.blur: must be a number in \[0, 0.1\]"):
        Photometric.from_config({"blur": 0.5})
    with pytest.raises(ConfigError, match="augment.illuminant"):
        Photometric.from_config({"illuminant": True})


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
