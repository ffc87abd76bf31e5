"""Student, backbones, fusion head and teacher: sizes, shapes, weights loading, failures."""

from __future__ import annotations

import dataclasses
import socket
import time

import keras
import numpy as np
import pytest

from skinkd.data.augment import compose_transforms
from skinkd.data.preprocess import rescale
from skinkd.errors import ConfigError, DataError, SkinkdError
from skinkd.student.network import build_student
from skinkd.teacher.backbones import registry
from skinkd.teacher.backbones.registry import BACKBONES, build_backbone
from skinkd.teacher.models import build_teacher, build_teacher_head, extract_features
from skinkd.teacher.presets import TEACHER_PRESETS

# Parameter counts of the published architectures, include_top=False / without the head.
REFERENCE_BACKBONE_PARAMS = {
    "resnet152v2": 58_331_648,
    "convnext_base": 87_566_464,
    "vit_b16": 85_798_656,
}


def conv_params(k: int, c_in: int, c_out: int) -> int:
    return k * k * c_in * c_out + c_out


def dense_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def student_params(flat_features: int) -> int:
    """The student's count by hand: three 3x3 convs, then 256-128-32-2 dense layers."""
    convs = conv_params(3, 3, 32) + conv_params(3, 32, 64) + conv_params(3, 64, 128)
    dense = (
        dense_params(flat_features, 256)
        + dense_params(256, 128)
        + dense_params(128, 32)
        + dense_params(32, 2)
    )
    return convs + dense


