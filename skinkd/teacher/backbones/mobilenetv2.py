"""MobileNetV2 1.0 feature extractor as a functional Keras model that loads torch weights.

The layout follows the ``features`` module of the widely used ``pytorch-mobilenet-v2``
implementation, so its ImageNet state dict (``features.*``) loads with
``load_torch_state_dict``: every Keras layer that holds weights is named after its torch
module, dots replaced by underscores (torch ``features.3.conv.3`` is Keras
``features_3_conv_3``). Only ``keras.layers`` are used, so the model runs on every Keras
backend, and the loader takes plain numpy arrays, so this module never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np
from keras import layers

from skinkd.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# (expansion t, output channels c, repeats n, first stride s) per stage (Sandler et al. 2018).
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# features.1 .. features.17; features.18 is the final 1x1 convolution.
INVERTED_RESIDUAL_BLOCKS = sum(repeats for _, _, repeats, _ in INVERTED_RESIDUAL_SETTING)
STEM_CHANNELS = 32
FEATURE_CHANNELS = 1280
# torch's BatchNorm2d defaults: eps 1e-5, and momentum 0.1 on the new batch, which is
# Keras' 0.9 on the old moving statistics.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
# 52 convolution weights + 52 BatchNorms x (weight, bias, running_mean, running_var,
# num_batches_tracked) in the torch state dict.
TORCH_LAYOUT_TENSORS = 312
# torch's running-batch counter: it only matters to momentum=None BatchNorm training.
_IGNORED_BN_BUFFER = "num_batches_tracked"
_BN_TENSORS = (
    ("weight", "gamma"),
    ("bias", "beta"),
    ("running_mean", "moving_mean"),
    ("running_var", "moving_variance"),
)
# Axis orders taking a torch kernel to Keras': Conv2D (out, in, kh, kw) -> (kh, kw, in, out),
# DepthwiseConv2D (c, 1, kh, kw) -> (kh, kw, c, 1).
_CONV_TO_KERAS = (2, 3, 1, 0)
_DEPTHWISE_TO_KERAS = (2, 3, 0, 1)
_LISTED_KEYS = 5


def _conv_bn(
    x: keras.KerasTensor,
    prefix: str,
    index: int,
    filters: int,
    kernel_size: int,
    strides: int = 1,
    depthwise: bool = False,
    relu: bool = True,
) -> keras.KerasTensor:
    """Conv + BN (+ ReLU6) named as torch's Sequential indices ``index``, ``+1``, ``+2``."""
    if kernel_size == 3:
        # torch pads 1 px on every side; Keras' "same" with stride 2 pads only right/bottom,
        # which would shift every feature map against the torch weights.
        x = layers.ZeroPadding2D(1, name=f"{prefix}_{index}_pad")(x)
    if depthwise:
        conv = layers.DepthwiseConv2D(
            kernel_size, strides, use_bias=False, name=f"{prefix}_{index}"
        )
    else:
        conv = layers.Conv2D(
            filters, kernel_size, strides, use_bias=False, name=f"{prefix}_{index}"
        )
    x = conv(x)
    x = layers.BatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}_{index + 1}"
    )(x)
    if relu:
        x = layers.ReLU(max_value=6.0, name=f"{prefix}_{index + 2}")(x)
    return x


def _inverted_residual(
    x: keras.KerasTensor, block: int, out_channels: int, strides: int, expansion: int
) -> keras.KerasTensor:
    """Block ``features.<block>``: (expand,) depthwise, linear projection (+ residual)."""
    prefix = f"features_{block}_conv"
    in_channels = x.shape[-1]
    hidden = in_channels * expansion
    y = x
    index = 0
    if expansion != 1:
        y = _conv_bn(y, prefix, 0, hidden, 1)
        index = 3
    y = _conv_bn(y, prefix, index, hidden, 3, strides, depthwise=True)
    y = _conv_bn(y, prefix, index + 3, out_channels, 1, relu=False)
    if strides == 1 and in_channels == out_channels:
        y = layers.Add(name=f"features_{block}_add")([x, y])
    return y


def build_mobilenetv2(image_size: int = 224, name: str = "mobilenetv2") -> keras.Model:
    """MobileNetV2 1.0 from a [0, 1] RGB image to its final 1280-channel ReLU6 map.

    The map is ``image_size / 32`` (rounded up) on a side: 7x7 at 224, 3x3 at 96. The
    ImageNet mean/std normalisation is the model's first layer, so callers feed [0, 1].
    """
    image = keras.Input((image_size, image_size, 3), name="image")
    # Normalization with fixed statistics keeps them in the config (no weights), so they
    # survive .keras saving and are not a tensor the torch loader would have to fill.
    x = layers.Normalization(
        mean=IMAGENET_MEAN,
        variance=tuple(s * s for s in IMAGENET_STD),
        name="imagenet_normalization",
    )(image)
    x = _conv_bn(x, "features_0", 0, STEM_CHANNELS, 3, strides=2)
    block = 1
    for expansion, channels, repeats, first_stride in INVERTED_RESIDUAL_SETTING:
        for repeat in range(repeats):
            strides = first_stride if repeat == 0 else 1
            x = _inverted_residual(x, block, channels, strides, expansion)
            block += 1
    x = _conv_bn(x, f"features_{block}", 0, FEATURE_CHANNELS, 1)
    return keras.Model(image, x, name=name)


