"""The symmetries a saved model records, and test-time augmentation over them.

References are written with numpy (``swapaxes`` and reversed slices), not with
``apply_dihedral`` / ``invert_dihedral``."""

import json

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_unetpp import UNetPlusPlus, describe_model, with_preprocessing
from keras_unetpp.inference import DIHEDRAL_TRANSFORMS, MIRROR_TTA, predict_augmented, tta_transforms
from keras_unetpp.layers import Symmetries, symmetry_transforms

MIRROR = ((False, False, False), (False, False, True))


def numpy_forward(x, transpose, flip_ud, flip_lr):
    """(N, H, W, C): transpose, then rows reversed, then columns reversed."""
    if transpose:
        x = np.swapaxes(x, 1, 2)
    if flip_ud:
        x = x[:, ::-1]
    if flip_lr:
        x = x[:, :, ::-1]
    return x


def numpy_backward(y, transpose, flip_ud, flip_lr):
    if flip_lr:
        y = y[:, :, ::-1]
    if flip_ud:
        y = y[:, ::-1]
    if transpose:
        y = np.swapaxes(y, 1, 2)
    return y


def mean_over(model, x, transforms):
    outs = [numpy_backward(model.predict(np.ascontiguousarray(numpy_forward(x, *t)), verbose=0), *t)
            for t in transforms]
    return np.mean(outs, axis=0)


@pytest.fixture(scope="module")
def core():
    keras.utils.set_random_seed(3)
    return UNetPlusPlus((None, None, 1), filters=(2, 4))


def test_named_sets():
    assert symmetry_transforms("mirror") == MIRROR == MIRROR_TTA
    assert set(symmetry_transforms("dihedral")) == {(t, v, h) for t in (0, 1) for v in (0, 1) for h in (0, 1)}
    assert symmetry_transforms("flips") == ((False, False, False), (False, False, True), (False, True, False),
                                            (False, True, True))
    assert symmetry_transforms("none") == ((False, False, False),)
    # a sequence is taken as given, repeated triples once
    assert symmetry_transforms([(0, 0, 0), (1, 0, 0), (0, 0, 0)]) == ((False, False, False), (True, False, False))


@pytest.mark.parametrize("bad", ["rotations", [], [(0, 0)], [(0, 0, 0, 1)], 3])
def test_bad_symmetries_name_what_is_allowed(bad):
    with pytest.raises(ValueError, match="symmetries|Unknown"):
        symmetry_transforms(bad)
    with pytest.raises(ValueError, match="symmetries|Unknown"):
        with_preprocessing(UNetPlusPlus((None, None, 1), filters=(2, 4)), channels=1, median_kernel=0,
                           symmetries=bad)
    with pytest.raises(ValueError, match="tta must be"):
        tta_transforms(bad)


def test_layer_passes_data_through_and_its_config_round_trips(rng):
    layer = Symmetries([(0, 1, 0), (0, 0, 0)], name="s")
    x = rng.random((2, 5, 7, 3)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
    clone = keras.layers.deserialize(json.loads(json.dumps(keras.layers.serialize(layer))))
    assert isinstance(clone, Symmetries) and clone.transforms == ((False, True, False), (False, False, False))


def test_saved_model_keeps_its_symmetries_and_tta_uses_them(core, tmp_path, rng):
    wrapped = with_preprocessing(core, channels=1, median_kernel=0, working_size=(16, 16), symmetries="mirror")
    wrapped.save(tmp_path / "film.keras")
    loaded = keras.saving.load_model(tmp_path / "film.keras")
    assert describe_model(loaded).symmetries == MIRROR
    x = rng.uniform(0, 255, (2, 20, 28, 1)).astype("float32")  # oblong: only transforms without transpose fit
    np.testing.assert_allclose(loaded.predict(x, verbose=0), wrapped.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(predict_augmented(loaded, x, tta=True), mean_over(loaded, x, MIRROR), atol=1e-5)
    # the mirror mean differs from the four-flip mean this model never declared
    flips = symmetry_transforms("flips")
    assert np.abs(mean_over(loaded, x, flips) - mean_over(loaded, x, MIRROR)).max() > 1e-4


def test_a_model_that_declares_nothing_averages_over_all_eight(core, rng):
    assert describe_model(core).symmetries is None
    assert tta_transforms(True, core) == DIHEDRAL_TRANSFORMS and tta_transforms(False, core) == ((False,) * 3,)
    x = rng.random((1, 16, 16, 1)).astype("float32")
    np.testing.assert_allclose(predict_augmented(core, x, tta=True), mean_over(core, x, DIHEDRAL_TRANSFORMS),
                               atol=1e-5)


@settings(max_examples=12, deadline=None)
@given(subset=st.sets(st.sampled_from(DIHEDRAL_TRANSFORMS), min_size=1), seed=st.integers(0, 2**16))
def test_tta_true_averages_over_exactly_the_declared_set(core, subset, seed):
    declared = sorted(subset)
    wrapped = with_preprocessing(core, channels=1, median_kernel=0, input_scale=1.0, symmetries=declared)
    x = np.random.default_rng(seed).random((1, 12, 12, 1)).astype("float32")
    np.testing.assert_allclose(predict_augmented(wrapped, x, tta=True), mean_over(core, x, declared), atol=1e-5)
    np.testing.assert_allclose(predict_augmented(wrapped, x, tta="mirror"), mean_over(core, x, MIRROR), atol=1e-5)
