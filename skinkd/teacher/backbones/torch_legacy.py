"""Read a PyTorch state dict saved in the legacy (pre-1.6, non-zip) format, without torch.

The pretrained MobileNetV2 weights ship in this format. Reading them here keeps torch out of
the workflow, and because unpickling can run arbitrary code, the unpickler resolves only the
few names a state dict uses, each to a local stand-in: nothing from the file is executed.

Layout (torch/serialization.py, ``_legacy_save``): five pickles back to back -- the magic
number, the protocol version, a system-info dict, the state dict (its tensors refer to
storages by key through persistent ids) and the list of storage keys -- then, for each key in
that order, the storage's element count as a little-endian int64 and its raw bytes.
"""

from __future__ import annotations

import collections
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from skinkd.errors import DataError

log = logging.getLogger(__name__)

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_ZIP_MAGIC = b"PK\x03\x04"
_RESAVE_HINT = "re-save it with torch.save(obj, f, _use_new_zipfile_serialization=False)"

# torch.<Name>Storage -> numpy dtype of its elements (stored little-endian); None: numpy has
# no such dtype, so a file using it is refused with a clear message rather than misread.
_STORAGE_DTYPES: dict[str, np.dtype | None] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": None,
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    """Stand-in for a ``torch.<Name>Storage`` class: only its name and element dtype matter."""

    name: str
    dtype: np.dtype | None


@dataclass(frozen=True)
class _StorageRef:
    """Elements [start, start + numel) of root storage ``key``, whose data follows the pickles."""

    key: str
    dtype: np.dtype
    start: int
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """A tensor as pickled; it can only be built once its storage's data has been read.

    The class itself stands in for ``torch._utils._rebuild_tensor``, which takes these four.
    """

    storage: object
    offset: object
    size: object
    stride: object


