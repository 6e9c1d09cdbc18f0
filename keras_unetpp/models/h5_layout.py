"""The h5 layout of a UNet++ saved by keras-unetpp 0.1, told apart from today's.

Kept apart from the loader of such files (``keras_unetpp._legacy_files``), which needs the model
classes: ``UNetPlusPlus.load_own_variables`` asks this module alone, so the model and the loader
do not import each other.
"""

from __future__ import annotations


def weight_groups(store) -> list:
    """The root of an h5 weights store and every group below it."""
    found = []
    store.visititems(lambda name, obj: found.append(obj) if hasattr(obj, "keys") else None)
    return [store] + found


def is_nested_unetpp(group) -> bool:
    """True for the h5 group of a UNet++ saved by keras-unetpp 0.1 (its graph one level deeper)."""
    return "layers" in group and list(group["layers"].keys()) == ["functional"]


def refuse_nested_store(store) -> None:
    """Raises a clear error when Keras' own loader meets a 0.1 UNet++ (its graph one level
    deeper than today's): only ``keras_unetpp.load_model`` converts such a file."""
    h5_file, path = getattr(store, "h5_file", None), getattr(store, "_h5_entry_path", None)
    if h5_file is None or path is None:  # another store kind (a future Keras): leave it to Keras
        return
    group = h5_file[path] if path else h5_file
    if hasattr(group, "keys") and is_nested_unetpp(group):
        raise ValueError(
            "This file holds a UNetPlusPlus saved by keras-unetpp 0.1, whose layers are stored one level "
            "deeper than today's. Load it with keras_unetpp.load_model(path), which converts it, then save "
            "it again to get a file that keras.models.load_model reads.")
