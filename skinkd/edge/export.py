"""TFLite export of the student, an edge runtime for the exported files, and the model card.

``export_tflite`` converts a Keras model (TensorFlow backend) to two TFLite files:

- float16: weights stored as float16 (the paper's post-training quantisation), float32
  input and output, so it takes the same [0, 1] images as the Keras model;
- int8 (our addition): full-integer quantisation calibrated on training images. Its input is
  **uint8** and its output **float32** logits. The calibrated input range is [0, 1] (pixels
  rescaled by 1/255, and real lesion images reach white after the highlight stage), so the
  input scale is 1/255 with zero point 0: the raw uint8 pixels are the model's input, with
  no float conversion on the device. The output is dequantised in the graph (two numbers,
  negligible cost) so logits are comparable with the other models without the caller
  knowing the output scale. ``TFLiteClassifier`` still reads every tensor's scale and zero
  point, so files converted with other choices run correctly too.

A seven-class student's files output its seven class logits; ``TFLiteClassifier`` turns
them into benign/malignant logits with the card's ``malignant_outputs``.

``TFLiteClassifier`` and the model card need only numpy and ``ai_edge_litert`` (edge
devices): TensorFlow and Keras are imported inside ``export_tflite`` alone.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from skinkd import __version__
from skinkd.atomic import atomic_path, write_text
from skinkd.data.classes import binary_logits
from skinkd.data.hashing import file_sha256
from skinkd.data.labelled import LABEL_NAMES
from skinkd.data.preprocess import rescale
from skinkd.errors import ConfigError, DataError, SkinkdError

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

MODEL_CARD_KEYS = (
    "image_size",
    "preprocessing",
    "class_names",
    "threshold",
    "threshold_choice",
    "files",
    "test_metrics",
    "training_data",
    "config_hash",
)
_FILE_KEYS = ("path", "bytes", "sha256")


def _check_images(images: np.ndarray, image_size: int, what: str) -> None:
    expected = (image_size, image_size, 3)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != expected:
        raise SkinkdError(
            f"{what} must be uint8 images of shape (n, {image_size}, {image_size}, 3); "
            f"got {images.dtype} {images.shape}"
        )


def export_tflite(
    model: keras.Model,
    out_fp16: Path,
    out_int8: Path,
    representative: np.ndarray,
    out_fp32: Path | None = None,
) -> None:
    """Write the float16 and the full-integer int8 TFLite files of ``model`` atomically
    (and an unoptimised float32 one to ``out_fp32``, for benchmarks).

    A seven-class student is saved with its logits collapsed to benign/malignant
    (``MalignantLogits``, a log-sum-exp); the files hold the network below that layer, its
    class logits, and ``TFLiteClassifier`` collapses them in float, where the collapse is
    exact: inside an int8 graph its exponentials and logarithms are quantised too
    (``bench/int8.py`` measures the int8 file against Keras with the collapse inside and
    outside the graph).

    ``representative``: uint8 training images (n, S, S, 3), rescaled to [0, 1] here as in
    training, on which the int8 activation ranges are calibrated.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise SkinkdError(
            "TFLite export needs the TensorFlow backend of Keras (set KERAS_BACKEND=tensorflow); "
            f"the active backend is {keras.backend.backend()!r}"
        )
    import tensorflow as tf

    non_finite = [weight.path for weight in model.weights if not np.isfinite(weight.numpy()).all()]
    if non_finite:
        # The int8 calibration crashes the process (segmentation fault) on such weights.
        raise SkinkdError(
            f"cannot export: the weights {', '.join(non_finite)} hold NaN or infinite values "
            "(the training diverged)"
        )
    model = class_logits_network(model)
    image_size = int(model.input_shape[1])
    _check_images(representative, image_size, "the representative images")
    if len(representative) == 0:
        raise SkinkdError("int8 export needs at least one representative image; got none")

    def representative_dataset() -> Iterator[list[np.ndarray]]:
        for image in representative:
            yield [rescale(image[np.newaxis])]

    with tempfile.TemporaryDirectory(prefix="skinkd-export-") as tmp:
        saved_model = Path(tmp) / "saved_model"
        model.export(saved_model, format="tf_saved_model", verbose=False)

        def converter(optimize: bool = True) -> tf.lite.TFLiteConverter:
            # Keras writes the same function under "serve" and "serving_default": convert one.
            conv = tf.lite.TFLiteConverter.from_saved_model(
                str(saved_model), signature_keys=["serving_default"]
            )
            if optimize:
                conv.optimizations = [tf.lite.Optimize.DEFAULT]
            return conv

        if out_fp32 is not None:
            _write_bytes(converter(optimize=False).convert(), out_fp32)

        fp16 = converter()
        fp16.target_spec.supported_types = [tf.float16]
        _write_bytes(fp16.convert(), out_fp16)

        int8 = converter()
        int8.representative_dataset = representative_dataset
        int8.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        int8.inference_input_type = tf.uint8
        int8.inference_output_type = tf.float32
        _write_bytes(int8.convert(), out_int8)

    scale, zero_point = TFLiteClassifier(out_int8).input_quantization
    if not (np.isclose(scale, 1 / 255) and zero_point == 0):
        # Still correct (the classifier requantises), but the device must then do the same.
        log.warning(
            "int8 input quantisation is scale %.6g, zero point %d rather than 1/255, 0: the "
            "representative images do not span [0, 1]",
            scale,
            zero_point,
        )
    log.info(
        "TFLite export: %s %d bytes, %s %d bytes (%d representative images)",
        out_fp16,
        Path(out_fp16).stat().st_size,
        out_int8,
        Path(out_int8).stat().st_size,
        len(representative),
    )


