"""A plain-Keras Vision Transformer whose layer names follow the original Google ViT, so
the released ``.npz`` checkpoints load by name (``load_vit_npz``) without keras-hub, whose
ViTBackbone would pull in tensorflow-text and a full TensorFlow for every backend.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers
from scipy import ndimage

from skinkd.errors import ConfigError, DataError

log = logging.getLogger(__name__)



@keras.saving.register_keras_serializable(package="skinkd")
def gelu_tanh(x):
    """GELU with the tanh approximation, as the original ViT (flax's default ``nn.gelu``)."""
    return keras.activations.gelu(x, approximate=True)


@keras.saving.register_keras_serializable(package="skinkd")
class ClassToken(layers.Layer):
    """Prepends one learned token to the patch sequence (original name: ``cls``)."""

    def build(self, input_shape):
        self.cls = self.add_weight(shape=(1, 1, input_shape[-1]), initializer="zeros", name="cls")

    def call(self, patches):
        batch = keras.ops.shape(patches)[0]
        token = keras.ops.broadcast_to(self.cls, (batch, 1, patches.shape[-1]))
        return keras.ops.concatenate([keras.ops.cast(token, patches.dtype), patches], axis=1)

    def compute_output_shape(self, input_shape):
        tokens = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], tokens, input_shape[2])


@keras.saving.register_keras_serializable(package="skinkd")
class PositionEmbedding(layers.Layer):
    """Adds a learned embedding per token position (original name: ``pos_embedding``)."""

    def build(self, input_shape):
        self.pos_embedding = self.add_weight(
            shape=(1, input_shape[1], input_shape[2]),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="pos_embedding",
        )

    def call(self, tokens):
        return tokens + keras.ops.cast(self.pos_embedding, tokens.dtype)


@dataclass(frozen=True)
class ViTConfig:
    patch_size: int
    dim: int
    depth: int
    heads: int
    mlp_dim: int


def build_vit(
    config: ViTConfig, image_size: int, name: str, scale: float, offset: float
) -> keras.Model:
    """ViT encoder on a [0, 1] image; output: the final-LayerNorm class token (``dim``)."""
    grid = image_size // config.patch_size
    if grid < 1:
        raise ConfigError(
            f"image_size: {image_size} px is smaller than {name}'s {config.patch_size} px patch"
        )
    image = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Rescaling(scale, offset=offset, name="input_scaling")(image)
    x = layers.Conv2D(config.dim, config.patch_size, strides=config.patch_size, name="embedding")(x)
    x = layers.Reshape((grid * grid, config.dim), name="patches")(x)
    x = ClassToken(name="cls")(x)
    x = PositionEmbedding(name="posembed_input")(x)
    for i in range(config.depth):
        block = f"encoderblock_{i}"
        y = layers.LayerNormalization(epsilon=1e-6, name=f"{block}_LayerNorm_0")(x)
        y = layers.MultiHeadAttention(
            config.heads,
            config.dim // config.heads,
            name=f"{block}_MultiHeadDotProductAttention_1",
        )(y, y)
        x = layers.Add(name=f"{block}_residual_0")([x, y])
        y = layers.LayerNormalization(epsilon=1e-6, name=f"{block}_LayerNorm_2")(x)
        y = layers.Dense(config.mlp_dim, activation=gelu_tanh, name=f"{block}_MlpBlock_3_Dense_0")(
            y
        )
        y = layers.Dense(config.dim, name=f"{block}_MlpBlock_3_Dense_1")(y)
        x = layers.Add(name=f"{block}_residual_1")([x, y])
    x = layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")(x)
    return keras.Model(image, x[:, 0], name=name)


def _vit_npz_keys(depth: int) -> dict[str, str]:
    """Keras variable path -> name in the original ViT ``.npz`` (Transformer/encoderblock_N/...)."""
    keys = {
        "embedding/kernel": "embedding/kernel",
        "embedding/bias": "embedding/bias",
        "cls/cls": "cls",
        "posembed_input/pos_embedding": "Transformer/posembed_input/pos_embedding",
        "encoder_norm/gamma": "Transformer/encoder_norm/scale",
        "encoder_norm/beta": "Transformer/encoder_norm/bias",
    }
    for i in range(depth):
        block, original = f"encoderblock_{i}", f"Transformer/encoderblock_{i}"
        for norm in ("LayerNorm_0", "LayerNorm_2"):
            keys[f"{block}_{norm}/gamma"] = f"{original}/{norm}/scale"
            keys[f"{block}_{norm}/beta"] = f"{original}/{norm}/bias"
        attention = "MultiHeadDotProductAttention_1"
        # Keras' EinsumDense kernels already have the original (dim, heads, head_dim) layout.
        for keras_part, original_part in (
            ("query", "query"),
            ("key", "key"),
            ("value", "value"),
            ("attention_output", "out"),
        ):
            for param in ("kernel", "bias"):
                keys[f"{block}_{attention}/{keras_part}/{param}"] = (
                    f"{original}/{attention}/{original_part}/{param}"
                )
        for dense in ("Dense_0", "Dense_1"):
            for param in ("kernel", "bias"):
                keys[f"{block}_MlpBlock_3_{dense}/{param}"] = (
                    f"{original}/MlpBlock_3/{dense}/{param}"
                )
    return keys


def _resize_position_embedding(pos_embedding: np.ndarray, tokens: int) -> np.ndarray:
    """Bilinear resize of the patch-position grid to another image size; class token kept."""
    cls, grid = pos_embedding[:, :1], pos_embedding[0, 1:]
    old, new = math.isqrt(grid.shape[0]), math.isqrt(tokens - 1)
    grid = grid.reshape(old, old, -1)
    grid = ndimage.zoom(grid, (new / old, new / old, 1), order=1)
    return np.concatenate([cls, grid.reshape(1, new * new, -1)], axis=1)


def load_vit_npz(model: keras.Model, path: Path) -> None:
    """Load an original-layout ViT checkpoint (``head``/``pre_logits`` entries are ignored).

    The position embedding is resized when the checkpoint was trained at another image size.
    """
    variables = {v.path: v for v in model.weights}
    depth = sum(1 for layer in model.layers if layer.name.endswith("_LayerNorm_0"))
    keys = _vit_npz_keys(depth)
    assert set(keys) == set(variables), "ViT layer names and the .npz mapping disagree"
    with np.load(path, allow_pickle=False) as checkpoint:
        missing = sorted(set(keys.values()) - set(checkpoint.files))
        if missing:
            raise DataError(f"{path}: not a ViT checkpoint of this size, missing {missing[:3]}")
        for keras_path, original in keys.items():
            variable, value = variables[keras_path], checkpoint[original]
            if original.endswith("pos_embedding") and value.shape != tuple(variable.shape):
                log.info(
                    "%s: resizing position embedding %s -> %s", path, value.shape, variable.shape
                )
                value = _resize_position_embedding(value, variable.shape[1])
            if value.shape != tuple(variable.shape):
                raise DataError(
                    f"{path}: {original} has shape {value.shape}, the model expects "
                    f"{tuple(variable.shape)} (a checkpoint of another ViT size?)"
                )
            variable.assign(value.astype(variable.dtype))
