"""Preprocessing carried inside the model: each step against OpenCV / numpy
written independently, shapes for any size, the .keras round trip from raw uint8."""

import functools

import cv2
import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keras_unetpp import UNetPlusPlus, with_preprocessing
from keras_unetpp.models import downsample_masks, preprocess_images


def block_mean(x, k):
    """Mean over k x k blocks after zero-padding bottom/right: a loop, not a reshape."""
    h, w = x.shape[:2]
    out = np.zeros((-(-h // k), -(-w // k)) + x.shape[2:], np.float64)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = x[i * k : (i + 1) * k, j * k : (j + 1) * k].sum(axis=(0, 1)) / (k * k)
    return out


@given(height=st.integers(5, 23), width=st.integers(5, 23), k=st.integers(1, 3), seed=st.integers(0, 99))
def test_preprocess_images_is_blur_then_area_average(height, width, k, seed):
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    original = image.copy()
    reference = block_mean(cv2.medianBlur(image, 5).astype(np.float64) / 255.0, k)
    out = preprocess_images(image, downsample=k)
    np.testing.assert_allclose(out, reference, atol=1e-5)
    np.testing.assert_array_equal(image, original)  # the caller's array is untouched


@given(height=st.integers(1, 20), width=st.integers(1, 20), k=st.integers(1, 4), seed=st.integers(0, 99))
def test_downsample_masks_is_majority_of_each_block(height, width, k, seed):
    mask = (np.random.default_rng(seed).random((height, width, 1)) > 0.5).astype(np.uint8) * 255
    reference = (block_mean(mask.astype(np.float64) / 255.0, k) >= 0.5).astype(np.uint8)
    np.testing.assert_array_equal(downsample_masks(mask, k), reference)


class MeanOfChannels(keras.layers.Layer):
    def call(self, x):
        return keras.ops.mean(x, axis=-1, keepdims=True)


def test_with_preprocessing_full_scale_equals_core_on_reference_input(rng):
    core = keras.Sequential([keras.Input((None, None, 3)), MeanOfChannels()])
    image = rng.integers(0, 256, (2, 21, 30, 3), dtype=np.uint8)
    expected = np.stack([cv2.medianBlur(im, 5) for im in image]).astype(np.float64).mean(-1, keepdims=True) / 255
    out = with_preprocessing(core, median_kernel=5, downsample=1).predict(image, verbose=0)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_with_preprocessing_half_scale_upsamples_a_constant_exactly(rng):
    """A model that sees the working scale returns maps of the input's size;
    a flat image stays flat through blur, pooling and bilinear upsampling."""
    core = keras.Sequential([keras.Input((None, None, 3)), MeanOfChannels()])
    image = np.full((1, 32, 48, 3), 102, np.uint8)
    out = with_preprocessing(core, median_kernel=5, downsample=2).predict(image, verbose=0)
    assert out.shape == (1, 32, 48, 1)
    np.testing.assert_allclose(out, 0.4, atol=1e-6)


@functools.cache
def blur_and_downsample_model(k):
    return with_preprocessing(UNetPlusPlus((None, None, 3), filters=(2, 4)), median_kernel=5, downsample=k)


@given(height=st.integers(1, 40), width=st.integers(1, 40), k=st.integers(1, 3))
def test_output_has_the_input_size(height, width, k):
    """One model per working scale serves every size in turn (under TensorFlow
    its traced function sees unknown sizes after a few: the upsampling back
    to the input's scale must work from run-time sizes)."""
    model = blur_and_downsample_model(k)
    assert model.predict(np.zeros((1, height, width, 3), np.uint8), verbose=0).shape == (1, height, width, 1)


def test_saved_model_predicts_the_same_from_raw_uint8(tmp_path, rng):
    from keras_unetpp import predict_tiled

    model = with_preprocessing(UNetPlusPlus((None, None, 3), filters=(4, 8), deep_supervision=True), median_kernel=5,
                               downsample=2)
    scene = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    before = predict_tiled(model, scene, tile_size=32)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(predict_tiled(loaded, scene, tile_size=32), before, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    (dict(downsample=0), "downsample"), (dict(downsample=1.5), "downsample"),
    (dict(median_kernel=4), "median_kernel"), (dict(median_kernel=None), "median blur the model was trained with"),
    (dict(input_scale=0.0), "input_scale"), (dict(channels=0), "channels"),
])
def test_bad_arguments_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        with_preprocessing(UNetPlusPlus((None, None, 3), filters=(2, 4)), **{"median_kernel": 5, **kwargs})


def test_working_size_model_serves_films_of_many_sizes_in_one_process():
    """A model that works at a fixed size takes films of any size one after another (TensorFlow then
    traces with unknown height and width) and returns probabilities at each film's size: OpenCV's
    INTER_AREA down to the working size, the core, OpenCV's INTER_LINEAR back up."""
    from keras_unetpp.inference import MIRROR_TTA, predict_augmented

    keras.utils.set_random_seed(0)
    core = UNetPlusPlus((None, None, 1), filters=(2, 4), output_activation=None)
    segmenter = with_preprocessing(core, channels=1, median_kernel=0, working_size=(16, 16))
    rng = np.random.default_rng(0)
    for height, width in ((40, 64), (33, 21), (64, 40), (70, 90), (40, 64)):
        film = rng.integers(0, 256, (height, width, 1), dtype=np.uint8)
        small = cv2.resize(film[..., 0].astype(np.float32) / 255.0, (16, 16), interpolation=cv2.INTER_AREA)
        logits = keras.ops.convert_to_numpy(core(small[None, ..., None]))[0, ..., 0]
        expected = cv2.resize(logits, (width, height), interpolation=cv2.INTER_LINEAR)
        got = segmenter.predict_on_batch(film[None])
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got)[0, ..., 0], expected, atol=1e-4)
        mirrored = predict_augmented(segmenter, film[None], tta=MIRROR_TTA)[0, ..., 0]
        assert mirrored.shape == (height, width)


@given(height=st.integers(1, 30), width=st.integers(1, 30), factor=st.integers(1, 4), channels=st.integers(1, 3),
       seed=st.integers(0, 10_000))
def test_bilinear_upsampling_equals_opencv_inter_linear(height, width, factor, channels, seed):
    """BilinearUpsampling(k) against OpenCV's INTER_LINEAR resize to k times the size."""
    from keras_unetpp.models.blocks import BilinearUpsampling

    x = np.random.default_rng(seed).random((height, width, channels)).astype(np.float32)
    got = keras.ops.convert_to_numpy(BilinearUpsampling(factor)(x[None]))[0]
    expected = cv2.resize(x, (width * factor, height * factor), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(got, expected.reshape(got.shape), atol=1e-5)


@given(h_in=st.integers(1, 25), w_in=st.integers(1, 25), h_out=st.integers(1, 60), w_out=st.integers(1, 60),
       seed=st.integers(0, 10_000))
def test_resize_to_reference_equals_opencv_inter_linear(h_in, w_in, h_out, w_out, seed):
    """ResizeToReference to any size, larger or smaller, against OpenCV's INTER_LINEAR."""
    from keras_unetpp.models.preprocessing import ResizeToReference

    x = np.random.default_rng(seed).random((h_in, w_in, 2)).astype(np.float32)
    got = keras.ops.convert_to_numpy(ResizeToReference()([x[None], np.zeros((1, h_out, w_out, 1), np.float32)]))[0]
    expected = cv2.resize(x, (w_out, h_out), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(got, expected.reshape(got.shape), atol=1e-5)
