"""TFLite export (float16, int8), the ai_edge_litert classifier and the model card."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from skinkd.edge.export import TFLiteClassifier, export_tflite, read_model_card, write_model_card
from skinkd.errors import DataError, SkinkdError
from skinkd.nn.models import with_binary_output
from skinkd.student.network import build_student

PROJECT = Path(__file__).resolve().parents[1]
SIZE = 32


def lesion_images(n: int, seed: int, mixed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Skin-coloured uint8 images with a disc, dark and large (label 1) or light and small (0).

    ``mixed``: each disc lies somewhere between the two kinds (label 1 past halfway), so the
    model's probabilities spread over (0, 1) rather than sitting at 0 and 1. Every image
    holds pure black and pure white pixels (a ruler mark, a highlight): the full [0, 255]
    range, as in preprocessed lesion images.
    """
    rng = np.random.default_rng(seed)
    mix = rng.uniform(0, 1, n) if mixed else (np.arange(n) % 2).astype(float)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    images = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for k, m in enumerate(mix):
        skin = rng.normal([200, 160, 140], 12, size=(SIZE, SIZE, 3))
        cy, cx = rng.uniform(11, 21, size=2)
        radius = rng.uniform(4, 7) + 4 * m
        colour = rng.normal(np.array([160, 120, 100]) - m * np.array([90, 75, 65]), 10)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        skin[disc] = colour + rng.normal(0, 8, size=(int(disc.sum()), 3))
        skin[0, :3] = 0
        skin[-1, -3:] = 255
        images[k] = np.clip(np.round(skin), 0, 255).astype(np.uint8)
    return images, (mix > 0.5).astype(np.int64)


def require_tensorflow_backend() -> None:
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TFLite export needs KERAS_BACKEND=tensorflow")


def keras_logits(model: keras.Model, images: np.ndarray) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(images.astype(np.float32) / 255.0, training=False))


