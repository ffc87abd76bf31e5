"""The teacher's fusion head, the whole teacher (backbones feeding the head) and feature
extraction, as functional Keras models.

Every model returns logits and takes float images in [0, 1]
(``skinkd.data.preprocess.rescale``). The backbones live in ``skinkd.teacher.backbones``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np
from keras import layers

from skinkd.data.augment import warp_images
from skinkd.data.preprocess import rescale
from skinkd.errors import ConfigError
from skinkd.nn.models import load_model
from skinkd.teacher.backbones.registry import BACKBONES, KINDS, build_backbone

log = logging.getLogger(__name__)

# The head's BatchNorm moving statistics must follow backbone features that change while
# training end to end; Keras' 0.99 lags by hundreds of steps on small sets (SPEC is silent).
BN_MOMENTUM = 0.9


def build_teacher_head(
    feature_shapes: Mapping[str, tuple[int, ...]],
    kinds: Mapping[str, str],
    se_reduction: int = 8,
    num_classes: int = 2,
) -> keras.Model:
    """The fusion head: backbone features (one input per backbone, named after it) -> logits.

    "maps" streams: concatenated on channels -> BatchNorm -> squeeze-and-excitation -> GAP;
    "token" streams: concatenated -> BatchNorm; both joined -> the dropout/SELU classifier.
    """
    if not feature_shapes:
        raise ConfigError("teacher.backbones: the teacher needs at least one backbone")
    inputs, maps, tokens = {}, [], []
    for name, shape in feature_shapes.items():
        kind = kinds.get(name)
        expected_rank = {"maps": 3, "token": 1}.get(kind)
        if expected_rank is None:
            raise ConfigError(f"teacher.backbones: {name} has kind {kind!r}, not one of {KINDS}")
        if len(shape) != expected_rank:
            raise ConfigError(
                f"teacher.backbones: {name} is {kind!r} but its features have shape {shape}"
            )
        inputs[name] = keras.Input(tuple(shape), name=name)
        (maps if kind == "maps" else tokens).append(name)

    streams = []
    if maps:
        sizes = {name: tuple(feature_shapes[name][:2]) for name in maps}
        if len(set(sizes.values())) > 1:
            listed = ", ".join(f"{n} {h}x{w}" for n, (h, w) in sizes.items())
            raise ConfigError(
                "teacher.backbones: feature maps are concatenated on channels, so they must "
                f"share their spatial size, but at this image_size they are {listed}; choose "
                "backbones with the same total stride"
            )
        x = (
            inputs[maps[0]]
            if len(maps) == 1
            else layers.Concatenate(name="maps_concat")([inputs[n] for n in maps])
        )
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="maps_bn")(x)
        channels = x.shape[-1]
        # Squeeze-and-excitation: per-channel weights from the globally pooled map.
        se = layers.GlobalAveragePooling2D(name="se_squeeze")(x)
        se = layers.Dense(max(1, channels // se_reduction), activation="relu", name="se_reduce")(se)
        se = layers.Dense(channels, activation="sigmoid", name="se_expand")(se)
        se = layers.Reshape((1, 1, channels), name="se_reshape")(se)
        x = layers.Multiply(name="se_scale")([x, se])
        streams.append(layers.GlobalAveragePooling2D(name="maps_gap")(x))
    if tokens:
        t = (
            inputs[tokens[0]]
            if len(tokens) == 1
            else layers.Concatenate(name="token_concat")([inputs[n] for n in tokens])
        )
        streams.append(layers.BatchNormalization(momentum=BN_MOMENTUM, name="token_bn")(t))

    x = streams[0] if len(streams) == 1 else layers.Concatenate(name="fusion")(streams)
    x = layers.Dropout(0.5, name="dropout_1")(x)
    x = layers.Dense(256, activation="selu", name="dense256")(x)
    x = layers.Dropout(0.5, name="dropout_2")(x)
    x = layers.Dense(128, activation="selu", name="dense128")(x)
    x = layers.Dropout(0.2, name="dropout_3")(x)
    x = layers.Dense(64, activation="selu", name="dense64")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name="teacher_head")


def build_teacher(
    backbones: list[str],
    image_size: int,
    weights: Mapping[str, str | Path | None],
    trainable_backbones: bool = False,
    se_reduction: int = 8,
    num_classes: int = 2,
) -> keras.Model:
    """Image -> logits: the backbones (frozen unless asked) feeding ``build_teacher_head``.

    The head is the sub-model named ``teacher_head``, the same architecture that is trained
    on cached features, so its weights transfer with ``get_weights``/``set_weights``.
    """
    image = keras.Input((image_size, image_size, 3), name="image")
    features = {}
    for name in backbones:
        backbone = build_backbone(name, image_size, weights.get(name))
        # A frozen backbone also runs its BatchNorm layers in inference mode.
        backbone.trainable = trainable_backbones
        features[name] = backbone(image)
    head = build_teacher_head(
        {name: tuple(f.shape[1:]) for name, f in features.items()},
        {name: BACKBONES[name].kind for name in backbones},
        se_reduction=se_reduction,
        num_classes=num_classes,
    )
    return keras.Model(image, head(features), name="teacher")


def extract_features(
    backbone_models: Mapping[str, keras.Model],
    images: np.ndarray,
    batch_size: int,
    transforms: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Each backbone's features of uint8 images (n, S, S, 3), as float16 (half the cache).

    ``transforms`` (optional, ``skinkd.data.augment`` views, one per image) warps each batch first.
    """
    features = {
        name: np.empty((len(images), *model.output.shape[1:]), dtype=np.float16)
        for name, model in backbone_models.items()
    }
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        if transforms is not None:
            batch = warp_images(batch, transforms[start : start + batch_size])
        batch = rescale(batch)
        for name, model in backbone_models.items():
            features[name][start : start + len(batch)] = model.predict_on_batch(batch)
        log.debug("features: %d / %d images", start + len(batch), len(images))
    return features


def load_teacher(path: str | Path) -> keras.Model:
    """A saved teacher, head or whole: ``load_model`` once the backbones' custom layers
    (the ViT's class token and position embedding) are registered, which importing this
    module does; a rule process that imports only ``skinkd.nn.models`` cannot read a
    teacher with a ViT stream."""
    return load_model(path)
