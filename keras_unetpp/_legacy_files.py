"""Loading ``.keras`` files written by keras-unetpp 0.1.

In that release ``UNetPlusPlus`` was a subclassed model holding its graph in a
nested functional model, so its weights are stored one level deeper
(``.../layers/functional/layers/<layer>``) than today's functional UNet++
expects. The architecture is rebuilt from the file's config (the constructor
arguments did not change) and each layer's variables are read from the place
Keras stored them. Keras names a container's entries by class
(``conv2d``, ``conv2d_1``, ... in the order of ``model.layers``); the nested
graph was built by the same code as today's, so the order of the layers that
carry weights is the same, and every shape is checked.
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile

import keras

from keras_unetpp.models.h5_layout import is_nested_unetpp, weight_groups

_LEGACY_MARK = "layers/functional"


def is_legacy_file(archive: zipfile.ZipFile) -> bool:
    """True for a file whose config holds a UNetPlusPlus saved with its graph nested.

    Only the weights file's group structure is read: Keras stores the members of a ``.keras``
    archive uncompressed, so h5py reads the member in place (``StoredMember``), not all of it."""
    config = archive.read("config.json").decode()
    if '"UNetPlusPlus"' not in config:
        return False
    import h5py

    info = archive.getinfo("model.weights.h5")
    source = StoredMember(archive, info) if info.compress_type == zipfile.ZIP_STORED and archive.fp else None
    with h5py.File(source or io.BytesIO(archive.read(info)), "r") as store:
        return any(is_nested_unetpp(group) for group in weight_groups(store))


class StoredMember(io.RawIOBase):
    """An uncompressed zip member as a seekable, read-only file, read in place (no copy of the whole)."""

    def __init__(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo):
        super().__init__()
        self._file = archive.fp
        self._file.seek(info.header_offset)
        header = self._file.read(30)  # the local file header: its name and extra field lengths at 26..30
        self._start = info.header_offset + 30 + int.from_bytes(header[26:28], "little") + \
            int.from_bytes(header[28:30], "little")
        self._size, self._position, self.bytes_read = info.file_size, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, min(self._size, base + offset))
        return self._position

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), self._size - self._position))
        self._file.seek(self._start + self._position)
        data = self._file.read(count)
        buffer[: len(data)] = data
        self._position += len(data)
        self.bytes_read += len(data)
        return len(data)


def load_legacy(archive: zipfile.ZipFile, compile: bool = True) -> keras.Model:
    """The model of a 0.1 file, weights placed on today's graph (optimizer state not restored)."""
    import h5py

    config = json.loads(archive.read("config.json"))
    model = keras.saving.deserialize_keras_object(config)
    with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as store:
        _fill(model, store)
    if compile and config.get("compile_config"):
        try:
            model.compile_from_config(config["compile_config"])
        except Exception as error:  # an unregistered custom loss: the model is still usable for inference
            warnings.warn(f"The model loaded but could not be compiled from its file ({error}); "
                          "compile it yourself to train it.", stacklevel=3)
    return model


def _fill(layer, group) -> None:
    """Sets ``layer``'s variables (and its sub-layers') from the h5 ``group`` Keras saved it in."""
    from keras_unetpp.models import UNetPlusPlus

    if isinstance(layer, UNetPlusPlus) and is_nested_unetpp(group):
        group = group["layers"]["functional"]
    if "vars" in group and len(group["vars"]):
        values = [group["vars"][str(i)][()] for i in range(len(group["vars"]))]
        expected = [tuple(v.shape) for v in layer.weights] if not hasattr(layer, "layers") else None
        if expected is not None:
            if [v.shape for v in values] != expected:
                raise ValueError(f"the saved weights of layer {layer.name!r} have shapes "
                                 f"{[v.shape for v in values]}, the rebuilt layer {expected}")
            layer.set_weights(values)
    sublayers = getattr(layer, "layers", None)
    if sublayers and "layers" in group:
        saved, used = group["layers"], {}
        for sub in sublayers:
            key = _container_name(sub, used)
            if key not in saved:
                if sub.weights:
                    raise ValueError(f"the file holds no weights for layer {sub.name!r} ({key})")
                continue
            _fill(sub, saved[key])


def _container_name(layer, used: dict) -> str:
    """The name Keras' saving gives the next ``layer`` of a container: its class in snake case, numbered."""
    name = _snake_case(type(layer).__name__)
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _snake_case(name: str) -> str:
    """Keras' own rule (keras.src.utils.naming.to_snake_case), written out: it is not public API."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return name