def trainable_count(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def random_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# --- student ---------------------------------------------------------------------------


@pytest.mark.parametrize("image_size", [32, 64, 224])
@pytest.mark.parametrize("conversion", ["gap", "gmp"])
def test_student_has_163362_parameters_at_any_size(image_size, conversion):
    model = build_student(image_size, conversion)
    assert student_params(128) == 163_362
    assert model.count_params() == 163_362


@pytest.mark.parametrize("image_size", [32, 64, 224])
def test_student_flatten_parameters_grow_with_image_size(image_size):
    side = image_size
    for _ in range(3):  # valid 3x3 conv, then 2x2 max pool
        side = (side - 2) // 2
    model = build_student(image_size, "flatten")
    assert model.count_params() == student_params(side * side * 128)
    assert model.count_params() > 163_362


def test_student_returns_two_unnormalised_logits_per_image():
    model = build_student(48, "gmp")
    logits = keras.ops.convert_to_numpy(model(rescale(random_images(5, 48))))
    assert logits.shape == (5, 2)
    assert np.all(np.isfinite(logits))
    assert model.layers[-1].activation is keras.activations.linear


def test_unknown_feature_conversion_is_a_config_error():
    with pytest.raises(ConfigError, match="feature_conversion"):
        build_student(32, "max")


# --- registry --------------------------------------------------------------------------


def test_presets_name_registered_backbones_and_paper_mixes_maps_and_token():
    for backbones in TEACHER_PRESETS.values():
        assert set(backbones) <= set(BACKBONES)
    assert TEACHER_PRESETS["paper"] == ["resnet152v2", "convnext_base", "vit_b16"]
    assert [BACKBONES[n].kind for n in TEACHER_PRESETS["paper"]] == ["maps", "maps", "token"]
    assert {BACKBONES[n].kind for n in TEACHER_PRESETS["tiny"]} == {"maps", "token"}


def test_tiny_backbones_output_a_7x7_map_and_a_token_at_224_px():
    assert build_backbone("tiny_cnn", 224).output.shape[1:3] == (7, 7)
    assert len(build_backbone("tiny_vit", 224).output.shape) == 2


# --- teacher ---------------------------------------------------------------------------


def test_paper_teacher_has_3395010_trainable_parameters_and_the_reference_total():
    teacher = build_teacher(TEACHER_PRESETS["paper"], 224, {})
    channels, token = 2048 + 1024, 768
    head_trainable = (
        2 * channels  # BatchNorm gamma, beta
        + dense_params(channels, channels // 8)
        + dense_params(channels // 8, channels)
        + 2 * token
        + dense_params(channels + token, 256)
        + dense_params(256, 128)
        + dense_params(128, 64)
        + dense_params(64, 2)
    )
    head_moving_stats = 2 * (channels + token)
    assert head_trainable == 3_395_010
    assert trainable_count(teacher) == 3_395_010
    expected_total = sum(REFERENCE_BACKBONE_PARAMS.values()) + head_trainable + head_moving_stats
    assert teacher.count_params() == pytest.approx(expected_total, rel=0.01)


def test_tiny_teacher_gives_logits_and_trains_only_its_head():
    teacher = build_teacher(TEACHER_PRESETS["tiny"], 32, {"tiny_cnn": None, "tiny_vit": "none"})
    logits = keras.ops.convert_to_numpy(teacher(rescale(random_images(3, 32))))
    assert logits.shape == (3, 2)
    assert np.all(np.isfinite(logits))
    assert trainable_count(teacher) == trainable_count(teacher.get_layer("teacher_head"))
    unfrozen = build_teacher(TEACHER_PRESETS["tiny"], 32, {}, trainable_backbones=True)
    assert trainable_count(unfrozen) > trainable_count(teacher)


def test_teacher_equals_its_head_on_extracted_features():
    keras.utils.set_random_seed(1)
    teacher = build_teacher(TEACHER_PRESETS["tiny"], 32, {})
    backbones = {name: teacher.get_layer(name) for name in TEACHER_PRESETS["tiny"]}
    images = random_images(5, 32, seed=1)
    features = extract_features(backbones, images, batch_size=2)
    from_features = teacher.get_layer("teacher_head").predict_on_batch(features)
    from_images = teacher.predict_on_batch(rescale(images))
    # Features are cached as float16: about 3 significant digits.
    np.testing.assert_allclose(from_features, from_images, rtol=1e-2, atol=1e-2)


def test_extract_features_are_float16_of_the_warped_views():
    keras.utils.set_random_seed(2)
    backbone = build_backbone("tiny_cnn", 32)
    images = random_images(5, 32, seed=2)
    flips = compose_transforms(*np.zeros((2, 5)), np.ones(5, bool), *np.zeros((2, 5)))
    features = extract_features({"tiny_cnn": backbone}, images, 2, transforms=flips)
    expected = keras.ops.convert_to_numpy(backbone(rescale(images[:, :, ::-1])))
    assert features["tiny_cnn"].dtype == np.float16
    assert features["tiny_cnn"].shape == (5, 1, 1, 32)
    np.testing.assert_allclose(features["tiny_cnn"], expected.astype(np.float16), rtol=1e-3)


@pytest.mark.parametrize(
    ("shapes", "kinds"),
    [
        ({"m": (3, 3, 16)}, {"m": "maps"}),
        ({"t1": (8,), "t2": (4,)}, {"t1": "token", "t2": "token"}),
    ],
)
def test_head_builds_from_maps_only_or_tokens_only(shapes, kinds):
    head = build_teacher_head(shapes, kinds)
    batch = {name: np.ones((2, *shape), np.float32) for name, shape in shapes.items()}
    assert [i.name for i in head.inputs] == list(shapes)
    assert keras.ops.convert_to_numpy(head(batch)).shape == (2, 2)


def test_head_on_mismatched_spatial_sizes_names_the_backbones_and_sizes():
    with pytest.raises(ConfigError, match=r"spatial size.*resnet152v2 7x7, tiny_cnn 4x4"):
        build_teacher_head(
            {"resnet152v2": (7, 7, 2048), "tiny_cnn": (4, 4, 32)},
            {"resnet152v2": "maps", "tiny_cnn": "maps"},
        )


# --- weights ---------------------------------------------------------------------------


def write_original_vit_npz(model: keras.Model, path, extra: dict | None = None) -> None:
    """Save a Keras ViT under the names of Google's released ViT checkpoints."""

    def arr(variable):
        return variable.numpy()

    w = {
        "embedding/kernel": arr(model.get_layer("embedding").kernel),
        "embedding/bias": arr(model.get_layer("embedding").bias),
        "cls": arr(model.get_layer("cls").cls),
        "Transformer/posembed_input/pos_embedding": arr(
            model.get_layer("posembed_input").pos_embedding
        ),
        "Transformer/encoder_norm/scale": arr(model.get_layer("encoder_norm").gamma),
        "Transformer/encoder_norm/bias": arr(model.get_layer("encoder_norm").beta),
    }
    depth = sum(1 for layer in model.layers if layer.name.endswith("LayerNorm_0"))
    for i in range(depth):
        block = f"Transformer/encoderblock_{i}"
        for norm in ("LayerNorm_0", "LayerNorm_2"):
            layer = model.get_layer(f"encoderblock_{i}_{norm}")
            w[f"{block}/{norm}/scale"], w[f"{block}/{norm}/bias"] = arr(layer.gamma), arr(
                layer.beta
            )
        mha = model.get_layer(f"encoderblock_{i}_MultiHeadDotProductAttention_1")
        parts = {"query": mha.query_dense, "key": mha.key_dense, "value": mha.value_dense}
        parts["out"] = mha.output_dense
        for part, dense in parts.items():
            prefix = f"{block}/MultiHeadDotProductAttention_1/{part}"
            w[f"{prefix}/kernel"], w[f"{prefix}/bias"] = arr(dense.kernel), arr(dense.bias)
        for dense in ("Dense_0", "Dense_1"):
            layer = model.get_layer(f"encoderblock_{i}_MlpBlock_3_{dense}")
            prefix = f"{block}/MlpBlock_3/{dense}"
            w[f"{prefix}/kernel"], w[f"{prefix}/bias"] = arr(layer.kernel), arr(layer.bias)
    np.savez(path, **w, **(extra or {}))


def test_vit_npz_in_the_original_layout_round_trips(tmp_path):
    keras.utils.set_random_seed(3)
    source = build_backbone("tiny_vit", 32)
    path = tmp_path / "tiny_vit.npz"
    # Classifier entries of a released checkpoint are present and must be ignored.
    write_original_vit_npz(
        source, path, {"head/kernel": np.zeros((32, 1000)), "head/bias": np.zeros(1000)}
    )
    keras.utils.set_random_seed(4)
    fresh = build_backbone("tiny_vit", 32)
    loaded = build_backbone("tiny_vit", 32, str(path))
    x = rescale(random_images(4, 32, seed=3))
    expected = keras.ops.convert_to_numpy(source(x))
    assert not np.allclose(keras.ops.convert_to_numpy(fresh(x)), expected)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)), expected, rtol=1e-5, atol=1e-6
    )


