"""Fuzzing, seeded and bounded: the image reader and the model-card parser fed random bytes
and damaged valid files give back an image or the project's own error, never a crash or
another exception type. FUZZ_EXAMPLES raises the count for a longer run outside CI."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skinkd.data.images import decode_image
from skinkd.edge.export import MODEL_CARD_KEYS, read_model_card
from skinkd.errors import SkinkdError

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same inputs on every run: a CI failure reproduces
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FORMATS = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp"}


def _valid(fmt: str, height: int, width: int, seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(FORMATS[fmt], image)
    assert ok
    return buf.tobytes()


def _decodes_or_refuses(data: bytes) -> None:
    try:
        image = decode_image(data, "fuzz")
    except SkinkdError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_decode_or_raise_the_projects_error(data):
    _decodes_or_refuses(data)


@FUZZ
@given(
    fmt=st.sampled_from(sorted(FORMATS)),
    height=st.integers(1, 48),
    width=st.integers(1, 48),
    seed=st.integers(0, 2**16),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=12),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_damaged_valid_images_decode_or_raise_the_projects_error(fmt, height, width, seed, edits, cut):
    data = bytearray(_valid(fmt, height, width, seed))
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        del data[cut % len(data) :]
    _decodes_or_refuses(bytes(data))


def _card_text(draw_value) -> str:
    return json.dumps(draw_value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(st.one_of(st.binary(max_size=512), JSON.map(_card_text).map(str.encode),
                 st.dictionaries(st.sampled_from(MODEL_CARD_KEYS), JSON, max_size=len(MODEL_CARD_KEYS))
                 .map(_card_text).map(str.encode)))  # fmt: skip
def test_card_parser_accepts_or_raises_the_projects_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("card") / "model_card.json"
    path.write_bytes(data)
    try:
        card = read_model_card(path)
    except SkinkdError:
        return
    assert set(MODEL_CARD_KEYS) <= set(card)
