"""skinkd.data.images (read_image / decode_image) and the image checks of build_manifest.

Every input is made here in tmp_path; expected pixel values come from the source arrays, not
from the code under test.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers import (
    encode_rgb,
    rgb_array,
    solid_rgb,
    source_table,
    write_png16,
    write_rgb,
)
from skinkd.data.images import decode_image, read_image
from skinkd.data.manifest import build_manifest
from skinkd.errors import DataError

# --------------------------------------------------------------------------- bad files


def _truncated_half(tmp: Path) -> Path:
    data = encode_rgb(rgb_array(), "JPEG", quality=90)
    path = tmp / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_tail(tmp: Path) -> Path:
    data = encode_rgb(rgb_array(), "JPEG", quality=90)
    path = tmp / "tail.jpg"
    path.write_bytes(data[:-3])  # just the last few bytes (the end-of-image marker) gone
    return path


def _truncated_png(tmp: Path) -> Path:
    data = encode_rgb(rgb_array(), "PNG")
    path = tmp / "cut.png"
    path.write_bytes(data[:-5])
    return path


def _zero_bytes(tmp: Path) -> Path:
    path = tmp / "empty.jpg"
    path.write_bytes(b"")
    return path


def _text_as_jpg(tmp: Path) -> Path:
    path = tmp / "notes.jpg"
    path.write_text("this is not an image, just some text\n")
    return path


def _missing(tmp: Path) -> Path:
    return tmp / "no_such_dir" / "missing.jpg"


def _directory(tmp: Path) -> Path:
    path = tmp / "a_folder.jpg"
    path.mkdir()
    return path


# (factory, words the message must contain to describe the problem)
BAD_FILES = {
    "truncated_jpeg_half": (_truncated_half, "truncated jpeg"),
    "truncated_jpeg_last_bytes": (_truncated_tail, "truncated jpeg"),
    "truncated_png": (_truncated_png, "truncated png"),
    "zero_byte_file": (_zero_bytes, "empty"),
    "text_file_named_jpg": (_text_as_jpg, "not a jpeg"),
    "path_does_not_exist": (_missing, "does not exist"),
    "directory_passed_as_image": (_directory, "directory"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_image_is_rejected_by_read_image_with_file_name_and_problem(tmp_path, case):
    make, problem = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(DataError) as info:
        read_image(path)
    message = str(info.value)
    assert str(path) in message
    assert problem in message.lower()


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_image_is_rejected_by_build_manifest_with_file_name_and_problem(tmp_path, case):
    make, problem = BAD_FILES[case]
    bad = make(tmp_path)
    good_b = write_rgb(tmp_path / "good_b.png", rgb_array(seed=1))
    good_m = write_rgb(tmp_path / "good_m.png", rgb_array(seed=2))
    source = source_table([(good_b, 0), (bad, 1), (good_m, 1)])

    with pytest.raises(DataError) as info:
        build_manifest(source, on_bad_image="error")
    message = str(info.value)
    assert str(bad) in message and problem in message.lower()
    assert "1 bad image" in message
    assert str(good_b) not in message and str(good_m) not in message

    manifest, rejected = build_manifest(source, on_bad_image="skip")
    assert list(manifest["path"]) == [str(good_b), str(good_m)]
    assert list(rejected["image_id"]) == ["img1"]
    assert list(rejected["path"]) == [str(bad)]
    assert str(bad) in rejected["reason"][0] and problem in rejected["reason"][0].lower()


def test_truncated_jpeg_that_still_decodes_is_rejected(tmp_path):
    # OpenCV fills a truncated JPEG with grey and only warns: the check must not rely on it.
    data = encode_rgb(rgb_array(64, 64), "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * 0.8)])
    with pytest.raises(DataError, match="truncated JPEG"):
        read_image(path)


def test_jpeg_with_trailing_zero_padding_is_accepted(tmp_path):
    source = solid_rgb((200, 40, 40))
    path = tmp_path / "padded.jpg"
    path.write_bytes(encode_rgb(source, "JPEG", quality=95) + b"\x00" * 16)
    image = read_image(path)
    assert image.shape == (16, 16, 3)
    assert np.abs(image.astype(int) - source.astype(int)).max() <= 6


def test_decode_image_names_the_given_source_in_errors():
    with pytest.raises(DataError, match=r"^archive\.zip:lesion\.jpg: empty file"):
        decode_image(b"", "archive.zip:lesion.jpg")


def test_build_manifest_error_mode_lists_every_bad_file(tmp_path):
    bad = [make(tmp_path) for make, _ in BAD_FILES.values()]
    good_b = write_rgb(tmp_path / "b.jpg", rgb_array(seed=3))
    good_m = write_rgb(tmp_path / "m.jpg", rgb_array(seed=4))
    source = source_table([(good_b, 0), (good_m, 1)] + [(p, k % 2) for k, p in enumerate(bad)])
    with pytest.raises(DataError) as info:
        build_manifest(source, on_bad_image="error")
    message = str(info.value)
    assert f"{len(bad)} bad image(s)" in message
    for path in bad:
        assert str(path) in message
    assert "on_bad_image" in message  # tells the user how to skip them instead


def test_build_manifest_default_is_error_mode(tmp_path):
    good = write_rgb(tmp_path / "good.png", rgb_array())
    source = source_table([(good, 0), (_zero_bytes(tmp_path), 1)])
    with pytest.raises(DataError, match="empty"):
        build_manifest(source)


def test_build_manifest_skip_mode_keeps_good_rows_and_rejects_bad_with_reason(tmp_path):
    bad = {case: make(tmp_path) for case, (make, _) in BAD_FILES.items()}
    good = [
        (write_rgb(tmp_path / "b1.png", rgb_array(20, 30, seed=5)), 0),
        (write_rgb(tmp_path / "b2.jpg", rgb_array(10, 14, seed=6)), 0),
        (write_rgb(tmp_path / "m1.bmp", rgb_array(8, 12, seed=7)), 1),
    ]
    entries = good[:2] + [(p, 1) for p in bad.values()] + good[2:]
    source = source_table(entries)
    source["extra"] = [f"x{k}" for k in range(len(source))]

    manifest, rejected = build_manifest(source, on_bad_image="skip")

    assert list(manifest["path"]) == [str(p) for p, _ in good]
    assert list(manifest["label"]) == [0, 0, 1]
    assert list(manifest["extra"]) == ["x0", "x1", f"x{len(entries) - 1}"]  # own columns kept
    assert list(manifest["width"]) == [30, 14, 12]
    assert list(manifest["height"]) == [20, 10, 8]
    assert list(manifest["sha256"]) == [
        hashlib.sha256(Path(p).read_bytes()).hexdigest() for p, _ in good
    ]
    assert all(len(h) == 16 for h in manifest["phash"])

    assert list(rejected.columns) == ["image_id", "path", "reason"]
    assert list(rejected["path"]) == [str(p) for p in bad.values()]
    for (case, path), reason in zip(bad.items(), rejected["reason"]):
        assert str(path) in reason
        assert BAD_FILES[case][1] in reason.lower()


def test_build_manifest_skip_mode_without_bad_files_has_empty_rejected(tmp_path):
    source = source_table(
        [(write_rgb(tmp_path / "a.png", rgb_array(seed=1)), 0),
         (write_rgb(tmp_path / "b.png", rgb_array(seed=2)), 1)]
    )
    manifest, rejected = build_manifest(source, on_bad_image="skip")
    assert len(manifest) == 2
    assert len(rejected) == 0
    assert list(rejected.columns) == ["image_id", "path", "reason"]


def test_build_manifest_skip_mode_raises_when_a_class_ends_up_empty(tmp_path):
    good = write_rgb(tmp_path / "benign.png", rgb_array())
    source = source_table([(good, 0), (_text_as_jpg(tmp_path), 1), (_zero_bytes(tmp_path), 1)])
    with pytest.raises(DataError, match=r"no malignant images left.*2 rejected"):
        build_manifest(source, on_bad_image="skip")


def test_build_manifest_skip_mode_raises_data_error_when_every_image_is_bad(tmp_path):
    source = source_table([(_missing(tmp_path), 0), (_text_as_jpg(tmp_path), 1)])
    with pytest.raises(DataError, match=r"no benign images left.*2 rejected"):
        build_manifest(source, on_bad_image="skip")


# --------------------------------------------------------------------------- colour modes


def _assert_rgb_uint8(image: np.ndarray, height: int, width: int) -> None:
    assert image.dtype == np.uint8
    assert image.shape == (height, width, 3)


def test_rgb_png_is_read_exactly_in_rgb_order(tmp_path):
    source = rgb_array(24, 32, seed=11)
    image = read_image(write_rgb(tmp_path / "x.png", source))
    _assert_rgb_uint8(image, 24, 32)
    np.testing.assert_array_equal(image, source)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp"])
def test_pure_red_reads_as_red_channel_high_blue_low(tmp_path, suffix):
    image = read_image(write_rgb(tmp_path / f"red{suffix}", solid_rgb((255, 0, 0), 12, 20)))
    _assert_rgb_uint8(image, 12, 20)
    assert image[..., 0].min() >= 240
    assert image[..., 1].max() <= 15
    assert image[..., 2].max() <= 15


def test_greyscale_png_becomes_three_equal_channels(tmp_path):
    grey = np.arange(15 * 17, dtype=np.uint8).reshape(15, 17)
    path = write_rgb(tmp_path / "grey.png", grey)
    assert Image.open(path).mode == "L"
    image = read_image(path)
    _assert_rgb_uint8(image, 15, 17)
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], grey)


def test_greyscale_jpeg_becomes_three_equal_channels(tmp_path):
    y, x = np.mgrid[0:24, 0:32]
    grey = (60 + 3 * x + 2 * y).astype(np.uint8)
    path = write_rgb(tmp_path / "grey.jpg", grey, quality=95)
    assert Image.open(path).mode == "L"
    image = read_image(path)
    _assert_rgb_uint8(image, 24, 32)
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    np.testing.assert_array_equal(image[..., 1], image[..., 2])
    assert np.abs(image[..., 0].astype(int) - grey.astype(int)).max() <= 6


def test_grey_with_alpha_png_becomes_three_equal_channels_alpha_dropped(tmp_path):
    la = np.zeros((6, 9, 2), np.uint8)
    la[..., 0] = np.arange(54).reshape(6, 9) * 4
    la[..., 1] = np.arange(54).reshape(6, 9) % 3 * 127  # alpha 0, 127, 254
    path = write_rgb(tmp_path / "la.png", la)
    assert Image.open(path).mode == "LA"
    image = read_image(path)
    _assert_rgb_uint8(image, 6, 9)
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], la[..., 0])


def test_rgba_png_drops_alpha_and_keeps_colour_exactly(tmp_path):
    rgb = rgb_array(10, 13, seed=12)
    alpha = (np.arange(130).reshape(10, 13) * 2).astype(np.uint8)  # includes fully transparent
    rgba = np.dstack([rgb, alpha])
    path = write_rgb(tmp_path / "rgba.png", rgba)
    assert Image.open(path).mode == "RGBA"
    image = read_image(path)
    _assert_rgb_uint8(image, 10, 13)
    np.testing.assert_array_equal(image, rgb)


def _scale16(values: np.ndarray) -> np.ndarray:
    # round(v / 257) in integers; v / 257 is never exactly x.5, so no tie rule is needed.
    return ((values.astype(np.int64) * 2 + 257) // 514).astype(np.uint8)


def test_16_bit_grey_png_is_scaled_to_8_bits(tmp_path):
    grey16 = np.array(
        [[0, 1, 128, 129, 256], [257, 385, 386, 1000, 32767], [32896, 40000, 65278, 65534, 65535]],
        dtype=np.uint16,
    )
    image = read_image(write_png16(tmp_path / "g16.png", grey16))
    _assert_rgb_uint8(image, 3, 5)
    expected = _scale16(grey16)
    assert expected[0].tolist() == [0, 0, 0, 1, 1]  # spot check of the formula itself
    assert expected[2, -1] == 255
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], expected)


def test_16_bit_rgb_png_is_scaled_to_8_bits_in_rgb_order(tmp_path):
    rng = np.random.default_rng(3)
    rgb16 = rng.integers(0, 65536, size=(7, 9, 3), dtype=np.uint16)
    rgb16[0, 0] = (65535, 0, 0)  # pure red
    image = read_image(write_png16(tmp_path / "c16.png", rgb16))
    _assert_rgb_uint8(image, 7, 9)
    np.testing.assert_array_equal(image, _scale16(rgb16))
    assert image[0, 0].tolist() == [255, 0, 0]


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    colour = (200, 60, 30)
    cmyk = Image.fromarray(solid_rgb(colour, 16, 24)).convert("CMYK")
    path = tmp_path / "cmyk.jpg"
    cmyk.save(path, "JPEG", quality=95)
    assert Image.open(path).mode == "CMYK"
    image = read_image(path)
    _assert_rgb_uint8(image, 16, 24)
    diff = np.abs(image.astype(int) - np.array(colour)).max()
    assert diff <= 8, f"CMYK JPEG read as {image[8, 8].tolist()}, source {colour}"


@pytest.mark.parametrize("transparency", [False, True])
def test_paletted_png_reads_as_palette_colours(tmp_path, transparency):
    palette = np.array([[250, 10, 20], [15, 200, 30], [5, 25, 240], [128, 64, 32]], np.uint8)
    indices = (np.arange(8 * 11).reshape(8, 11) % 4).astype(np.uint8)
    im = Image.fromarray(indices, "P")
    im.putpalette(palette.ravel().tolist())
    path = tmp_path / "pal.png"
    if transparency:
        im.save(path, "PNG", transparency=0)  # index 0 fully transparent: colour still kept
    else:
        im.save(path, "PNG")
    assert Image.open(path).mode == "P"
    image = read_image(path)
    _assert_rgb_uint8(image, 8, 11)
    np.testing.assert_array_equal(image, palette[indices])


def test_bmp_is_read_exactly(tmp_path):
    source = rgb_array(9, 14, seed=13)
    image = read_image(write_rgb(tmp_path / "x.bmp", source))
    _assert_rgb_uint8(image, 9, 14)
    np.testing.assert_array_equal(image, source)


def test_format_is_detected_from_content_not_suffix(tmp_path):
    source = rgb_array(5, 6, seed=14)
    path = tmp_path / "really_a_png.jpg"
    path.write_bytes(encode_rgb(source, "PNG"))
    np.testing.assert_array_equal(read_image(path), source)


def test_read_image_accepts_str_and_path(tmp_path):
    source = rgb_array(4, 4, seed=15)
    path = write_rgb(tmp_path / "x.png", source)
    np.testing.assert_array_equal(read_image(str(path)), read_image(path))


def test_decode_image_matches_read_image(tmp_path):
    source = rgb_array(6, 7, seed=16)
    path = write_rgb(tmp_path / "x.png", source)
    np.testing.assert_array_equal(decode_image(path.read_bytes(), str(path)), source)


def _bomb(fmt: str, width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny valid image whose header is patched to declare width x height pixels."""
    ok, buf = cv2.imencode({"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp"}[fmt], np.zeros((8, 8, 3), np.uint8))
    data = bytearray(buf.tobytes())
    if fmt == "PNG":
        data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    elif fmt == "BMP":
        data[18:26] = width.to_bytes(4, "little") + height.to_bytes(4, "little", signed=True)
    else:
        sof = next(i for i in range(2, len(data)) if data[i] == 0xFF and data[i + 1] == 0xC0)
        data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP"])
def test_decompression_bomb_is_refused_before_decoding(fmt, monkeypatch):
    from skinkd.data import images

    def no_decoding(*args):
        raise AssertionError("the decoder was called")

    monkeypatch.setattr(images.cv2, "imdecode", no_decoding)
    with pytest.raises(DataError, match=r"declares 50000x50000 pixels, over the 100,000,000-pixel limit"):
        decode_image(_bomb(fmt), f"bomb.{fmt.lower()}")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP"])
def test_declared_size_is_the_decoded_size(fmt):
    from skinkd.data.images import declared_size

    ok, buf = cv2.imencode({"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp"}[fmt], rgb_array(37, 53))
    assert declared_size(buf.tobytes(), fmt) == (53, 37)