def test_vit_position_embedding_is_resized_bilinearly_for_another_image_size(tmp_path):
    source = build_backbone("tiny_vit", 64)  # 4x4 patch grid
    dim = 32
    rows, cols = np.meshgrid(np.arange(4.0), np.arange(4.0), indexing="ij")
    grid = (rows[..., None] * 10 + cols[..., None]) * np.ones(dim)  # linear in row and col
    cls_position = np.full((1, 1, dim), -5.0)
    source.get_layer("posembed_input").pos_embedding.assign(
        np.concatenate([cls_position, grid.reshape(1, 16, dim)], axis=1)
    )
    path = tmp_path / "vit64.npz"
    write_original_vit_npz(source, path)
    loaded = build_backbone("tiny_vit", 112, path)  # 7x7 patch grid
    pos = loaded.get_layer("posembed_input").pos_embedding.numpy()
    # Corner-aligned bilinear: new index i sits at old coordinate i * 3 / 6.
    coords = np.arange(7) * 3 / 6
    expected = (coords[:, None] * 10 + coords[None, :])[..., None] * np.ones(dim)
    np.testing.assert_allclose(pos[0, 0], -5.0)
    np.testing.assert_allclose(pos[0, 1:].reshape(7, 7, dim), expected, atol=1e-4)