def softmax_malignant(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e[:, 1] / e.sum(axis=1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A 32-px student trained briefly to separate the two kinds of disc, then exported."""
    require_tensorflow_backend()
    keras.utils.set_random_seed(0)
    train_images, train_labels = lesion_images(192, seed=1)
    model = build_student(SIZE)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(train_images / np.float32(255), train_labels, epochs=12, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("export")
    paths = SimpleNamespace(
        keras=folder / "student.keras",
        fp16=folder / "student_fp16.tflite",
        int8=folder / "student_int8.tflite",
    )
    model.save(paths.keras)
    export_tflite(model, paths.fp16, paths.int8, representative=train_images[:64])
    test_images, test_labels = lesion_images(96, seed=2, mixed=True)
    return SimpleNamespace(
        model=model,
        paths=paths,
        images=test_images,
        labels=test_labels,
        logits=keras_logits(model, test_images),
    )


def test_student_learns_the_structured_sample(exported: SimpleNamespace) -> None:
    # The agreement tests below mean something only if the student separates the classes.
    predicted = exported.logits.argmax(axis=1)
    assert np.mean(predicted == exported.labels) >= 0.8
    assert set(predicted) == {0, 1}


def tflite_ops(path: Path) -> set[str]:
    from ai_edge_litert.interpreter import Interpreter

    return {op["op_name"] for op in Interpreter(model_path=str(path))._get_ops_details()}


def test_seven_class_student_exports_its_class_logits_and_collapses_them_in_float(
    tmp_path: Path,
) -> None:
    """A seven-output student's files hold its seven logits, without the log-sum-exp
    collapse (its LOG, SUM and GATHER ops stay out of the quantised graph); with the card's
    malignant outputs, TFLiteClassifier gives the Keras model's P(malignant)."""
    require_tensorflow_backend()
    keras.utils.set_random_seed(1)
    malignant = [True, True, False, False, True, False, False]
    images, labels = lesion_images(64, seed=3)
    student = with_binary_output(build_student(SIZE, num_classes=7), malignant)
    fp16, int8 = tmp_path / "fp16.tflite", tmp_path / "int8.tflite"
    export_tflite(student, fp16, int8, representative=images[:32])
    expected = softmax_malignant(keras_logits(student, images))
    for path, tolerance in ((fp16, 1e-3), (int8, 0.1)):
        with pytest.raises(DataError, match="7 outputs"):
            TFLiteClassifier(path).predict_logits(images)
        with pytest.raises(DataError, match="malignant_outputs names 2"):
            TFLiteClassifier(path, malignant=[False, True])
        classifier = TFLiteClassifier(path, malignant=malignant)
        assert classifier.predict_class_logits(images).shape == (64, 7)
        logits = classifier.predict_logits(images)
        assert logits.shape == (64, 2)
        assert np.abs(softmax_malignant(logits) - expected).max() <= tolerance, path.name
        assert not tflite_ops(path) & {"LOG", "SUM", "GATHER"}, path.name  # the log-sum-exp


def test_tflite_files_are_smaller_than_the_keras_file(exported: SimpleNamespace) -> None:
    keras_bytes = exported.paths.keras.stat().st_size
    fp16_bytes = exported.paths.fp16.stat().st_size
    int8_bytes = exported.paths.int8.stat().st_size
    assert int8_bytes < fp16_bytes < keras_bytes
    # 163,362 weights: 2 bytes each in float16, about 1 in int8 (biases stay int32).
    assert 2 * 163_362 <= fp16_bytes < 2 * 163_362 + 20_000
    assert 163_362 <= int8_bytes < 163_362 + 40_000


def test_float16_logits_match_keras_within_1e_2(exported: SimpleNamespace) -> None:
    logits = TFLiteClassifier(exported.paths.fp16).predict_logits(exported.images)
    assert logits.shape == (len(exported.images), 2)
    assert logits.dtype == np.float32
    assert np.max(np.abs(logits - exported.logits)) <= 1e-2


def test_int8_labels_and_probabilities_agree_with_keras(exported: SimpleNamespace) -> None:
    logits = TFLiteClassifier(exported.paths.int8).predict_logits(exported.images)
    assert logits.shape == (len(exported.images), 2)
    assert np.mean(logits.argmax(axis=1) == exported.logits.argmax(axis=1)) >= 0.95
    # Stated tolerance: 8-bit activations move a probability by at most 0.1 (0.07 measured),
    # by 0.01 on average (0.003 measured).
    prob_difference = np.abs(softmax_malignant(logits) - softmax_malignant(exported.logits))
    assert prob_difference.max() <= 0.1
    assert prob_difference.mean() <= 0.01


def test_int8_model_takes_raw_uint8_pixels(exported: SimpleNamespace) -> None:
    interpreter = Interpreter(model_path=str(exported.paths.int8))
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    assert inp["dtype"] == np.uint8
    scale, zero_point = inp["quantization"]
    assert scale == pytest.approx(1 / 255) and zero_point == 0
    assert out["dtype"] == np.float32
    # Pixels fed as they are, one image at a time, give the classifier's logits.
    by_hand = []
    for image in exported.images[:5]:
        interpreter.set_tensor(inp["index"], image[np.newaxis])
        interpreter.invoke()
        by_hand.append(interpreter.get_tensor(out["index"])[0])
    classifier = TFLiteClassifier(exported.paths.int8)
    np.testing.assert_array_equal(classifier.predict_logits(exported.images[:5]), by_hand)


def test_predict_logits_does_not_depend_on_the_batch_size(exported: SimpleNamespace) -> None:
    classifier = TFLiteClassifier(exported.paths.fp16)
    whole = classifier.predict_logits(exported.images[:10], batch_size=10)
    for batch_size in (1, 3, 32):
        np.testing.assert_allclose(
            classifier.predict_logits(exported.images[:10], batch_size=batch_size),
            whole,
            atol=1e-5,
        )


def test_quantized_output_is_dequantized_with_its_scale_and_zero_point(
    exported: SimpleNamespace, tmp_path: Path
) -> None:
    import tensorflow as tf

    # An int8-in, int8-out variant (not what export_tflite writes, but a valid device choice).
    exported.model.export(tmp_path / "saved", format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(tmp_path / "saved"), signature_keys=["serving_default"]
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    calibration = exported.images[:32].astype(np.float32) / 255.0
    converter.representative_dataset = lambda: ([image[np.newaxis]] for image in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path / "int8_io.tflite"
    path.write_bytes(converter.convert())

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert inp["quantization"] == (pytest.approx(1 / 255), -128)
    scale, zero_point = out["quantization"]
    by_hand = []
    for image in exported.images[:5]:
        # int8 input, scale 1/255 and zero point -128: the pixel shifted by -128.
        interpreter.set_tensor(inp["index"], (image.astype(np.int16) - 128).astype(np.int8)[None])
        interpreter.invoke()
        by_hand.append(
            (interpreter.get_tensor(out["index"])[0].astype(np.float32) - zero_point) * scale
        )

    logits = TFLiteClassifier(path).predict_logits(exported.images)
    np.testing.assert_allclose(logits[:5], by_hand, rtol=1e-6)
    assert np.max(np.abs(logits - exported.logits)) <= 0.1 * np.abs(exported.logits).max()


def test_classifier_rejects_float_or_wrongly_sized_images(exported: SimpleNamespace) -> None:
    classifier = TFLiteClassifier(exported.paths.fp16)
    assert classifier.input_size == SIZE
    with pytest.raises(SkinkdError, match="uint8"):
        classifier.predict_logits(exported.images.astype(np.float32) / 255)
    with pytest.raises(SkinkdError, match=f"\\(n, {SIZE}, {SIZE}, 3\\)"):
        classifier.predict_logits(exported.images[:, :16, :16])


def test_export_rejects_representative_images_of_another_size(
    exported: SimpleNamespace, tmp_path: Path
) -> None:
    with pytest.raises(SkinkdError, match="representative images"):
        export_tflite(
            exported.model,
            tmp_path / "a.tflite",
            tmp_path / "b.tflite",
            np.zeros((4, 48, 48, 3), np.uint8),
        )
    assert not list(tmp_path.iterdir())


def test_export_refuses_non_finite_weights(tmp_path: Path) -> None:
    require_tensorflow_backend()
    model = build_student(SIZE)
    kernel = model.get_layer("conv3").kernel
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    with pytest.raises(SkinkdError, match="conv3/kernel.*NaN"):
        export_tflite(
            model,
            tmp_path / "a.tflite",
            tmp_path / "b.tflite",
            np.zeros((2, SIZE, SIZE, 3), np.uint8),
        )
    assert not list(tmp_path.iterdir())


def test_classifier_needs_neither_tensorflow_nor_keras(
    exported: SimpleNamespace, tmp_path: Path
) -> None:
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from skinkd.edge.export import TFLiteClassifier, read_model_card
        images = np.load({str(tmp_path / "images.npy")!r})
        logits = TFLiteClassifier({str(exported.paths.fp16)!r}).predict_logits(images)
        print(json.dumps({{
            "heavy": sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")),
            "logits": logits.tolist(),
        }}))
        """)
    np.save(tmp_path / "images.npy", exported.images[:4])
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT, capture_output=True, text=True, check=True
    )
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["heavy"] == []
    np.testing.assert_allclose(answer["logits"], exported.logits[:4], atol=1e-2)


def test_export_refuses_another_keras_backend(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import numpy as np
        from skinkd.errors import DataError, SkinkdError
        from skinkd.edge.export import export_tflite
        from skinkd.student.network import build_student
        try:
            export_tflite(build_student({SIZE}), {str(tmp_path / "a.tflite")!r},
                          {str(tmp_path / "b.tflite")!r}, np.zeros((2, {SIZE}, {SIZE}, 3), np.uint8))
        except SkinkdError as err:
            print("SkinkdError:", err)
        """)
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "SkinkdError:" in result.stdout
    assert "KERAS_BACKEND=tensorflow" in result.stdout and "'torch'" in result.stdout
    assert not list(tmp_path.iterdir())


def test_224_px_student_meets_the_size_targets(tmp_path: Path) -> None:
    require_tensorflow_backend()
    keras.utils.set_random_seed(0)
    model = build_student(224)
    # Zero biases (as initialised) would be stored once and shared; trained ones are not.
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.01, layer.bias.shape).astype(np.float32))
    representative = np.random.default_rng(0).integers(0, 256, (4, 224, 224, 3), np.uint8)
    export_tflite(model, tmp_path / "fp16.tflite", tmp_path / "int8.tflite", representative)
    model.save(tmp_path / "student.keras")
    keras_bytes = (tmp_path / "student.keras").stat().st_size
    fp16_bytes = (tmp_path / "fp16.tflite").stat().st_size
    int8_bytes = (tmp_path / "int8.tflite").stat().st_size
    print(f"224-px student: keras {keras_bytes}, fp16 {fp16_bytes}, int8 {int8_bytes} bytes")
    assert fp16_bytes <= 340_000
    assert int8_bytes <= 200_000
    assert TFLiteClassifier(tmp_path / "int8.tflite").input_size == 224


def card_arguments(tmp_path: Path) -> dict:
    model_file = tmp_path / "student" / "student.keras"
    model_file.parent.mkdir()
    model_file.write_bytes(b"k" * 1234)
    tflite_file = tmp_path / "export" / "student_fp16.tflite"
    tflite_file.parent.mkdir()
    tflite_file.write_bytes(bytes(range(256)) * 3)
    return {
        "image_size": 224,
        "preprocessing": {"image_size": 224, "closing": {"kernel_size": 5}},
        "class_names": ["benign", "malignant"],
        "threshold": 0.5,
        "threshold_choice": {"split": "val", "target_sensitivity": 0.9},
        "files": {"keras": model_file, "tflite_fp16": tflite_file},
        "test_metrics": {"accuracy": np.float64(0.875), "tp": np.int64(7), "roc": np.array([1, 2])},
        "training_data": {"dataset": "synthetic", "n_train": 70},
        "config_hash": "abc123",
    }


def test_model_card_round_trip_measures_the_files(tmp_path: Path) -> None:
    card_path = tmp_path / "export" / "model_card.json"
    written = write_model_card(card_path, **card_arguments(tmp_path))
    assert read_model_card(card_path) == written
    files = written["files"]
    assert files["keras"] == {
        "path": "../student/student.keras",
        "bytes": 1234,
        "sha256": hashlib.sha256(b"k" * 1234).hexdigest(),
    }
    assert files["tflite_fp16"]["path"] == "student_fp16.tflite"
    assert files["tflite_fp16"]["bytes"] == 768
    assert written["test_metrics"] == {"accuracy": 0.875, "tp": 7, "roc": [1, 2]}
    assert written["class_names"] == ["benign", "malignant"]
    assert written["config_hash"] == "abc123"


def test_model_card_is_byte_identical_when_rewritten(tmp_path: Path) -> None:
    card_path = tmp_path / "export" / "model_card.json"
    arguments = card_arguments(tmp_path)
    write_model_card(card_path, **arguments)
    first = card_path.read_bytes()
    write_model_card(card_path, **arguments)
    assert card_path.read_bytes() == first


def test_model_card_missing_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    card_path = tmp_path / "export" / "model_card.json"
    card = write_model_card(card_path, **card_arguments(tmp_path))
    del card["threshold"]
    del card["files"]["keras"]["sha256"]
    card_path.write_text(json.dumps(card))
    with pytest.raises(SkinkdError, match="threshold") as err:
        read_model_card(card_path)
    assert str(card_path) in str(err.value)
    card["threshold"] = 0.5
    card_path.write_text(json.dumps(card))
    with pytest.raises(SkinkdError, match=r"files\.keras lacks the key\(s\) sha256"):
        read_model_card(card_path)


def test_model_card_refuses_a_missing_file_and_invalid_json(tmp_path: Path) -> None:
    arguments = card_arguments(tmp_path)
    arguments["files"]["tflite_int8"] = tmp_path / "export" / "absent.tflite"
    with pytest.raises(SkinkdError, match="absent.tflite"):
        write_model_card(tmp_path / "card.json", **arguments)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(SkinkdError, match="broken.json.*not valid JSON"):
        read_model_card(tmp_path / "broken.json")


def test_bounded_selu_is_selu_and_survives_int8_where_keras_selu_does_not(tmp_path: Path) -> None:
    """bounded_selu equals Keras' SELU in value and gradient, and the student uses it. In
    int8, Keras' SELU quantises its exp branch over exp of the largest input, so its
    negative outputs vanish; bounded_selu keeps them. The probe: an image's mean brightness
    m drives one SELU unit z = 40 m - 8 (from -8 to 32), and P(malignant) = sigmoid(selu(z))."""
    require_tensorflow_backend()
    import tensorflow as tf

    from skinkd.nn.models import bounded_selu

    x = np.linspace(-12, 12, 241, dtype=np.float32)
    np.testing.assert_allclose(bounded_selu(x), keras.activations.selu(x), rtol=1e-6, atol=1e-6)
    grads = []
    for activation in (bounded_selu, keras.activations.selu):
        tensor = tf.constant(x[x != 0])
        with tf.GradientTape() as tape:
            tape.watch(tensor)
            y = activation(tensor)
        grads.append(tape.gradient(y, tensor).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-6)
    assert {build_student(SIZE).get_layer(f"dense{n}").activation for n in (256, 128, 32)} == {
        bounded_selu
    }

    brightness = np.linspace(0, 1, 101)
    images = np.broadcast_to((brightness * 255).round().astype(np.uint8)[:, None, None, None],
                             (101, SIZE, SIZE, 3)).copy()  # fmt: skip
    z = 40 * (images[:, 0, 0, 0] / 255.0) - 8
    errors = {}
    for name, activation in (("bounded", bounded_selu), ("keras", "selu")):
        image = keras.Input((SIZE, SIZE, 3))
        pooled = keras.layers.GlobalAveragePooling2D()(image)
        unit = keras.layers.Dense(1, activation=activation)(pooled)
        model = keras.Model(image, keras.layers.Dense(2)(unit))
        model.layers[2].set_weights([np.array([[40.0], [0.0], [0.0]]), np.array([-8.0])])
        model.layers[3].set_weights([np.array([[0.0, 1.0]]), np.zeros(2)])
        int8 = tmp_path / f"{name}.tflite"
        export_tflite(model, tmp_path / f"{name}_fp16.tflite", int8, representative=images)
        probability = softmax_malignant(TFLiteClassifier(int8).predict_logits(images))
        expected = 1 / (1 + np.exp(-keras.activations.selu(z.astype(np.float32)).numpy()))
        negative = z < -0.5
        errors[name] = float(np.abs(probability - expected)[negative].max())
    assert errors["bounded"] < 0.03 and errors["keras"] > 0.1
