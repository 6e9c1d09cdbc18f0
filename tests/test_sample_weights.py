"""One sample-weight contract for every loss and metric (keras_unetpp.weights): per-sample (N,) and
per-pixel (N, H, W) weights; a weight of 0 has no effect on the value or the gradient; values
checked against numpy formulas written here."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_unetpp import BinaryDice, BinaryIoU, CombinedLoss, FocalDiceLoss, HaloWeightedCrossEntropy, MulticlassIoU

LOSSES = {
    "focal_dice": lambda: FocalDiceLoss(),
    "focal_dice_per_image": lambda: FocalDiceLoss(per_image=True),
    "halo": lambda: HaloWeightedCrossEntropy(halo_weight=4.0, halo_width=3),
    "combined": lambda: CombinedLoss([FocalDiceLoss(), HaloWeightedCrossEntropy(), "binary_crossentropy"]),
}
METRICS = {"iou": lambda: BinaryIoU(), "dice": lambda: BinaryDice()}


def batch(seed=0, n=3, h=8, w=8):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, h, w, 1)) > 0.6).astype("float32")
    p = np.clip(0.7 * y + 0.3 * rng.random((n, h, w, 1)), 0.01, 0.99).astype("float32")
    return y, p


def value(loss, y, p, weights):
    return float(keras.ops.convert_to_numpy(loss(y, p, sample_weight=weights)))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_zero_weight_sample_drives_no_gradient(name):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the gradient is taken with TensorFlow")
    import tensorflow as tf

    y, p = batch()
    prediction = tf.Variable(p)
    with tf.GradientTape() as tape:
        loss = LOSSES[name]()(y, prediction, sample_weight=np.array([1.0, 0.0, 1.0], "float32"))
    gradient = tape.gradient(loss, prediction).numpy()
    assert np.all(gradient[1] == 0) and np.any(gradient[0] != 0), name


@pytest.mark.parametrize("name", sorted(LOSSES) + sorted(METRICS))
def test_pixels_of_weight_zero_have_no_effect(name):
    y, p = batch(1)
    weights = np.ones(y.shape[:3], "float32")
    weights[:, :4] = 0.0
    changed = p.copy()
    changed[:, :4] = 1.0 - changed[:, :4]
    if name in LOSSES:
        a, b = value(LOSSES[name](), y, p, weights), value(LOSSES[name](), y, changed, weights)
    else:
        m1, m2 = METRICS[name](), METRICS[name]()
        m1.update_state(y, p, sample_weight=weights)
        m2.update_state(y, changed, sample_weight=weights)
        a, b = float(m1.result()), float(m2.result())
    assert a == pytest.approx(b, abs=1e-6)


def numpy_focal_dice(y, p, w, per_image, alpha=0.25, gamma=2.0, smooth=1.0):
    """1 - dice + alpha (1 - dice)^gamma (the defaults) with weighted sums; per image scaled by the mean weight."""
    w = np.broadcast_to(w, y.shape)
    if per_image:
        out = []
        for yi, pi, wi in zip(y, p, w):
            d = (2 * np.sum(wi * yi * pi) + smooth) / (np.sum(wi * yi) + np.sum(wi * pi) + smooth)
            out.append((1 - d + alpha * (1 - d) ** gamma) * wi.mean())
        return float(np.mean(out))
    d = (2 * np.sum(w * y * p) + smooth) / (np.sum(w * y) + np.sum(w * p) + smooth)
    return float(1 - d + alpha * (1 - d) ** gamma)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), per_pixel=st.booleans(), per_image=st.booleans())
def test_focal_dice_weights_match_numpy(seed, per_pixel, per_image):
    y, p = batch(seed)
    rng = np.random.default_rng(seed + 1)
    w = rng.random(y.shape[:3]).astype("float32") if per_pixel else rng.random(3).astype("float32")
    reference_w = w[..., None] if per_pixel else w[:, None, None, None]
    got = value(FocalDiceLoss(per_image=per_image), y, p, w)
    assert got == pytest.approx(numpy_focal_dice(y, p, reference_w, per_image), rel=1e-4, abs=1e-5)


def test_halo_weights_match_numpy():
    import scipy.ndimage

    y, p = batch(3)
    w = np.random.default_rng(4).random(y.shape[:3]).astype("float32")
    expected = []
    for yi, pi, wi in zip(y[..., 0], p[..., 0], w):
        halo = scipy.ndimage.maximum_filter(yi, size=3, mode="constant") - yi
        h = 1 + 4.0 * halo
        bce = -(yi * np.log(pi) + (1 - yi) * np.log(1 - pi))
        expected.append(np.sum(wi * h * bce) / np.sum(h))
    got = value(HaloWeightedCrossEntropy(halo_weight=4.0, halo_width=3), y, p, w)
    assert got == pytest.approx(np.mean(expected), rel=1e-4)


def test_multiclass_iou_takes_per_pixel_weights():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, (2, 6, 6))
    prob = rng.random((2, 6, 6, 3)).astype("float32")
    w = rng.random((2, 6, 6)).astype("float32")
    metric = MulticlassIoU(3)
    metric.update_state(labels, prob, sample_weight=w)
    predicted = prob.argmax(-1)
    ious = []
    for c in range(3):
        tp = np.sum(w * ((labels == c) & (predicted == c)))
        fp = np.sum(w * ((labels != c) & (predicted == c)))
        fn = np.sum(w * ((labels == c) & (predicted != c)))
        ious.append(tp / (tp + fp + fn))
    assert float(metric.result()) == pytest.approx(np.mean(ious), rel=1e-5)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_weights_of_another_shape_are_refused(name):
    y, p = batch()
    with pytest.raises(ValueError, match="fits neither per-sample"):
        LOSSES[name]()(y, p, sample_weight=np.ones((3, 5), "float32"))


def test_ignored_labels_are_explicit_zero_rows():
    """Labels 255 and -1 count nowhere (one rule on every backend, not one_hot's behaviour)."""
    from keras_unetpp.values import label_targets

    rows = keras.ops.convert_to_numpy(label_targets(np.array([0, 2, 255, -1, 1]), 3)[0])
    np.testing.assert_array_equal(rows, [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0], [0, 1, 0]])
    metric = MulticlassIoU(3)
    labels = np.array([[[0, 255], [1, 2]]])
    prob = np.eye(3, dtype="float32")[np.array([[[0, 1], [1, 2]]])]
    metric.update_state(labels, prob)
    assert float(metric.result()) == pytest.approx(1.0)  # the ignored pixel's wrong class does not count
