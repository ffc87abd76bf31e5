"""Grad-CAM: where in the image a model looks when it scores a lesion malignant.

The heatmap is ReLU(sum_k w_k A_k), with A the feature maps of the last convolutional
stage and w_k the mean gradient of a class logit over map k (Selvaraju et al. 2017). The
report explains each image's true class: evidence for benign on benign lesions, for
malignant on malignant ones.
Gradients need the backend's autodiff: TensorFlow and PyTorch are supported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import keras
import numpy as np

from skinkd.data.preprocess import rescale
from skinkd.errors import ConfigError
from skinkd.nn.models import MalignantLogits
from skinkd.teacher.backbones.registry import BACKBONES

MALIGNANT = 1
Forward = Callable[[Any], tuple[Any, Any]]


def student_forward(model: keras.Model, layer: str = "conv3") -> Forward:
    """(feature maps of ``layer``, logits) of the student in one pass."""
    both = keras.Model(model.inputs, [model.get_layer(layer).output, model.output])
    return lambda images: tuple(both(images, training=False))


def teacher_forward(
    model: keras.Model, malignant: Sequence[bool] = (False, True)
) -> Forward | None:
    """(maps of the teacher's first convolutional backbone, benign/malignant logits) of an
    image-to-logits teacher whose classes' malignancy is ``malignant``. None when there is
    nothing to explain: only transformer streams (no spatial maps), or a saved fusion head
    alone (frozen backbones: the head was trained on cached features and the saved model
    takes features, not images)."""
    names = [layer.name for layer in model.layers]
    backbones = [name for name in names if name in BACKBONES]
    cnn = [name for name in backbones if BACKBONES[name].kind == "maps"]
    if not cnn or "teacher_head" not in names:
        return None
    head = model.get_layer("teacher_head")
    collapse = MalignantLogits(list(malignant)) if len(malignant) != 2 else None

    def forward(images):
        features = {name: model.get_layer(name)(images, training=False) for name in backbones}
        logits = head(features, training=False)
        return features[cnn[0]], logits if collapse is None else collapse(logits)

    return forward


def _maps_and_gradients(
    forward: Forward, images: np.ndarray, onehot: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            maps, logits = forward(tf.convert_to_tensor(images))
            score = tf.reduce_sum(logits * onehot)
        return maps.numpy(), tape.gradient(score, maps).numpy()
    if backend == "torch":
        import torch

        with torch.enable_grad():
            maps, logits = forward(torch.as_tensor(images))
            maps.retain_grad()
            (logits * torch.as_tensor(onehot, device=logits.device)).sum().backward()
        return maps.detach().cpu().numpy(), maps.grad.detach().cpu().numpy()
    raise ConfigError(f"Grad-CAM needs the tensorflow or torch Keras backend, not {backend!r}")


def grad_cam(
    forward: Forward, images_uint8: np.ndarray, classes: np.ndarray | int = MALIGNANT
) -> np.ndarray:
    """Heatmaps in [0, 1] at the images' size, (n, S, S) float32, for uint8 (n, S, S, 3):
    the evidence for ``classes`` (one class index, or one per image)."""
    targets = np.broadcast_to(np.asarray(classes, dtype=int), (len(images_uint8),))
    onehot = np.eye(2, dtype=np.float32)[targets]
    maps, grads = _maps_and_gradients(forward, rescale(images_uint8), onehot)
    weights = grads.mean(axis=(1, 2), keepdims=True)
    cams = np.maximum((weights * maps).sum(axis=-1), 0)
    size = images_uint8.shape[1]
    out = np.empty((len(cams), size, size), np.float32)
    for i, cam in enumerate(cams):
        peak = cam.max()
        cam = cam / peak if peak > 0 else cam
        out[i] = cv2.resize(cam.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0, 1)


def overlay(image_uint8: np.ndarray, heatmap: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """The heatmap (jet colours) over the RGB image, uint8: opaque up to ``alpha`` where the
    heat is high, transparent where it is zero (the lesion stays visible)."""
    colours = cv2.applyColorMap(np.round(heatmap * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB).astype(np.float32)
    weight = alpha * heatmap[..., None]
    blend = (1 - weight) * image_uint8.astype(np.float32) + weight * colours
    return np.clip(np.round(blend), 0, 255).astype(np.uint8)


def sample_by_class(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of a fixed, seeded sample: ``per_class`` of each label (fewer if absent)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in (0, 1):
        members = np.flatnonzero(labels == label)
        chosen += sorted(rng.choice(members, min(per_class, len(members)), replace=False))
    return np.array(chosen, dtype=int)
