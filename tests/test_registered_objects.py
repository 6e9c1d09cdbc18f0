"""One harness over every registered layer, loss and metric: config JSON round
trip, .keras round trip, inference-mode identity of augmentation, the caller's
dict untouched, dtype kept; and the properties that tie the pieces together."""

import json

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from keras_unetpp import BinaryDice, BinaryIoU, CombinedLoss, FocalDiceLoss, MulticlassIoU, layers
from keras_unetpp.losses import HaloWeightedCrossEntropy
from keras_unetpp.models.blocks import CropToReference, PadToMultiple, SyncBatchNormalization

AUGMENTATIONS = {
    "RandomDihedral": lambda: layers.RandomDihedral(seed=1),
    "RandomFlip": lambda: layers.RandomFlip("horizontal", seed=1),
    "RandomRotation": lambda: layers.RandomRotation(20, seed=1),
    "RandomBrightness": lambda: layers.RandomBrightness(0.2, seed=1),
    "RandomContrast": lambda: layers.RandomContrast(0.3, seed=1),
    "RandomGaussianNoise": lambda: layers.RandomGaussianNoise(0.05, seed=1),
    "RandomOpacity": lambda: layers.RandomOpacity(0.7, patches=3, probability=1.0, seed=1),
    "aerial_augmentation": lambda: layers.aerial_augmentation(seed=1),
    "xray_augmentation": lambda: layers.xray_augmentation(seed=1),
}
IMAGE_MASK_LAYERS = {**AUGMENTATIONS, "MedianBlur": lambda: layers.MedianBlur(3)}


def sample_batch(rng, channels=3):
    images = rng.random((2, 8, 8, channels)).astype("float32")
    masks = (rng.random((2, 8, 8, 1)) > 0.5).astype("float32")
    return images, masks


@pytest.mark.parametrize("name", sorted(IMAGE_MASK_LAYERS))
def test_layer_config_round_trips_through_json(name):
    layer = IMAGE_MASK_LAYERS[name]()
    config = json.loads(json.dumps(keras.layers.serialize(layer)))
    clone = keras.layers.deserialize(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("name", sorted(IMAGE_MASK_LAYERS))
def test_layer_inside_a_saved_model_round_trips(name, tmp_path, rng):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, IMAGE_MASK_LAYERS[name]()(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = rng.random((2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_augmentation_is_the_identity_at_inference(name, rng):
    images, masks = sample_batch(rng)
    out_images, out_masks = AUGMENTATIONS[name]()(images, masks, training=False)
    expected = images
    if name == "aerial_augmentation":  # its median blur is preprocessing, active at inference
        expected = keras.ops.convert_to_numpy(layers.median_blur(images, 5))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out_images), expected, atol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out_masks), masks)


@pytest.mark.parametrize("name", sorted(IMAGE_MASK_LAYERS))
def test_callers_dict_is_untouched_and_dtypes_kept(name, rng):
    images, masks = sample_batch(rng)
    masks = masks.astype("uint8")
    data = {"images": images, "segmentation_masks": masks, "ids": np.array([7, 8])}
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in data.items()}
    out = IMAGE_MASK_LAYERS[name]()(data, training=True)
    assert out is not data and sorted(data) == sorted(before)
    for key, value in before.items():
        assert data[key] is not None
        np.testing.assert_array_equal(data[key], value)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out["ids"]), [7, 8])  # other keys pass through
    assert keras.backend.standardize_dtype(out["images"].dtype) == "float32"
    assert keras.backend.standardize_dtype(out["segmentation_masks"].dtype) == "uint8"


def test_random_contrast_scales_around_each_channels_own_mean(rng):
    """Three channels with different means: each is scaled around its own mean,
    so per-channel means are unchanged (a whole-image mean would shift them)."""
    images = np.stack([np.full((6, 6), 0.2), np.full((6, 6), 0.5), np.full((6, 6), 0.8)], -1)[None]
    images = (images + 0.05 * rng.standard_normal(images.shape)).astype("float32")
    out = keras.ops.convert_to_numpy(layers.RandomContrast(0.5, seed=3)(images, training=True))
    np.testing.assert_allclose(out.mean(axis=(1, 2)), images.mean(axis=(1, 2)), atol=1e-5)
    assert not np.allclose(out, images)


