"""Student, teacher backbones and the teacher's fusion head, as functional Keras models.

Every model returns logits (2 units, index 1 = malignant); softmax is applied only where a
probability is reported. Every model takes float images in [0, 1]
(``skinkd.preprocess.rescale``); a backbone applies its own input scaling inside itself.

The ViT is a plain-Keras implementation whose layers mirror the original Google ViT, so the
released ``.npz`` checkpoints load by name (``load_vit_npz``) without keras-hub, whose
ViTBackbone would pull in tensorflow-text and a full TensorFlow for every backend.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import urllib.error
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers
from scipy import ndimage

from skinkd.errors import ConfigError, DataError, SkinkdError
from skinkd.preprocess import rescale
from skinkd.presets import TEACHER_PRESETS  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

NUM_CLASSES = 2
FEATURE_CONVERSIONS = ("flatten", "gap", "gmp")
KINDS = ("maps", "token")
# Seconds a stalled download socket may wait: an unreachable host fails in seconds, while a
# slow but live download keeps going (the limit is per socket operation, not per file).
DOWNLOAD_TIMEOUT_S = 20.0
# The head's BatchNorm moving statistics must follow backbone features that change while
# training end to end; Keras' 0.99 lags by hundreds of steps on small sets (SPEC is silent).
BN_MOMENTUM = 0.9
_KERAS_WEIGHT_SUFFIXES = (".keras", ".h5", ".hdf5")


# ---------------------------------------------------------------------------------------
# Student


def _feature_conversion(name: str) -> layers.Layer:
    if name == "flatten":
        return layers.Flatten(name="flatten")
    if name == "gap":
        return layers.GlobalAveragePooling2D(name="gap")
    if name == "gmp":
        return layers.GlobalMaxPooling2D(name="gmp")
    raise ConfigError(
        f"student.feature_conversion: {name!r} is not one of {', '.join(FEATURE_CONVERSIONS)}"
    )


def build_student(image_size: int, conversion: str = "gmp") -> keras.Model:
    """The paper's student: three conv/max-pool blocks, a feature conversion, three SELU layers.

    163,362 parameters with ``gap`` or ``gmp`` at any input size; ``flatten`` grows with it.
    """
    images = keras.Input((image_size, image_size, 3), name="image")
    x = images
    for block, filters in enumerate((32, 64, 128), start=1):
        x = layers.Conv2D(filters, 3, activation="relu", name=f"conv{block}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{block}")(x)
    x = _feature_conversion(conversion)(x)
    for units in (256, 128, 32):
        x = layers.Dense(units, activation="selu", name=f"dense{units}")(x)
    logits = layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(images, logits, name=f"student_{conversion}")


# ---------------------------------------------------------------------------------------
# Vision Transformer (layer names follow the original checkpoints)


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


def _build_vit(
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
    with np.load(path) as checkpoint:
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


# ---------------------------------------------------------------------------------------
# Backbone registry


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone; exactly one of ``application``, ``vit``, ``cnn_filters``.

    ``kind``: "maps" (a spatial feature map) or "token" (a vector). ``scale``/``offset`` map
    the [0, 1] image to the input range the backbone was trained with.
    """

    kind: str
    scale: float = 1.0
    offset: float = 0.0
    application: str | None = None  # name in keras.applications (looked up when built)
    vit: ViTConfig | None = None
    vit_imagenet_url: str | None = None
    cnn_filters: tuple[int, ...] | None = None

    @property
    def has_imagenet(self) -> bool:
        return self.application is not None or self.vit_imagenet_url is not None


