"""Segmenter: the saved model states its facts; files of the functional wrapper keep loading.

The fixtures in ``tests/data/saved_v0_2`` were written by the functional ``with_preprocessing``
that came before ``Segmenter`` (``make_wrapper_files.py`` there), with that code's predictions
saved beside them: the reference is what the old code computed.
"""

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_unetpp import Segmenter, UNetPlusPlus, describe_model, load_model, with_preprocessing
from keras_unetpp.layers.median_blur import MedianBlur

HERE = Path(__file__).resolve().parents[1] / "data" / "saved_v0_2"
WRAPPERS = ["aerial", "films", "classes"]


@pytest.mark.parametrize("kind", WRAPPERS)
def test_file_of_the_functional_wrapper_loads_as_segmenter_and_predicts_what_it_did(kind):
    with zipfile.ZipFile(HERE / f"{kind}.keras") as archive:  # written by the old code, not re-saved
        assert "Segmenter" not in archive.read("config.json").decode()
    model = load_model(HERE / f"{kind}.keras")
    assert isinstance(model, Segmenter)
    x = np.load(HERE / "inputs.npy")
    np.testing.assert_allclose(model.predict(x, verbose=0), np.load(HERE / f"{kind}_expected.npy"), atol=1e-6)


def test_facts_read_from_an_old_wrapper_are_the_ones_it_was_built_with():
    aerial, films = load_model(HERE / "aerial.keras"), load_model(HERE / "films.keras")
    assert (aerial.median_kernel, aerial.downsample, aerial.working_size) == (5, 2, None)
    assert len(aerial.symmetries) == 8
    assert (films.median_kernel, films.downsample, films.working_size) == (0, 1, (32, 32))
    assert films.symmetries == ((False, False, False), (False, False, True))
    assert describe_model(films).whole_image and not describe_model(aerial).whole_image


def _segmenter(**facts):
    keras.utils.set_random_seed(3)
    core = UNetPlusPlus((None, None, 3), num_classes=facts.pop("classes", 1), filters=(4, 8, 16))
    return Segmenter(core, **{"median_kernel": 3, **facts})


@pytest.mark.parametrize("facts", [
    dict(downsample=2, symmetries="dihedral", class_names=["background", "building"], threshold=0.4),
    dict(working_size=(24, 24), symmetries="mirror", input_range=(0, 4095)),
    dict(classes=3, class_names=["land", "road", "water"]),
])
def test_segmenter_round_trips_through_keras_file_and_preset(tmp_path, facts):
    model = _segmenter(**facts)
    x = np.random.default_rng(0).integers(0, 256, (2, 37, 29, 3)).astype("uint8")
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    model.save_to_preset(tmp_path / "preset")
    for loaded in (load_model(tmp_path / "m.keras"), keras.saving.load_model(tmp_path / "m.keras"),
                   Segmenter.from_preset(tmp_path / "preset")):
        assert isinstance(loaded, Segmenter)
        assert describe_model(loaded) == describe_model(model)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-6)
    metadata = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert metadata["classes"] == describe_model(model).classes


def _bilinear_up2(values: np.ndarray) -> np.ndarray:
    """2x bilinear upsampling of (H, W) with half-pixel centres and edge clamping, by hand."""
    for axis in (0, 1):
        n = values.shape[axis]
        source = np.clip((np.arange(2 * n) + 0.5) / 2 - 0.5, 0, n - 1)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, n - 1)
        w = source - low
        a, b = np.take(values, low, axis=axis), np.take(values, high, axis=axis)
        shape = [1, 1]
        shape[axis] = -1
        values = a * (1 - w.reshape(shape)) + b * w.reshape(shape)
    return values


def test_segmenter_computes_what_its_steps_compute_by_hand():
    """Independent reference: scale, median blur (scipy), 2x2 area average, backbone, bilinear back."""
    import scipy.ndimage

    model = _segmenter(downsample=2, input_range=(0, 1000))
    x = np.random.default_rng(1).uniform(0, 1000, (1, 16, 16, 3)).astype("float32")
    unit = x / 1000.0
    blurred = np.stack([scipy.ndimage.median_filter(unit[0, ..., c], size=3, mode="reflect")
                        for c in range(3)], -1)
    pooled = blurred.reshape(8, 2, 8, 2, 3).mean(axis=(1, 3))[None]
    inner = keras.ops.convert_to_numpy(model.backbone(pooled))[0, ..., 0]
    np.testing.assert_allclose(model.predict(x, verbose=0)[0, ..., 0], _bilinear_up2(inner), atol=1e-5)
    assert any(isinstance(layer, MedianBlur) for layer in model.layers)


@pytest.mark.parametrize("bad, message", [
    (dict(median_kernel=None), "median_kernel"),
    (dict(median_kernel=4), "odd"),
    (dict(downsample=1.5), "whole number"),
    (dict(downsample=2, working_size=(8, 8)), "one"),
    (dict(input_range=(5, 5)), "low < high"),
    (dict(threshold=1.0), "threshold"),
    (dict(class_names=["a", "b", "c"]), "class_names"),
    (dict(channels=2.5), "whole number"),
])
def test_segmenter_refuses_bad_facts_by_name(bad, message):
    core = UNetPlusPlus((None, None, 3), filters=(2, 4))
    with pytest.raises(ValueError, match=message):
        Segmenter(core, **{"median_kernel": 0, **bad})


def test_preset_folder_is_not_overwritten(tmp_path):
    model = _segmenter()
    model.save_to_preset(tmp_path)
    with pytest.raises(FileExistsError, match="preset already"):
        model.save_to_preset(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a preset"):
        Segmenter.from_preset(tmp_path / "nothing")


def test_with_preprocessing_states_the_input_range_of_its_scale():
    core = UNetPlusPlus((None, None, 1), filters=(2, 4))
    model = with_preprocessing(core, channels=1, input_scale=1 / 65535, median_kernel=0)
    assert describe_model(model).input_range == (0.0, 65535.0)
    assert describe_model(core).input_range == (0.0, 1.0)