def _rebuild_tensor_v2(storage: object, offset: object, size: object, stride: object,
                       *_grad_hooks_metadata: object) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``; gradients and hooks do not matter."""
    return _TensorRef(storage, offset, size, stride)


_REBUILDERS = {"_rebuild_tensor": _TensorRef, "_rebuild_tensor_v2": _rebuild_tensor_v2}


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _StateDictUnpickler(pickle.Unpickler):
    """Resolves only a state dict's names, and records each root storage's dtype and size."""

    def __init__(self, file: BinaryIO, path: Path, roots: dict[str, tuple[np.dtype, int]]):
        super().__init__(file)
        self._path = path
        self._roots = roots

    def find_class(self, module: str, name: str) -> object:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in _REBUILDERS:
            return _REBUILDERS[name]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        raise DataError(f"{self._path}: refusing to unpickle {module}.{name} "
                        "(only a PyTorch state dict's names are allowed)")

    def persistent_load(self, pid: object) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise DataError(f"{self._path}: unexpected persistent id {str(pid)[:80]} "
                            "(a state dict refers only to tensor storages)")
        _, storage_type, key, _location, numel, view = pid
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str) and _is_count(numel)):
            raise DataError(f"{self._path}: malformed storage reference {str(pid)[:80]}")
        if storage_type.dtype is None:
            raise DataError(f"{self._path}: torch.{storage_type.name} has no numpy dtype; "
                            "convert those tensors to float32 before saving")
        if self._roots.setdefault(key, (storage_type.dtype, numel)) != (storage_type.dtype, numel):
            raise DataError(f"{self._path}: storage {key} is declared with two types or sizes")
        if view is None:
            return _StorageRef(key, storage_type.dtype, 0, numel)
        # Files from torch < 0.4 may refer to a slice (view key, offset, size) of the storage.
        if not (isinstance(view, tuple) and len(view) == 3 and _is_count(view[1])
                and _is_count(view[2]) and view[1] + view[2] <= numel):
            raise DataError(f"{self._path}: malformed storage view {str(view)[:80]} of {key}")
        return _StorageRef(key, storage_type.dtype, view[1], view[2])


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A legacy-format ``torch.save`` state dict as {name: C-contiguous numpy array}.

    Dtypes, shapes, strides and storage offsets are those of the saved tensors; 0-d tensors
    (``num_batches_tracked``) come back as 0-d arrays. Raises DataError naming the file when it
    is missing, not in the legacy format, truncated, or names anything but a state dict's types.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            return _read(f, path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the weights file ({exc.strerror or exc})") from exc


def _read(f: BinaryIO, path: Path) -> dict[str, np.ndarray]:
    if f.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC:
        raise DataError(f"{path}: a zip-format PyTorch file (the torch >= 1.6 default); this "
                        f"reader needs the legacy format: {_RESAVE_HINT}")
    f.seek(0)
    roots: dict[str, tuple[np.dtype, int]] = {}

    def load(what: str) -> object:
        try:
            return _StateDictUnpickler(f, path, roots).load()
        except DataError:
            raise
        except Exception as exc:  # any unpickling failure means a damaged or foreign file
            raise DataError(f"{path}: cannot unpickle the {what} ({type(exc).__name__}: {exc}); "
                            "the file is truncated or not a legacy PyTorch file") from exc

    if load("magic number") != MAGIC_NUMBER:
        raise DataError(f"{path}: not a legacy-format PyTorch file (wrong magic number); "
                        f"if it is another torch format, {_RESAVE_HINT}")
    version = load("protocol version")
    if version != PROTOCOL_VERSION:
        raise DataError(f"{path}: unsupported legacy protocol version {str(version)[:40]} "
                        f"(only {PROTOCOL_VERSION} is supported)")
    # torch ignores the system info too: its writer stores data little-endian on any machine.
    log.debug("%s: saved on %s", path, load("system info"))
    tensors = load("state dict")
    if not (isinstance(tensors, dict) and all(isinstance(k, str) and isinstance(v, _TensorRef)
                                              for k, v in tensors.items())):
        raise DataError(f"{path}: the pickle is a {type(tensors).__name__}, not a state dict "
                        "(a dict of tensor names to tensors)")
    keys = load("storage key list")
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)
            and len(set(keys)) == len(keys)):
        raise DataError(f"{path}: the storage key list is malformed")
    if missing := sorted(set(roots) - set(keys)):
        raise DataError(f"{path}: no data for {len(missing)} storage(s), e.g. {missing[0]}")
    if extra := sorted(set(keys) - set(roots)):
        raise DataError(f"{path}: data for {len(extra)} storage(s) no tensor uses, e.g. {extra[0]}")

    file_size = os.fstat(f.fileno()).st_size
    data: dict[str, np.ndarray] = {}
    for key in keys:
        dtype, numel = roots[key]
        header, nbytes = f.read(8), numel * dtype.itemsize
        if len(header) < 8 or f.tell() + nbytes > file_size:
            raise DataError(f"{path}: truncated: storage {key} needs 8 + {nbytes} bytes, "
                            f"{file_size - f.tell() + len(header)} remain")
        if (count := int.from_bytes(header, "little", signed=True)) != numel:
            raise DataError(f"{path}: storage {key} holds {count} elements, its tensors say {numel}")
        data[key] = np.frombuffer(f.read(nbytes), dtype=dtype)
    if f.tell() != file_size:
        raise DataError(f"{path}: {file_size - f.tell()} unexpected bytes after the last storage")

    arrays = {name: _materialise(name, ref, data, path) for name, ref in tensors.items()}
    log.info("%s: read %d tensors from %d storages", path, len(arrays), len(data))
    return arrays


def _materialise(name: str, ref: _TensorRef, data: dict[str, np.ndarray], path: Path) -> np.ndarray:
    """The tensor as its own contiguous array; bounds are checked so a file cannot make
    ``as_strided`` read memory outside its storage."""
    storage, offset, size, stride = ref.storage, ref.offset, ref.size, ref.stride
    if not (isinstance(storage, _StorageRef) and _is_count(offset)
            and isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
            and all(_is_count(n) for n in size + stride)):
        raise DataError(f"{path}: tensor {name} has a malformed storage, offset, size or stride")
    if 0 in size:
        return np.empty(size, dtype=storage.dtype)
    end = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if end > storage.numel:
        raise DataError(f"{path}: tensor {name} reaches element {end} of a storage of {storage.numel}")
    base = data[storage.key][storage.start + offset:]
    view = np.lib.stride_tricks.as_strided(base, shape=size, writeable=False,
                                           strides=[s * base.itemsize for s in stride])
    return view.copy(order="C")
