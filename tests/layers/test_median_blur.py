"""MedianBlur against cv2.medianBlur (uint8) and scipy.ndimage.median_filter (float)."""

import cv2
import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from keras_unetpp.layers import MedianBlur, median_blur
from keras_unetpp.layers.selection_network import median_plan


def cv2_median(image, k):
    """cv2 per channel (cv2 takes 1, 3, 4 channels; k > 5 only 8-bit)."""
    return np.stack([cv2.medianBlur(np.ascontiguousarray(image[..., c]), k) for c in range(image.shape[-1])], -1)


@given(
    hnp.arrays(np.uint8, st.tuples(st.integers(1, 2), st.integers(1, 20), st.integers(1, 20), st.integers(1, 4))),
    st.sampled_from([3, 5, 7, 9]),
)
def test_uint8_equals_cv2(images, k):
    got = keras.ops.convert_to_numpy(median_blur(images, k))
    assert got.dtype == np.uint8
    for n in range(images.shape[0]):
        np.testing.assert_array_equal(got[n], cv2_median(images[n], k))


def test_three_channel_uint8_equals_cv2_directly():
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(MedianBlur(5)(image)), cv2.medianBlur(image, 5))


@given(
    hnp.arrays(np.float32, st.tuples(st.just(1), st.integers(1, 16), st.integers(1, 16), st.integers(1, 3)),
               elements=st.floats(-10, 10, width=32, allow_subnormal=False)),
    st.sampled_from([1, 3, 5, 7]),
)
def test_float_equals_scipy(images, k):
    # subnormals are excluded: TensorFlow's CPU kernels flush them to zero
    got = keras.ops.convert_to_numpy(median_blur(images, k))
    ref = ndimage.median_filter(images, size=(1, k, k, 1), mode="nearest")
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("k", [3, 5, 7, 9, 11])
def test_selection_network_is_exact_on_all_zero_one_inputs_of_3x3_and_random_larger(k):
    """0-1 principle: a comparator network selects the median of every input iff
    it does so for every 0/1 input; exhaustive for 3x3, sampled above."""
    rng = np.random.default_rng(k)
    blocks = (
        np.array([[(v >> b) & 1 for b in range(9)] for v in range(512)]).reshape(-1, 3, 3)
        if k == 3
        else (rng.random((3000, k, k)) < rng.random((3000, 1, 1))).astype(int)
    )
    images = blocks.reshape(-1, k, k, 1).astype(np.float32)
    centre = keras.ops.convert_to_numpy(median_blur(images, k))[:, k // 2, k // 2, 0]
    np.testing.assert_array_equal(centre, np.median(blocks.reshape(len(blocks), -1), axis=1))


def test_masks_pass_through_and_input_not_modified():
    rng = np.random.default_rng(1)
    data = {"images": rng.random((2, 8, 8, 3)).astype("float32"), "segmentation_masks": np.ones((2, 8, 8, 1)),
            "extra": np.arange(3.0)}
    before = {k: np.copy(v) for k, v in data.items()}
    out = MedianBlur(3)(data)
    assert out is not data
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out["extra"]), np.arange(3.0))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out["segmentation_masks"]), data["segmentation_masks"])
    for key in before:
        np.testing.assert_array_equal(data[key], before[key])
    # active at inference too: preprocessing
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(MedianBlur(3)(data["images"], training=False)),
        ndimage.median_filter(data["images"], size=(1, 3, 3, 1), mode="nearest"),
    )


def test_bad_kernel_and_shape():
    with pytest.raises(ValueError, match="odd"):
        MedianBlur(4)
    with pytest.raises(ValueError, match="expects images"):
        MedianBlur(3)(np.zeros((4, 4)))
    assert median_plan(5)[2]  # network exists


def test_serialization():
    layer = keras.layers.deserialize(keras.layers.serialize(MedianBlur(7)))
    assert isinstance(layer, MedianBlur) and layer.kernel_size == 7