_VIT_URL = "https://storage.googleapis.com/vit_models/"
BACKBONES: dict[str, BackboneSpec] = {
    # ResNet V2 and the original ViT expect [-1, 1]; ConvNeXt, EfficientNet and MobileNetV3
    # include their own preprocessing, which expects [0, 255].
    "resnet152v2": BackboneSpec("maps", scale=2.0, offset=-1.0, application="ResNet152V2"),
    "resnet50v2": BackboneSpec("maps", scale=2.0, offset=-1.0, application="ResNet50V2"),
    "convnext_base": BackboneSpec("maps", scale=255.0, application="ConvNeXtBase"),
    "efficientnet_b0": BackboneSpec("maps", scale=255.0, application="EfficientNetB0"),
    "mobilenet_v3_small": BackboneSpec("maps", scale=255.0, application="MobileNetV3Small"),
    "vit_b16": BackboneSpec(
        "token",
        scale=2.0,
        offset=-1.0,
        vit=ViTConfig(patch_size=16, dim=768, depth=12, heads=12, mlp_dim=3072),
        vit_imagenet_url=_VIT_URL + "imagenet21k%2Bimagenet2012/ViT-B_16-224.npz",
    ),
    "vit_ti16": BackboneSpec(
        "token",
        scale=2.0,
        offset=-1.0,
        vit=ViTConfig(patch_size=16, dim=192, depth=12, heads=3, mlp_dim=768),
        vit_imagenet_url=_VIT_URL + "augreg/Ti_16-i21k-300ep-lr_0.001-aug_none-wd_0.03-do_0.0"
        "-sd_0.0--imagenet2012-steps_20k-lr_0.03-res_224.npz",
    ),
    # Tiny, randomly initialised: tests and the synthetic default run. tiny_cnn halves the
    # size five times, so its map is 7x7 at 224 px like the ImageNet backbones.
    "tiny_cnn": BackboneSpec("maps", cnn_filters=(8, 16, 16, 32, 32)),
    "tiny_vit": BackboneSpec(
        "token", vit=ViTConfig(patch_size=16, dim=32, depth=2, heads=2, mlp_dim=64)
    ),
}



@contextlib.contextmanager
def _download_timeout() -> Iterator[None]:
    # urllib has no per-call timeout here (get_file uses urlretrieve), so set the process
    # default around the download only; rule scripts build backbones in a single thread.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _is_download_failure(err: BaseException) -> bool:
    # keras.utils.get_file re-raises URL errors as a bare Exception("URL fetch failure ...");
    # a stalled socket raises TimeoutError directly. Other errors (a corrupt file) pass on.
    return isinstance(err, urllib.error.URLError | TimeoutError | ConnectionError) or (
        "URL fetch failure" in str(err)
    )


def _download_error(name: str, err: BaseException) -> SkinkdError:
    return SkinkdError(
        f"teacher.weights.{name}: could not download the ImageNet weights ({err}). Without "
        f"internet, download them elsewhere and set `teacher.weights.{name}: /path/to/file`, "
        "or copy ~/.keras/models/ from a machine that has them."
    )


def _weights_source(name: str, weights: str | Path | None) -> str | Path | None:
    """None, "imagenet" or an existing local file; anything else is a config error."""
    if weights is None or str(weights).lower() == "none":
        return None
    spec = BACKBONES[name]
    if spec.cnn_filters:
        raise ConfigError(
            f"teacher.weights.{name}: {name} is always randomly initialised; use none"
        )
    if weights == "imagenet":
        if not spec.has_imagenet:
            raise ConfigError(f"teacher.weights.{name}: {name} has no ImageNet weights; use none")
        return "imagenet"
    path = Path(weights)
    if not path.is_file():
        raise ConfigError(f"teacher.weights.{name}: file {path} not found")
    expected = (".npz",) if spec.vit else _KERAS_WEIGHT_SUFFIXES
    if not path.name.endswith(expected):
        raise ConfigError(
            f"teacher.weights.{name}: {path} is not a weights file {name} can load "
            f"(expected {' or '.join(expected)})"
        )
    return path


def _build_application(
    spec: BackboneSpec, name: str, image_size: int, weights: str | Path | None
) -> keras.Model:
    constructor: Callable[..., keras.Model] = getattr(keras.applications, spec.application)
    # A local file is the one Keras itself would download (or save_weights of the same
    # application), so the constructor loads it as it loads its own download.
    weights_arg = str(weights) if isinstance(weights, Path) else weights
    try:
        with _download_timeout():
            return constructor(
                include_top=False, weights=weights_arg, input_shape=(image_size, image_size, 3)
            )
    except Exception as err:
        if weights == "imagenet" and _is_download_failure(err):
            raise _download_error(name, err) from err
        raise