def _torch_targets(
    model: keras.Model,
) -> dict[str, tuple[keras.Variable, tuple[int, ...] | None]]:
    """Each torch key the model needs -> (Keras variable, axis order or None to copy as is)."""
    targets: dict[str, tuple[keras.Variable, tuple[int, ...] | None]] = {}
    for layer in model.layers:
        prefix = layer.name.replace("_", ".")
        if isinstance(layer, layers.DepthwiseConv2D):
            targets[f"{prefix}.weight"] = (layer.kernel, _DEPTHWISE_TO_KERAS)
        elif isinstance(layer, layers.Conv2D):
            targets[f"{prefix}.weight"] = (layer.kernel, _CONV_TO_KERAS)
        elif isinstance(layer, layers.BatchNormalization):
            for torch_name, attribute in _BN_TENSORS:
                targets[f"{prefix}.{torch_name}"] = (getattr(layer, attribute), None)
    return targets


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED_KEYS])
    return shown + (f" and {len(keys) - _LISTED_KEYS} more" if len(keys) > _LISTED_KEYS else "")


def load_torch_state_dict(model: keras.Model, state_dict: Mapping[str, np.ndarray]) -> None:
    """Copy a pytorch-mobilenet-v2 ``features.*`` state dict into ``build_mobilenetv2``'s model.

    Every tensor is used exactly once and every Keras weight is set exactly once (torch's
    BatchNorm ``num_batches_tracked`` counters are accepted and dropped). Raises
    ``DataError`` naming the missing, unexpected and wrongly shaped keys, and any Keras
    weight no torch key maps to; the model is left untouched then.
    """
    targets = _torch_targets(model)
    # A counter is expected exactly where a BatchNorm is.
    counters = {
        key.removesuffix("running_mean") + _IGNORED_BN_BUFFER
        for key in targets
        if key.endswith(".running_mean")
    }
    unexpected = sorted(key for key in state_dict if key not in targets and key not in counters)
    missing = sorted(key for key in targets if key not in state_dict)
    mapped = {id(variable) for variable, _ in targets.values()}
    unmapped = [weight.path for weight in model.weights if id(weight) not in mapped]
    converted: list[tuple[keras.Variable, np.ndarray]] = []
    wrong_shape: list[str] = []
    for key, (variable, axes) in targets.items():
        if key not in state_dict:
            continue
        tensor = np.asarray(state_dict[key])
        keras_shape = tuple(variable.shape)
        torch_shape = (
            keras_shape if axes is None else tuple(keras_shape[a] for a in np.argsort(axes))
        )
        if tensor.shape != torch_shape:
            wrong_shape.append(f"{key} {tensor.shape} (expected {torch_shape})")
        else:
            converted.append((variable, tensor if axes is None else tensor.transpose(axes)))
    problems = [
        f"{label}: {_listed(keys)}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong_shape),
            ("Keras weights without a torch key", unmapped),
        )
        if keys
    ]
    if problems:
        raise DataError(
            f"MobileNetV2 torch state dict does not fit model {model.name!r}: "
            + "; ".join(problems)
        )
    for variable, value in converted:
        variable.assign(value.astype(variable.dtype))


def unfreeze_last_blocks(model: keras.Model, blocks: int) -> list[str]:
    """Make the convolutions of the last ``blocks`` inverted-residual blocks (and the final
    1x1 convolution) trainable, everything else frozen; returns their names.

    BatchNorm layers stay frozen, so they keep running on their ImageNet statistics: the
    small batches a CPU or one GPU can afford would estimate them badly.
    """
    last = INVERTED_RESIDUAL_BLOCKS - blocks
    model.trainable = True
    unfrozen = []
    for layer in model.layers:
        parts = layer.name.split("_")
        block = int(parts[1]) if parts[0] == "features" and parts[1].isdigit() else -1
        layer.trainable = (
            block > last
            and isinstance(layer, layers.Conv2D | layers.DepthwiseConv2D)
            and bool(layer.weights)
        )
        if layer.trainable:
            unfrozen.append(layer.name)
    return unfrozen