def test_vit_npz_of_another_size_is_a_data_error_naming_the_file(tmp_path):
    path = tmp_path / "not_this_vit.npz"
    np.savez(path, cls=np.zeros((1, 1, 32)))
    with pytest.raises(DataError, match="not_this_vit.npz.*missing"):
        build_backbone("tiny_vit", 32, path)


# Keras 3.15's weights saving calls np.array(variable) in the way numpy 2.4 deprecates.
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_local_application_weights_file_is_loaded(tmp_path):
    keras.utils.set_random_seed(5)
    app = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    path = tmp_path / "mobilenet.weights.h5"
    app.save_weights(path)
    backbone = build_backbone("mobilenet_v3_small", 32, path)
    images = random_images(2, 32, seed=5)
    # The application itself expects [0, 255]; the backbone scales [0, 1] inside.
    expected = keras.ops.convert_to_numpy(app(images.astype(np.float32)))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(backbone(rescale(images))), expected, rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize(
    ("name", "weights", "message"),
    [
        ("tiny_cnn", "imagenet", "teacher.weights.tiny_cnn: .*randomly initialised"),
        ("tiny_vit", "imagenet", "teacher.weights.tiny_vit: .*no ImageNet weights"),
        ("resnet50v2", "/no/such/weights.h5", "teacher.weights.resnet50v2: file .* not found"),
        ("vit_b16", __file__, "teacher.weights.vit_b16: .*expected .npz"),
    ],
)
def test_unusable_weights_setting_is_a_config_error(name, weights, message):
    with pytest.raises(ConfigError, match=message):
        build_backbone(name, 224, weights)


def test_unreachable_imagenet_download_fails_fast_naming_the_local_file_option(monkeypatch):
    def offline_get_file(fname, origin, *args, **kwargs):
        # What keras.utils.get_file raises when the host cannot be resolved.
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] name resolution")

    # keras.applications call the get_file of keras' file_utils module.
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline_get_file)
    start = time.monotonic()
    with pytest.raises(SkinkdError, match=r"`teacher.weights.mobilenet_v3_small: /path/to/file`"):
        build_backbone("mobilenet_v3_small", 224, "imagenet")
    assert time.monotonic() - start < 10


def test_stalled_vit_download_times_out_within_seconds(monkeypatch):
    silent = socket.socket()  # accepts connections (backlog) but never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/vit_ti16_stalled.npz"
    monkeypatch.setattr(registry, "DOWNLOAD_TIMEOUT_S", 1.0)
    default_timeout = socket.getdefaulttimeout()
    monkeypatch.setitem(
        BACKBONES, "vit_ti16", dataclasses.replace(BACKBONES["vit_ti16"], vit_imagenet_url=url)
    )
    start = time.monotonic()
    try:
        with pytest.raises(SkinkdError, match=r"`teacher.weights.vit_ti16: /path/to/file`"):
            build_backbone("vit_ti16", 32, "imagenet")
    finally:
        silent.close()
    assert time.monotonic() - start < 10
    assert socket.getdefaulttimeout() == default_timeout  # the process-wide default is restored


def test_a_model_file_carrying_code_is_refused_not_run(tmp_path):
    from skinkd.errors import DataError
    from skinkd.nn.models import load_model

    marker = tmp_path / "ran"
    # The Lambda's bytecode touches the marker whenever it runs (building the model too).
    touch = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")
    inputs = keras.Input((2,))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, keras.layers.Lambda(touch)(inputs)).save(path)
    marker.unlink()
    with pytest.raises(DataError, match="lambda.keras: refused, the model file carries code"):
        load_model(path)
    assert not marker.exists()
    # Without safe mode the same file runs its code on load.
    keras.models.load_model(path, safe_mode=False)
    assert marker.exists()