def _build_vit_backbone(
    spec: BackboneSpec, name: str, image_size: int, weights: str | Path | None
) -> keras.Model:
    model = _build_vit(spec.vit, image_size, name, spec.scale, spec.offset)
    if weights == "imagenet":
        origin = spec.vit_imagenet_url
        try:
            with _download_timeout():
                weights = Path(
                    keras.utils.get_file(origin.rsplit("/", 1)[1], origin, cache_subdir="models")
                )
        except Exception as err:
            if _is_download_failure(err):
                raise _download_error(name, err) from err
            raise
    if weights is not None:
        load_vit_npz(model, weights)
    return model


def _build_tiny_cnn(filters: tuple[int, ...], image_size: int) -> keras.Model:
    image = keras.Input((image_size, image_size, 3), name="image")
    x = image
    for i, n in enumerate(filters, start=1):
        x = layers.Conv2D(n, 3, strides=2, padding="same", activation="relu", name=f"conv{i}")(x)
    return keras.Model(image, x, name="tiny_cnn_body")


def build_backbone(name: str, image_size: int, weights: str | Path | None = None) -> keras.Model:
    """One backbone from ``BACKBONES``: [0, 1] image -> feature map ("maps") or vector ("token").

    ``weights``: None/"none" (random), "imagenet" (downloaded, or Keras' cache), or a local
    file: the application's ``.h5``/``.weights.h5``/``.keras`` file, or an original ViT
    ``.npz``. An unreachable download raises a ``SkinkdError`` within seconds.
    """
    if name not in BACKBONES:
        raise ConfigError(
            f"teacher.backbones: unknown backbone {name!r}; one of {', '.join(BACKBONES)}"
        )
    spec = BACKBONES[name]
    source = _weights_source(name, weights)
    if spec.vit is not None:
        # The ViT scales its own input, with layer names the .npz loader relies on.
        model = _build_vit_backbone(spec, name, image_size, source)
        log.info("backbone %s: %d parameters, weights %s", name, model.count_params(), source)
        return model
    if spec.application is not None:
        body = _build_application(spec, name, image_size, source)
    else:
        body = _build_tiny_cnn(spec.cnn_filters, image_size)
    image = keras.Input((image_size, image_size, 3), name="image")
    x = image
    if (spec.scale, spec.offset) != (1.0, 0.0):
        x = layers.Rescaling(spec.scale, offset=spec.offset, name="input_scaling")(x)
    model = keras.Model(image, body(x), name=name)
    log.info("backbone %s: %d parameters, weights %s", name, model.count_params(), source)
    return model


# ---------------------------------------------------------------------------------------
# Teacher


def build_teacher_head(
    feature_shapes: Mapping[str, tuple[int, ...]],
    kinds: Mapping[str, str],
    se_reduction: int = 8,
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
    logits = layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, logits, name="teacher_head")


def build_teacher(
    backbones: list[str],
    image_size: int,
    weights: Mapping[str, str | Path | None],
    trainable_backbones: bool = False,
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
    )
    return keras.Model(image, head(features), name="teacher")


def extract_features(
    backbone_models: Mapping[str, keras.Model],
    images: np.ndarray,
    batch_size: int,
    augmenter: Callable | None = None,
) -> dict[str, np.ndarray]:
    """Each backbone's features of uint8 images (n, S, S, 3), as float16 (half the cache).

    ``augmenter`` (optional) is applied to each [0, 1] float batch before the backbones.
    """
    features = {
        name: np.empty((len(images), *model.output.shape[1:]), dtype=np.float16)
        for name, model in backbone_models.items()
    }
    for start in range(0, len(images), batch_size):
        batch = rescale(images[start : start + batch_size])
        if augmenter is not None:
            batch = keras.ops.convert_to_numpy(augmenter(batch))
        for name, model in backbone_models.items():
            features[name][start : start + len(batch)] = model.predict_on_batch(batch)
        log.debug("features: %d / %d images", start + len(batch), len(images))
    return features


def load_model(path: str | Path) -> keras.Model:
    """Load a saved ``.keras`` model of this project (its custom layers are registered by
    importing this module)."""
    return keras.models.load_model(path)
