"""Files saved by keras-unetpp 0.1 (UNet++ as a subclassed model with its graph nested) still load.

The files in ``tests/data/saved_v0_1`` were written by the 0.1 code itself (``make_files.py`` there,
run with that release), with its predictions on ``inputs.npy`` saved beside them: the reference is
what the old code computed, not what today's code does.
"""

import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_unetpp import UNetPlusPlus, load_model
from keras_unetpp._legacy_files import is_legacy_file

HERE = Path(__file__).resolve().parents[1] / "data" / "saved_v0_1"
KINDS = ["plain", "deep_supervision", "multiclass", "pruned", "segmenter"]


@pytest.mark.parametrize("kind", KINDS)
def test_file_of_the_old_release_loads_and_predicts_what_it_predicted(kind):
    path = HERE / f"{kind}.keras"
    with zipfile.ZipFile(path) as archive:  # a fixture written by the old code, not re-saved by today's
        assert is_legacy_file(archive)
    model = load_model(path)
    x = np.load(HERE / "inputs.npy")
    x = (x * 255).astype("uint8") if kind == "segmenter" else x
    np.testing.assert_allclose(model.predict(x, verbose=0), np.load(HERE / f"{kind}_expected.npy"), atol=1e-6)


@pytest.mark.parametrize("kind", ["plain", "deep_supervision", "segmenter"])
def test_old_file_through_keras_own_loader_says_which_loader_converts_it(kind):
    with pytest.raises(ValueError, match=r"keras-unetpp 0\.1.*keras_unetpp\.load_model"):
        keras.models.load_model(HERE / f"{kind}.keras")


@pytest.mark.parametrize("kind", KINDS)
def test_old_file_loads_as_today_functional_model(kind):
    model = load_model(HERE / f"{kind}.keras")
    unetpp = model if isinstance(model, UNetPlusPlus) else next(
        layer for layer in model.layers if isinstance(layer, UNetPlusPlus))
    assert len(unetpp.layers) > 5  # the graph's nodes, not one opaque row


def test_old_file_saved_again_is_a_file_of_today(tmp_path):
    model = load_model(HERE / "deep_supervision.keras")
    model.save(tmp_path / "again.keras")
    with zipfile.ZipFile(tmp_path / "again.keras") as archive:
        assert not is_legacy_file(archive)
    x = np.load(HERE / "inputs.npy")
    np.testing.assert_allclose(load_model(tmp_path / "again.keras").predict(x, verbose=0),
                               np.load(HERE / "deep_supervision_expected.npy"), atol=1e-6)


def test_telling_old_files_apart_reads_the_weights_structure_not_the_weights(tmp_path, monkeypatch):
    """A model of today is loaded without a read of its whole weights file (it was read twice)."""
    from keras_unetpp import _legacy_files

    opened = []

    class Counting(_legacy_files.StoredMember):
        def __init__(self, *args):
            super().__init__(*args)
            opened.append(self)

    monkeypatch.setattr(_legacy_files, "StoredMember", Counting)
    UNetPlusPlus((None, None, 3), filters=(16, 32, 64, 128)).save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        assert not is_legacy_file(archive)
        size = archive.getinfo("model.weights.h5").file_size
    assert opened and opened[0].bytes_read < size / 3  # group headers and indexes; 15 % for this small model
    with zipfile.ZipFile(HERE / "plain.keras") as archive:  # an old file is still found through the same reader
        assert is_legacy_file(archive)
