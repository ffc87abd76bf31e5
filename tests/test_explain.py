"""Grad-CAM: a model whose malignant score is known points at the right region, the same
on the TensorFlow and PyTorch backends; the student and teacher forwards; the sample."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from conftest import PROJECT
from skinkd.evaluate.explain import (
    grad_cam,
    overlay,
    sample_by_class,
    student_forward,
    teacher_forward,
)
from skinkd.student.network import build_student
from skinkd.teacher.models import build_teacher

SIZE = 32


def bright_square_model() -> keras.Model:
    """Malignant logit = mean brightness of a 1x1-conv map (named conv3, as the student's):
    every gradient is positive and equal, so the heatmap is the brightness itself."""
    image = keras.Input((SIZE, SIZE, 3))
    maps = keras.layers.Conv2D(1, 1, kernel_initializer="ones", use_bias=False, name="conv3")(image)
    pooled = keras.layers.GlobalAveragePooling2D()(maps)
    logits = keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant([[0.0, 1.0]]),
                                use_bias=False)(pooled)  # fmt: skip
    return keras.Model(image, logits)


def square_image() -> np.ndarray:
    image = np.zeros((1, SIZE, SIZE, 3), np.uint8)
    image[0, 4:12, 18:28] = 200
    return image


def test_heatmap_of_a_known_model_is_its_evidence():
    forward = student_forward(bright_square_model())
    heatmap = grad_cam(forward, square_image())[0]
    assert heatmap.shape == (SIZE, SIZE)
    assert heatmap[5:11, 19:27].min() > 0.9
    assert heatmap[20:, :10].max() == 0.0
    # The benign logit is constant (zero weights): no evidence for benign anywhere.
    assert grad_cam(forward, square_image(), classes=np.array([0])).max() == 0.0


def test_torch_backend_gives_the_same_heatmap(tmp_path):
    pytest.importorskip("torch")
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path[:0] = [{str(PROJECT)!r}, {str(PROJECT / "tests")!r}]
        import keras
        from test_explain import bright_square_model, square_image
        from skinkd.evaluate.explain import grad_cam, student_forward
        assert keras.backend.backend() == "torch"
        print(json.dumps(grad_cam(student_forward(bright_square_model()), square_image())[0].tolist()))
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    torch_map = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    expected = grad_cam(student_forward(bright_square_model()), square_image())[0]
    np.testing.assert_allclose(torch_map, expected, atol=1e-5)


def test_student_and_teacher_forwards_explain_real_models():
    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    student = build_student(SIZE)
    maps = grad_cam(student_forward(student), images)
    assert maps.shape == (3, SIZE, SIZE) and 0 <= maps.min() and maps.max() <= 1
    teacher = build_teacher(["tiny_cnn", "tiny_vit"], SIZE, {}, trainable_backbones=True)
    forward = teacher_forward(teacher)
    _, logits = forward(keras.ops.convert_to_tensor(images / np.float32(255)))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(logits),
        keras.ops.convert_to_numpy(teacher(images / np.float32(255), training=False)),
        atol=1e-5,
    )
    assert grad_cam(forward, images).shape == (3, SIZE, SIZE)
    vit_only = build_teacher(["tiny_vit"], SIZE, {}, trainable_backbones=True)
    assert teacher_forward(vit_only) is None
    head_only = teacher.get_layer("teacher_head")
    assert teacher_forward(head_only) is None


def test_overlay_and_fixed_sample():
    image = np.full((8, 8, 3), 100, np.uint8)
    hot = overlay(image, np.ones((8, 8), np.float32))
    cold = overlay(image, np.zeros((8, 8), np.float32))
    assert hot[..., 0].mean() > 100 and hot[..., 2].mean() < 100
    np.testing.assert_array_equal(cold, image)
    labels = np.array([0] * 10 + [1] * 3)
    chosen = sample_by_class(labels, 4, seed=0)
    assert list(labels[chosen]) == [0] * 4 + [1] * 3
    assert list(chosen) == list(sample_by_class(labels, 4, seed=0))
