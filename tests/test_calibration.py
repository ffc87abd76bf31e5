"""Threshold for a target sensitivity, reliability bins and ECE."""

from __future__ import annotations

import numpy as np
import pytest

from skinkd.errors import DataError
from skinkd.evaluate.calibration import calibrate, rates_at, reliability, threshold_for_sensitivity


def test_threshold_is_the_most_specific_one_reaching_the_target():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 1])
    prob = np.array([0.9, 0.8, 0.7, 0.2, 0.75, 0.1, 0.3, 0.05, 0.6, 0.4])
    # Five malignant: 0.9 needs ceil(4.5) = 5 found, so the lowest malignant score, 0.2.
    assert threshold_for_sensitivity(labels, prob, 0.9) == 0.2
    # 0.6 needs 3 found: 0.7; a higher threshold would miss one.
    threshold = threshold_for_sensitivity(labels, prob, 0.6)
    assert threshold == 0.7
    assert rates_at(labels, prob, threshold) == {"sensitivity": 0.6, "specificity": 0.8}
    assert rates_at(labels, prob, np.nextafter(threshold, 1))["sensitivity"] < 0.6


def test_threshold_needs_malignant_cases_and_a_sane_target():
    with pytest.raises(DataError, match="no malignant"):
        threshold_for_sensitivity(np.zeros(4), np.linspace(0, 1, 4), 0.9)
    with pytest.raises(ValueError, match="target sensitivity"):
        threshold_for_sensitivity(np.ones(4), np.linspace(0, 1, 4), 0)


def test_reliability_bins_and_ece_by_hand():
    labels = np.array([0, 0, 1, 1, 1, 0])
    prob = np.array([0.05, 0.15, 0.95, 1.0, 0.55, 0.55])
    result = reliability(labels, prob, bins=2)
    low, high = result["bins"]
    assert (low["count"], high["count"]) == (2, 4)
    assert low["mean_predicted"] == pytest.approx(0.10) and low["observed"] == 0
    assert high["mean_predicted"] == pytest.approx(0.7625) and high["observed"] == 0.75
    assert result["ece"] == pytest.approx(2 / 6 * 0.10 + 4 / 6 * 0.0125)


def test_perfectly_calibrated_scores_have_small_ece():
    rng = np.random.default_rng(0)
    prob = rng.uniform(size=20_000)
    labels = (rng.uniform(size=prob.size) < prob).astype(int)
    assert reliability(labels, prob)["ece"] < 0.02
    overconfident = np.clip((prob - 0.5) * 3 + 0.5, 0, 1)
    assert reliability(labels, overconfident)["ece"] > 0.1


def test_calibrate_reports_validation_choice_and_test_outcome():
    rng = np.random.default_rng(1)
    val_labels, test_labels = rng.integers(0, 2, 500), rng.integers(0, 2, 500)
    val_prob = np.clip(val_labels * 0.3 + rng.uniform(size=500) * 0.7, 0, 1)
    test_prob = np.clip(test_labels * 0.3 + rng.uniform(size=500) * 0.7, 0, 1)
    result = calibrate(val_labels, val_prob, test_labels, test_prob, 0.9)
    assert result["val"]["sensitivity"] >= 0.9
    assert result["test"] == rates_at(test_labels, test_prob, result["threshold"])
    assert sum(b["count"] for b in result["test_bins"]) == 500
