"""Augmentation layers: Keras' own compose with ours, the value range follows the dtype, and image and
mask move about the same centre with the same fill. References are numpy / scipy."""

import keras
import numpy as np
import pytest
import scipy.ndimage

from keras_unetpp.layers import (
    AugmentationPipeline,
    RandomBrightness,
    RandomDihedral,
    RandomFlip,
    RandomGaussianNoise,
    RandomRotation,
    xray_augmentation,
)


def _marked(seed=0, size=32):
    """Images whose first channel is the mask itself: any disagreement between the two shows."""
    rng = np.random.default_rng(seed)
    mask = (scipy.ndimage.uniform_filter(rng.random((4, size, size)), 5) > 0.5).astype("float32")[..., None]
    return np.concatenate([mask, rng.random((4, size, size, 2)).astype("float32")], -1), mask


@pytest.mark.parametrize("keras_layer", [
    lambda: keras.layers.RandomZoom(0.3, interpolation="nearest", seed=1),
    lambda: keras.layers.RandomTranslation(0.2, 0.2, interpolation="nearest", fill_mode="constant", seed=1),
    lambda: keras.layers.RandomFlip("horizontal_and_vertical", seed=1),
])
def test_keras_layers_then_ours_move_image_and_mask_together(keras_layer):
    images, masks = _marked()
    pipeline = AugmentationPipeline([keras_layer(), RandomDihedral(seed=2)])
    caller = {"images": images, "segmentation_masks": masks}
    out = pipeline(caller, training=True)
    moved_images, moved_masks = (np.asarray(keras.ops.convert_to_numpy(out[k])) for k in ("images", "segmentation_masks"))
    np.testing.assert_array_equal(moved_images[..., :1], moved_masks)
    assert caller["images"] is images and caller["segmentation_masks"] is masks  # the caller's dict untouched


def test_pipeline_refuses_a_layer_that_would_treat_the_mask_as_an_image():
    with pytest.raises(ValueError, match="GaussianNoise does neither"):
        AugmentationPipeline([keras.layers.GaussianNoise(0.1)])


def test_intensity_layers_keep_uint8_images_in_0_255():
    images = np.full((2, 8, 8, 1), 200, np.uint8)
    for layer in (RandomBrightness(0.1, seed=0), RandomGaussianNoise(0.05, seed=0)):
        out = np.asarray(keras.ops.convert_to_numpy(layer(images, training=True)))
        assert out.dtype == np.uint8 and 150 <= out.min() and out.max() <= 255 and out.max() > 1
    films, lungs = np.full((2, 16, 16, 1), 120, np.uint8), np.zeros((2, 16, 16, 1), np.uint8)
    augmented = np.asarray(keras.ops.convert_to_numpy(xray_augmentation(seed=0)(films, lungs)[0]))
    assert 60 < augmented.mean() < 180  # it made every pixel 1 (0..1 range applied to 0..255 values)


def test_intensity_layers_refuse_integer_types_without_a_fixed_range():
    with pytest.raises(ValueError, match="uint16 have no fixed value range"):
        RandomBrightness(0.1, seed=0)(np.full((1, 4, 4, 1), 3000, np.uint16), training=True)


def test_rotation_fills_image_and_mask_corners_alike():
    """A reflected object in a corner is labelled in the reflected mask: rotate by hand with scipy."""
    images, masks = _marked(seed=3)
    layer = RandomRotation(40, interpolation="nearest", fill_mode="reflect", seed=4)
    out_images, out_masks = (np.asarray(keras.ops.convert_to_numpy(t)) for t in layer(images, masks, training=True))
    np.testing.assert_array_equal(out_images[..., :1], out_masks)
    assert not np.array_equal(out_masks, masks)


@pytest.mark.parametrize("layer", [RandomRotation(10, seed=0), RandomFlip("horizontal", seed=0), RandomDihedral(seed=0)])
@pytest.mark.parametrize("mask_shape", [(4, 16, 16, 1), (3, 32, 32, 1)])
def test_mask_of_another_size_or_batch_is_refused_by_name(layer, mask_shape):
    with pytest.raises(ValueError, match="same batch size, height and width"):
        layer(np.zeros((4, 32, 32, 3), "float32"), np.zeros(mask_shape, "float32"), training=True)
