"""The acquisition-shift benchmark: each shift does what its name says, grows with its
severity, is seeded, and the scores and summary follow from the predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinkd.data.photometric import kelvin_rgb
from skinkd.data.preprocess import Preprocessing
from skinkd.errors import ConfigError
from skinkd.evaluate.shift_benchmark import (
    CLEAN,
    conditions,
    score_shifts,
    summarise_shifts,
)
from skinkd.evaluate.shifts import SEVERITIES, SHIFTS, shift_image


def lesion(seed: int = 0) -> np.ndarray:
    """A textured skin-toned image with a dark disc: something for every shift to change."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:150, :200]
    image = np.stack([190 + 20 * np.sin(xx / 7), 140 + 15 * np.cos(yy / 5), 120 + 10 * np.sin((xx + yy) / 9)], -1)
    image[(yy - 75) ** 2 + (xx - 100) ** 2 < 40**2] *= 0.4
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shift", list(SHIFTS))
def test_each_shift_grows_with_severity_and_is_seeded(shift):
    image = lesion()
    changes = []
    for severity in SEVERITIES:
        shifted = shift_image(image, shift, severity, seed=0, index=3)
        assert shifted.dtype == np.uint8 and shifted.shape == image.shape
        np.testing.assert_array_equal(shifted, shift_image(image, shift, severity, seed=0, index=3))
        changes.append(np.abs(shifted.astype(int) - image).mean())
    assert changes[0] > 0.5, changes
    assert changes[-1] > changes[0] and np.mean(np.diff(changes) > 0) >= 0.75, changes


def test_the_shifts_change_what_they_name():
    image = lesion()
    darker = [shift_image(image, "exposure", 5, 0, i).mean() < image.mean() for i in range(20)]
    assert 0 < sum(darker) < 20  # both directions are drawn
    warm = kelvin_rgb(2700) / kelvin_rgb(6500)
    assert warm[0] > warm[1] > warm[2]
    cool = kelvin_rgb(16000) / kelvin_rgb(6500)
    assert cool[2] > cool[0]
    vignetted = shift_image(image, "vignetting", 5, 0, 0)
    assert vignetted[0, 0].max() == 0 and (vignetted[75, 100] == image[75, 100]).all()
    blurred = shift_image(image, "defocus", 5, 0, 0)
    assert np.abs(np.diff(blurred.astype(float), axis=1)).mean() < 0.5 * np.abs(np.diff(image.astype(float), axis=1)).mean()
    with pytest.raises(ConfigError, match="'fog' is not one of"):
        shift_image(image, "fog", 1, 0, 0)
    with pytest.raises(ConfigError, match="severity"):
        shift_image(image, "jpeg", 6, 0, 0)


def test_scores_and_summary_follow_the_predictions():
    images = [lesion(seed) for seed in range(12)]
    labels = np.arange(12) % 2
    params = Preprocessing.from_config({s: {"enabled": False} for s in ("closing", "bilateral", "highlight", "unsharp")}, 32)
    seen = []

    def mean_brightness(batch):
        seen.append(batch)
        return batch.mean(axis=(1, 2, 3)) / 255.0

    table = score_shifts(images, labels, {"a": (params, mean_brightness), "b": (params, mean_brightness)}, seed=1)
    assert list(zip(table["shift"], table["severity"]))[::2] == conditions()
    # Both models get the one batch of each condition (same preprocessing, made once).
    assert len(seen) == 2 * len(conditions()) and all(a is b for a, b in zip(seen[::2], seen[1::2]))
    assert np.allclose(table.loc[table["model"] == "a", "roc_auc"], table.loc[table["model"] == "b", "roc_auc"])
    summary = summarise_shifts(pd.concat([table[table["model"] == "a"]]))
    rows = table[table["model"] == "a"]
    shifted = rows[rows["shift"] != CLEAN]
    assert summary["a"]["mean_shifted_roc_auc"] == pytest.approx(shifted["roc_auc"].mean(), abs=1e-4)
    assert summary["a"]["drop"] == pytest.approx(summary["a"]["clean_roc_auc"] - shifted["roc_auc"].mean(), abs=2e-4)
    assert summary["a"]["worst"]["roc_auc"] == pytest.approx(shifted["roc_auc"].min(), abs=1e-4)
    assert set(summary["a"]["per_shift"]) == set(SHIFTS)