@pytest.mark.parametrize("metric_class", [BinaryIoU, BinaryDice])
def test_metrics_honour_sample_weight(metric_class, rng):
    """Weight 0 on the second image: the result equals the first image alone."""
    truth = (rng.random((2, 8, 8, 1)) > 0.5).astype("float32")
    pred = rng.random((2, 8, 8, 1)).astype("float32")
    weighted = metric_class()
    weighted.update_state(truth, pred, sample_weight=np.array([1.0, 0.0], "float32"))
    alone = metric_class()
    alone.update_state(truth[:1], pred[:1])
    assert float(weighted.result()) == pytest.approx(float(alone.result()))
    t, p = truth[:1] > 0.5, pred[:1] >= 0.5
    tp, fp, fn = np.sum(t & p), np.sum(~t & p), np.sum(t & ~p)
    reference = tp / (tp + fp + fn) if metric_class is BinaryIoU else 2 * tp / (2 * tp + fp + fn)
    assert float(weighted.result()) == pytest.approx(reference)


@given(seed=st.integers(0, 10**6))
def test_dice_equals_two_iou_over_one_plus_iou(seed):
    rng = np.random.default_rng(seed)
    truth = (rng.random((2, 6, 6, 1)) > 0.5).astype("float32")
    pred = rng.random((2, 6, 6, 1)).astype("float32")
    iou, dice = BinaryIoU(), BinaryDice()
    iou.update_state(truth, pred)
    dice.update_state(truth, pred)
    j = float(iou.result())
    assert float(dice.result()) == pytest.approx(2 * j / (1 + j), abs=1e-6)


@given(height=st.integers(1, 40), width=st.integers(1, 40), multiple=st.sampled_from([1, 2, 4, 8, 16]))
def test_pad_then_crop_is_the_identity(height, width, multiple):
    x = np.random.default_rng(height * 41 + width).random((1, height, width, 2)).astype("float32")
    padded = PadToMultiple(multiple)(x)
    assert padded.shape[1] % multiple == 0 and padded.shape[2] % multiple == 0
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(CropToReference()([padded, x])), x)


@pytest.mark.parametrize("obj", [FocalDiceLoss(alpha=0.5, gamma=3.0, per_image=True), BinaryIoU(threshold=0.3),
                                 BinaryDice(from_logits=True), HaloWeightedCrossEntropy(2.0, 5, from_logits=True),
                                 SyncBatchNormalization(momentum=0.8), MulticlassIoU(6),
                                 CombinedLoss([FocalDiceLoss(alpha=0.5), HaloWeightedCrossEntropy(2.0, 5)], [1.0, 0.5])],
                         ids=lambda o: type(o).__name__)
def test_loss_and_metric_configs_round_trip(obj):
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(obj)))
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is type(obj) and clone.get_config() == obj.get_config()


@pytest.mark.parametrize("name", sorted(IMAGE_MASK_LAYERS))
def test_model_call_without_training_is_inference(name):
    """``model(x)`` on a model holding the layer equals ``model.predict(x)``: no augmentation and
    batch norm in inference mode (a layer defaulting to training=True would hand that on to the
    batch norm after it)."""
    rng = np.random.default_rng(0)
    inputs = keras.Input((8, 8, 3))
    x = IMAGE_MASK_LAYERS[name]()(inputs)
    x = keras.layers.Conv2D(2, 3, padding="same")(x)
    outputs = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, outputs)
    images = rng.random((2, 8, 8, 3)).astype("float32")
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(images)), expected, rtol=1e-5, atol=1e-5)
    # the reference for inference: the layer skipped entirely (augmentations) or applied alone
    layer = model.layers[1]
    alone = keras.ops.convert_to_numpy(layer(images, training=False))
    rest = keras.Model(model.layers[2].input, model.output)
    np.testing.assert_allclose(expected, rest.predict(alone, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_layer_on_its_own_augments(name):
    """Called alone (as in ``ds.map(layer)``) without ``training``, an augmentation augments."""
    rng = np.random.default_rng(1)
    images = rng.random((8, 16, 16, 3)).astype("float32")
    layer = AUGMENTATIONS[name]()
    changed = any(not np.allclose(keras.ops.convert_to_numpy(layer(images)), images) for _ in range(5))
    assert changed
