"""RandomOpacity: white Gaussian patches on the mask's foreground; masks untouched."""

import math

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_unetpp.layers import RandomOpacity, opacity_map, xray_augmentation

np_ = keras.ops.convert_to_numpy


def reference_opacity(height, width, centers, sigmas, strengths):
    """Patches composited one after another, pixel by pixel (t <- t + (1 - t) * g)."""
    out = np.zeros((len(centers), height, width, 1))
    for n in range(len(centers)):
        for y in range(height):
            for x in range(width):
                t = 0.0
                for (cy, cx), sigma, strength in zip(centers[n], sigmas[n], strengths[n]):
                    g = strength * math.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
                    t = t + (1 - t) * g
                out[n, y, x, 0] = t
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(1, 3), st.integers(0, 10_000))
def test_opacity_map_matches_patches_composited_one_by_one(n, height, width, patches, seed):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-2, 10, (n, patches, 2))
    sigmas = rng.uniform(0.3, 6, (n, patches))
    strengths = rng.uniform(0, 1, (n, patches))
    got = np_(opacity_map(height, width, centers, sigmas, strengths))
    np.testing.assert_allclose(got, reference_opacity(height, width, centers, sigmas, strengths), atol=1e-5)


def one_patch(image_value, mask, seed, factor=0.8, radius=(0.1, 0.2), channels=1):
    """Augments a flat film with one patch; returns (opacity recovered from the output, output, masks out)."""
    images = np.full(mask.shape[:-1] + (channels,), image_value, "float32")
    layer = RandomOpacity(factor, patches=1, radius=radius, probability=1.0, seed=seed)
    out = layer({"images": images, "segmentation_masks": mask})
    result = np_(out["images"])
    return (result - image_value) / (1.0 - image_value), result, np_(out["segmentation_masks"])


@pytest.mark.parametrize("seed", range(6))
def test_one_patch_is_a_gaussian_of_the_drawn_size_centred_on_the_foreground(seed):
    mask = np.zeros((2, 60, 30, 1), "uint8")  # tall: a radius taken from the longer side is twice too big
    mask[0, 5:15, 18:28] = 1  # small regions away from the centre
    mask[1, 40:55, 3:12] = 1
    opacity, _, masks_out = one_patch(0.25, mask, seed, radius=(0.1, 0.15))
    np.testing.assert_array_equal(masks_out, mask)
    for n in range(2):
        t = opacity[n, ..., 0]
        cy, cx = np.unravel_index(np.argmax(t), t.shape)
        assert mask[n, cy, cx, 0] == 1, "the patch centre must lie on the mask's foreground"
        assert 0.4 - 1e-4 <= t[cy, cx] <= 0.8 + 1e-4  # peak in [factor / 2, factor]
        # the drawn radius, from the fall-off to the neighbouring pixel: t1 / t0 = exp(-1 / (2 sigma^2))
        neighbour = t[cy, cx + 1] if cx + 1 < t.shape[1] else t[cy, cx - 1]
        sigma = math.sqrt(-1.0 / (2 * math.log(neighbour / t[cy, cx])))
        assert 0.1 * 30 - 0.2 <= sigma <= 0.15 * 30 + 0.2  # radius is a fraction of the shorter side


def test_without_a_mask_or_with_an_empty_one_patches_land_anywhere():
    hits = np.zeros((2, 2), int)  # which quadrant each patch centre lands in
    for seed in range(40):
        empty = np.zeros((1, 16, 16, 1), "uint8")
        opacity, _, _ = one_patch(0.0, empty, seed, radius=(0.05, 0.05))
        cy, cx = np.unravel_index(np.argmax(opacity[0, ..., 0]), (16, 16))
        hits[cy // 8, cx // 8] += 1
    assert (hits > 0).all(), hits
    alone = RandomOpacity(0.5, probability=1.0, seed=0)(np.zeros((1, 16, 16, 1), "float32"))
    assert float(np_(alone).max()) > 0


def test_images_only_whiten_within_range_dtype_and_channels_kept_input_untouched():
    rng = np.random.default_rng(0)
    films = rng.integers(0, 256, (3, 20, 20, 3)).astype(np.uint8)
    lungs = (rng.random((3, 20, 20, 1)) > 0.3).astype("uint8")
    data = {"images": films, "segmentation_masks": lungs, "weights": np.arange(3.0)}
    snapshot = films.copy()
    out = RandomOpacity(1.0, patches=3, probability=1.0, value_range=(0, 255), seed=3)(data)
    images = np_(out["images"])
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(np_(out["weights"]), np.arange(3.0))  # other keys pass through
    assert (images.astype(int) >= films.astype(int)).all() and images.max() <= 255
    np.testing.assert_array_equal(films, snapshot)
    # one opacity map per image, shared by its channels: x + (255 - x) * t
    t = (images.astype(float) - films) / np.maximum(255.0 - films, 1)
    bright = films < 200  # where the rounding to integers is small against 255 - x
    for n in range(3):
        spread = np.ptp(t[n], axis=-1)[bright[n].all(axis=-1)]
        assert spread.max() < 0.02


def test_inactive_at_inference_and_when_probability_is_zero():
    films = np.full((2, 12, 12, 1), 0.3, "float32")
    layer = RandomOpacity(0.9, probability=1.0, seed=0)
    np.testing.assert_array_equal(np_(layer(films, training=False)), films)
    np.testing.assert_array_equal(np_(RandomOpacity(0.9, probability=0.0, seed=0)(films)), films)
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, layer(inputs))
    np.testing.assert_array_equal(np_(model(films)), films)


def test_probability_is_the_share_of_images_changed():
    films = np.full((400, 8, 8, 1), 0.5, "float32")
    changed = (np_(RandomOpacity(0.5, probability=0.3, seed=1)(films)) > 0.5 + 1e-6).any(axis=(1, 2, 3))
    assert 0.2 < changed.mean() < 0.4


def test_runs_in_tf_data_on_images_of_unknown_size():
    tf = pytest.importorskip("tensorflow")
    films = np.full((4, 24, 20, 1), 0.2, "float32")
    lungs = np.zeros((4, 24, 20, 1), "uint8")
    lungs[:, 6:18, 4:16] = 1
    spec = (tf.TensorSpec((None, None, 1), tf.float32), tf.TensorSpec((None, None, 1), tf.uint8))
    ds = tf.data.Dataset.from_generator(lambda: iter(zip(films, lungs)), output_signature=spec).batch(2)
    layer = RandomOpacity(0.8, probability=1.0, seed=0)
    batches = list(ds.map(lambda x, y: layer({"images": x, "segmentation_masks": y})))
    images = np.concatenate([np_(b["images"]) for b in batches])
    assert images.shape == films.shape and (images > 0.2 + 1e-3).any(axis=(1, 2, 3)).all()


@pytest.mark.parametrize("bad", [dict(factor=0), dict(factor=1.5), dict(patches=0), dict(patches=1.5),
                                 dict(radius=(0.2, 0.1)), dict(radius=(0, 0.1)), dict(probability=1.2)])
def test_bad_arguments_name_the_problem(bad):
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        RandomOpacity(**{"factor": 0.5, **bad})


def test_xray_pipeline_takes_opacity_after_the_geometry_and_before_intensity():
    names = [type(layer).__name__ for layer in xray_augmentation(seed=0, opacity=0.6).layers]
    assert names == ["RandomRotation", "RandomFlip", "RandomOpacity", "RandomBrightness", "RandomContrast",
                     "RandomGaussianNoise"]
    assert "RandomOpacity" not in [type(layer).__name__ for layer in xray_augmentation(seed=0).layers]
