"""Loading saved models with errors that name the problem."""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras

from keras_unetpp import _legacy_files as legacy
from keras_unetpp.segmenter import upgrade_wrapper


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(8) == b"\x89HDF\r\n\x1a\n"


def load_model(path: str | Path, compile: bool = True) -> keras.Model:
    """Loads a ``.keras`` file, with the library's classes registered.

    ``keras.saving.load_model`` needs the package that defines a model's custom
    classes to be imported first (``Could not locate class 'UNetPlusPlus'``);
    this function lives in that package, so calling it is enough. It also checks
    the file before Keras reads it: Keras reports a corrupt or truncated archive
    as ``File not found``, which sends people looking for a missing file. Files
    written by keras-unetpp 0.1 (whose UNet++ kept its graph in a nested
    model) load too: their weights are moved onto today's flat graph (the
    optimizer state of such files is not restored), and a model wrapped by the
    functional ``with_preprocessing`` of earlier releases comes back as the
    [`Segmenter`][keras_unetpp.Segmenter] it describes, predicting what it did.

    Args:
        path: A ``.keras`` file.
        compile: Restore the loss, metrics and optimizer too (``False`` for
            inference only: then the loss's custom objects are not needed).

    Returns:
        The ``keras.Model``.

    Raises:
        FileNotFoundError: If there is no file at ``path``.
        ValueError: If the file is not a ``.keras`` zip archive or is damaged
            (truncated, or a member fails its checksum).

    Examples:
        >>> import tempfile, pathlib
        >>> from keras_unetpp import UNetPlusPlus
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.keras"
        >>> UNetPlusPlus((None, None, 1), filters=(2, 4)).save(path)
        >>> type(load_model(path)).__name__
        'UNetPlusPlus'
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path} (is the path right? it resolves to {path.resolve()}).")
    if path.name.endswith(".weights.h5"):
        raise ValueError(f"{path} holds weights only, not a model: build the same model in Python and call "
                         "model.load_weights(path), or load the .keras file saved with model.save('name.keras').")
    if _is_hdf5(path):
        raise ValueError(f"{path} is a legacy Keras 2 HDF5 (.h5) model file; Keras 3 loads .keras files. Load it "
                         "with the Keras 2 that wrote it (tf.keras) and save it again with model.save('name.keras'), "
                         "or rebuild the model and copy its weights.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a .keras archive (a zip file): it is corrupt, truncated, or another format "
            f"({path.stat().st_size} bytes). Models saved with model.save('name.keras') are zip archives."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(f"{path} is a damaged .keras archive: {error}.") from None
    if damaged is not None:
        raise ValueError(f"{path} is a damaged .keras archive: member {damaged!r} fails its checksum.")
    with zipfile.ZipFile(path) as archive:
        members = set(archive.namelist())
        if "config.json" not in members or "model.weights.h5" not in members:
            raise ValueError(f"{path} is a zip archive but not a Keras model file: it lacks "
                             f"{sorted({'config.json', 'model.weights.h5'} - members)} (members: {sorted(members)[:5]}).")
        if legacy.is_legacy_file(archive):
            return upgrade_wrapper(legacy.load_legacy(archive, compile=compile))
    return upgrade_wrapper(keras.saving.load_model(path, compile=compile))
