"""Report figures: each is a readable, non-blank PNG written atomically."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from skinkd.evaluate.figures import confusion_matrix_figure, roc_figure, training_curves_figure


def read_png(path: Path) -> np.ndarray:
    """Decode with OpenCV (independent of matplotlib); fails the test if it cannot."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} is not a readable image"
    return image


def assert_drawn(path: Path, min_height: int = 250, min_width: int = 250) -> np.ndarray:
    """A decodable PNG of a sensible size with something drawn on it, and no temp file beside."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = read_png(path)
    height, width = image.shape[:2]
    assert height >= min_height and width >= min_width
    # A blank canvas has one colour; a figure has text, lines and more than a few colours.
    assert image.std() > 10
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 20
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    return image


def evaluation(model: str, tn: int, fp: int, fn: int, tp: int) -> dict:
    """The part of an evaluate_model result the confusion figure reads."""
    return {
        "model": model,
        "metrics": {
            "tn": tn,
            "fp": fp,
            "fn": fn,
            "tp": tp,
            "accuracy": (tn + tp) / (tn + fp + fn + tp),
        },
    }


def test_confusion_matrix_figure_has_one_panel_per_model(tmp_path):
    one = tmp_path / "one" / "confusion.png"
    two = tmp_path / "two" / "confusion.png"
    confusion_matrix_figure([evaluation("teacher", 50, 5, 8, 37)], one)
    confusion_matrix_figure(
        [evaluation("teacher", 50, 5, 8, 37), evaluation("student", 0, 55, 0, 45)], two
    )
    single, double = assert_drawn(one), assert_drawn(two)
    assert double.shape[1] > 1.8 * single.shape[1]
    assert double.shape[0] == single.shape[0]
    # The matrix shading runs from white to dark blue: both ends appear.
    blue = double[..., 0].astype(int) - double[..., 2].astype(int)
    assert blue.max() > 100


def test_roc_figure_draws_several_models(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    good = np.clip(0.5 * labels + 0.5 * rng.random(300), 0, 1)
    weak = np.clip(0.1 * labels + 0.9 * rng.random(300), 0, 1)
    out = tmp_path / "roc.png"
    roc_figure({"teacher": (labels, good), "student": (labels, weak)}, out)
    assert_drawn(out)


def test_roc_figure_needs_both_classes(tmp_path):
    with pytest.raises(ValueError, match="both benign and malignant"):
        roc_figure({"student": (np.zeros(5, int), np.linspace(0, 1, 5))}, tmp_path / "roc.png")
    assert not (tmp_path / "roc.png").exists()


def history(epochs: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    epoch = np.arange(epochs)
    loss = 1 / (1 + epoch) + 0.02 * rng.random(epochs)
    return pd.DataFrame(
        {
            "epoch": epoch,
            "loss": loss,
            "val_loss": loss + 0.1,
            "accuracy": 1 - loss / 2,
            "val_accuracy": 0.95 - loss / 2,
        }
    )


def test_training_curves_figure_draws_loss_and_accuracy(tmp_path):
    out = tmp_path / "training.png"
    training_curves_figure({"teacher": history(12, 0), "student": history(20, 1)}, out)
    image = assert_drawn(out)
    assert image.shape[1] > image.shape[0]  # two panels side by side


def test_training_curves_figure_names_a_missing_column(tmp_path):
    with pytest.raises(ValueError, match="'student' lacks column\\(s\\) \\['val_accuracy'\\]"):
        training_curves_figure(
            {"student": history(5, 0).drop(columns="val_accuracy")}, tmp_path / "t.png"
        )