def class_logits_network(model: keras.Model) -> keras.Model:
    """``model`` without its final ``MalignantLogits`` layer (its class logits), or
    ``model`` itself when it has none (a two-class model)."""
    import keras

    from skinkd.nn.models import MalignantLogits

    if not isinstance(model.layers[-1], MalignantLogits):
        return model
    return keras.Model(model.input, model.layers[-1].input, name=model.name)


def _write_bytes(data: bytes, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


class TFLiteClassifier:
    """Runs an exported TFLite classifier on uint8 images with ``ai_edge_litert`` only.

    A model of more than two outputs (the seven diagnoses) needs ``malignant``, which of its
    outputs are malignant (the model card's ``malignant_outputs``), to give benign/malignant
    logits."""

    def __init__(
        self,
        path: str | os.PathLike,
        num_threads: int = 1,
        malignant: Sequence[bool] | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: TFLite model not found")
        self._interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = int(self._input["shape"][0])
        self.outputs = int(self._output["shape"][-1])
        self.malignant = None if malignant is None else tuple(bool(m) for m in malignant)
        if self.malignant is not None and len(self.malignant) != self.outputs:
            raise DataError(
                f"{self.path}: the model has {self.outputs} outputs but malignant_outputs "
                f"names {len(self.malignant)}"
            )

    @property
    def input_size(self) -> int:
        """The square image size S of the (n, S, S, 3) input."""
        return int(self._input["shape"][1])

    @property
    def input_quantization(self) -> tuple[float, int]:
        """(scale, zero point) of the input; (0.0, 0) for a float input."""
        scale, zero_point = self._input["quantization"]
        return float(scale), int(zero_point)

    def predict_logits(self, images_uint8: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Benign/malignant logits (n, 2) float32 of uint8 images (n, S, S, 3)."""
        if self.outputs != 2 and self.malignant is None:
            raise DataError(
                f"{self.path}: the model has {self.outputs} outputs; reading P(malignant) needs "
                "which of them are malignant (the model card's malignant_outputs)"
            )
        logits = self.predict_class_logits(images_uint8, batch_size)
        if self.outputs == 2:
            return logits
        return binary_logits(logits, self.malignant).astype(np.float32)

    def predict_class_logits(self, images_uint8: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """The model's own logits (n, outputs) float32, ``batch_size`` images at a time."""
        _check_images(images_uint8, self.input_size, "TFLiteClassifier input")
        logits = np.empty((len(images_uint8), self.outputs), np.float32)
        for start in range(0, len(images_uint8), batch_size):
            chunk = images_uint8[start : start + batch_size]
            self._resize(len(chunk))
            self._interpreter.set_tensor(self._input["index"], self._quantize_input(chunk))
            self._interpreter.invoke()
            output = self._interpreter.get_tensor(self._output["index"])
            logits[start : start + len(chunk)] = self._dequantize_output(output)
        return logits

    def _resize(self, batch: int) -> None:
        # Keras exports a dynamic batch dimension; the interpreter plans for one batch size.
        if batch != self._batch:
            self._interpreter.resize_tensor_input(
                self._input["index"], [batch, *self._input["shape"][1:]]
            )
            self._interpreter.allocate_tensors()
            self._batch = batch

    def _quantize_input(self, images: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        floats = rescale(images)
        if not np.issubdtype(dtype, np.integer):
            return floats.astype(dtype)
        scale, zero_point = self.input_quantization
        # With scale 1/255 and zero point 0 this gives back the uint8 pixels exactly.
        info = np.iinfo(dtype)
        quantized = np.round(floats / np.float32(scale)) + zero_point
        return np.clip(quantized, info.min, info.max).astype(dtype)

    def _dequantize_output(self, values: np.ndarray) -> np.ndarray:
        if not np.issubdtype(values.dtype, np.integer):
            return values.astype(np.float32)
        scale, zero_point = self._output["quantization"]
        return ((values.astype(np.float32) - zero_point) * np.float32(scale)).astype(np.float32)


def _json_default(value: Any) -> Any:
    # Metrics computed with numpy arrive as numpy scalars or arrays.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_model_card(
    path: str | os.PathLike,
    *,
    image_size: int,
    preprocessing: Mapping[str, Any],
    class_names: list[str],
    threshold: float,
    threshold_choice: Mapping[str, Any],
    files: Mapping[str, str | os.PathLike],
    test_metrics: Mapping[str, Any],
    training_data: Mapping[str, Any],
    config_hash: str,
    output_classes: Sequence[str] = LABEL_NAMES,
    malignant_outputs: Sequence[bool] = (False, True),
) -> dict[str, Any]:
    """Write the model card (JSON) beside the exported models; returns it as read back.

    ``files`` maps a name ("keras", "tflite_fp16", ...) to a file, recorded by its path
    relative to the card's folder, its measured size in bytes and its SHA-256. No time
    stamp, so the same inputs give a byte-identical card.
    """
    card_path = Path(path)
    if "image_size" in preprocessing and int(preprocessing["image_size"]) != image_size:
        raise ConfigError(
            f"{card_path}: preprocessing.image_size {preprocessing['image_size']} differs "
            f"from the model's image_size {image_size}"
        )
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"{card_path}: threshold {threshold} is not in [0, 1]")
    if len(output_classes) != len(malignant_outputs):
        raise ConfigError(
            f"{card_path}: {len(output_classes)} output classes but {len(malignant_outputs)} "
            "malignant_outputs"
        )
    recorded = {}
    for name, file in files.items():
        file = Path(file)
        if not file.is_file():
            raise DataError(f"{file}: file {name!r} of the model card {card_path} not found")
        recorded[name] = {
            "path": Path(os.path.relpath(file.resolve(), card_path.resolve().parent)).as_posix(),
            "bytes": file.stat().st_size,
            "sha256": file_sha256(file),
        }
    card = {
        "skinkd_version": __version__,
        "image_size": image_size,
        "preprocessing": dict(preprocessing),
        "class_names": list(class_names),
        # What the TFLite files output; P(malignant) sums the malignant outputs' softmax.
        "output_classes": list(output_classes),
        "malignant_outputs": [bool(m) for m in malignant_outputs],
        "threshold": threshold,
        "threshold_choice": dict(threshold_choice),
        "files": recorded,
        "test_metrics": dict(test_metrics),
        "training_data": dict(training_data),
        "config_hash": config_hash,
    }
    text = json.dumps(card, indent=2, default=_json_default) + "\n"
    write_text(text, card_path)
    return json.loads(text)


def read_model_card(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a model card written by ``write_model_card``."""
    card_path = Path(path)
    try:
        card = json.loads(card_path.read_text())
    except FileNotFoundError:
        raise DataError(f"{card_path}: model card not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{card_path}: model card is not valid JSON ({err})") from None
    if not isinstance(card, dict):
        raise DataError(f"{card_path}: model card must be a JSON object")
    missing = [key for key in MODEL_CARD_KEYS if key not in card]
    if missing:
        raise DataError(f"{card_path}: model card lacks the key(s) {', '.join(missing)}")
    # Cards written before seven-output exports describe two-output files.
    card.setdefault("output_classes", list(LABEL_NAMES))
    card.setdefault("malignant_outputs", [name == LABEL_NAMES[1] for name in card["output_classes"]])
    if not isinstance(card["files"], dict):
        raise DataError(f"{card_path}: model card 'files' must be an object")
    for name, entry in card["files"].items():
        lacking = [key for key in _FILE_KEYS if not isinstance(entry, dict) or key not in entry]
        if lacking:
            raise DataError(
                f"{card_path}: model card files.{name} lacks the key(s) {', '.join(lacking)}"
            )
    return card
