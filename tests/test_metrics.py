"""BinaryIoU / BinaryDice against numpy on the concatenated batches."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from keras_unetpp import BinaryDice, BinaryIoU

batches = st.lists(
    hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.just(5), st.just(4), st.just(1)),
               elements=st.floats(0, 1, width=32)),
    min_size=1, max_size=4,
)


def numpy_scores(truths, probs, threshold):
    t = np.concatenate([a.ravel() for a in truths]) >= 0.5
    p = np.concatenate([a.ravel() for a in probs]) >= threshold
    inter, union = np.logical_and(t, p).sum(), np.logical_or(t, p).sum()
    iou = inter / union if union else 1.0
    dice = 2 * inter / (t.sum() + p.sum()) if union else 1.0
    return iou, dice


@given(batches, st.integers(0, 2**31 - 1), st.sampled_from([0.3, 0.5, 0.7]))
def test_streaming_equals_numpy_on_concatenation(probs, seed, threshold):
    rng = np.random.default_rng(seed)
    truths = [(rng.random(p.shape) > 0.6).astype("float32") for p in probs]
    iou, dice = BinaryIoU(threshold=threshold), BinaryDice(threshold=threshold)
    for t, p in zip(truths, probs):
        iou.update_state(t, p)
        dice.update_state(t, p)
    expected_iou, expected_dice = numpy_scores(truths, probs, threshold)
    np.testing.assert_allclose(float(iou.result()), expected_iou, rtol=1e-6)
    np.testing.assert_allclose(float(dice.result()), expected_dice, rtol=1e-6)
    # the identity that ties the two: dice = 2 iou / (1 + iou)
    np.testing.assert_allclose(float(dice.result()), 2 * float(iou.result()) / (1 + float(iou.result())), rtol=1e-6)


def test_reset_and_empty_value():
    m = BinaryIoU()
    m.update_state(np.ones((1, 2, 2, 1)), np.zeros((1, 2, 2, 1)))
    assert float(m.result()) == 0.0
    m.reset_state()
    m.update_state(np.zeros((1, 2, 2, 1)), np.zeros((1, 2, 2, 1)))
    assert float(m.result()) == 1.0
    # keras' BinaryIoU averages both classes; ours is foreground only
    y = np.array([[1, 0, 0, 0]])
    p = np.array([[0.9, 0.9, 0.1, 0.1]])
    ours, theirs = BinaryIoU(), keras.metrics.BinaryIoU()
    ours.update_state(y, p)
    theirs.update_state(y, p)
    assert float(ours.result()) == pytest.approx(0.5)
    assert float(theirs.result()) == pytest.approx((0.5 + 2 / 3) / 2)


def test_logits_and_0_255_masks():
    rng = np.random.default_rng(0)
    y = (rng.random((2, 6, 6, 1)) > 0.5).astype("float32")
    z = rng.normal(size=y.shape).astype("float32")
    a, b = BinaryIoU(from_logits=True), BinaryIoU()
    a.update_state(y * 255, z)
    b.update_state(y, 1 / (1 + np.exp(-z)))
    np.testing.assert_allclose(float(a.result()), float(b.result()), rtol=1e-6)


def test_rejects_multichannel_and_bad_threshold():
    with pytest.raises(ValueError, match="one output channel"):
        BinaryIoU().update_state(np.zeros((1, 2, 2, 1)), np.zeros((1, 2, 2, 3)))
    with pytest.raises(ValueError, match="threshold"):
        BinaryIoU(threshold=1.5)


def test_serialization_and_use_in_fit():
    m = keras.metrics.deserialize(keras.metrics.serialize(BinaryIoU(threshold=0.4, name="biou")))
    assert isinstance(m, BinaryIoU) and m.threshold == 0.4
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(1, 1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", metrics=[BinaryIoU(), BinaryDice()])
    x = np.random.default_rng(1).random((3, 4, 4, 1)).astype("float32")
    logs = model.evaluate(x, (x > 0.5).astype("float32"), verbose=0, return_dict=True)
    assert {"iou", "dice"} <= set(logs)


def test_nan_prediction_makes_the_metric_nan_and_shape_mismatch_is_named():
    from keras_unetpp import BinaryDice, BinaryIoU

    y = np.ones((1, 4, 4, 1), "float32")
    p = np.full_like(y, 0.9)
    p[0, 1, 1, 0] = np.nan
    for metric in (BinaryIoU(), BinaryDice()):
        metric.update_state(y, p)
        assert np.isnan(float(metric.result()))
        with pytest.raises(ValueError, match=r"y_true of shape \(1, 8, 8, 1\) does not match"):
            metric.update_state(np.ones((1, 8, 8, 1), "float32"), np.ones((1, 4, 4, 1), "float32"))


def multiclass_reference(labels, predicted, classes):
    """Per-class IoU by boolean masks, class by class; NaN for absent classes."""
    out = []
    for k in range(classes):
        t, p = labels == k, predicted == k
        union = np.sum(t | p)
        out.append(np.sum(t & p) / union if union else np.nan)
    return np.array(out)


@given(seed=st.integers(0, 2**31 - 1), classes=st.integers(2, 6), batches=st.integers(1, 3))
def test_multiclass_iou_matches_reference_over_streamed_batches(seed, classes, batches):
    from keras_unetpp import MulticlassIoU

    rng = np.random.default_rng(seed)
    metric = MulticlassIoU(classes)
    all_labels, all_predicted = [], []
    for _ in range(batches):
        labels = rng.integers(0, classes - (seed % 2), (2, 5, 4))  # odd seeds: the last class never true
        probs = rng.random((2, 5, 4, classes)).astype("float32")
        metric.update_state(labels if seed % 3 else np.eye(classes, dtype="float32")[labels], probs)
        all_labels.append(labels)
        all_predicted.append(probs.argmax(-1))
    expected = multiclass_reference(np.concatenate(all_labels), np.concatenate(all_predicted), classes)
    np.testing.assert_allclose(metric.per_class_iou(), expected, rtol=1e-6)
    np.testing.assert_allclose(float(metric.result()), np.nanmean(expected), rtol=1e-5)


def test_multiclass_iou_leaves_absent_classes_and_unlabelled_pixels_out():
    from keras_unetpp import MulticlassIoU

    labels = np.array([[[0, 0, 1, 255]]])  # 255: unlabelled, not counted
    probs = np.eye(3, dtype="float32")[np.array([[[0, 1, 1, 2]]])]
    metric = MulticlassIoU(3)
    metric.update_state(labels[..., None], probs)  # (N, H, W, 1) labels too
    iou = metric.per_class_iou()
    np.testing.assert_allclose(iou, [0.5, 0.5, np.nan])  # class 2 only predicted on an unlabelled pixel
    assert float(metric.result()) == pytest.approx(0.5)
    weighted = MulticlassIoU(3)
    weighted.update_state(np.concatenate([labels, labels * 0]), np.concatenate([probs, probs]),
                          sample_weight=np.array([1.0, 0.0]))
    np.testing.assert_allclose(weighted.per_class_iou(), iou)
    with pytest.raises(ValueError, match="3 channels"):
        metric.update_state(labels, probs[..., :2])
    with pytest.raises(ValueError, match="num_classes >= 2"):
        MulticlassIoU(1)


@pytest.mark.slow  # trains a model
def test_multiclass_iou_in_fit():
    from keras_unetpp import FocalDiceLoss, MulticlassIoU, UNetPlusPlus

    rng = np.random.default_rng(0)
    x = rng.random((4, 16, 16, 3)).astype("float32")
    y = np.argmax(x, axis=-1)  # the brightest channel is the class
    model = UNetPlusPlus((16, 16, 3), filters=(4, 8), num_classes=3, deep_supervision=False)
    model.compile(optimizer="adam", loss=FocalDiceLoss(), metrics=[MulticlassIoU(3)])
    history = model.fit(x, y, epochs=2, batch_size=2, verbose=0)
    assert 0.0 <= history.history["mean_iou"][-1] <= 1.0
    metric = MulticlassIoU(3)
    metric.update_state(y, model.predict(x, verbose=0))
    assert float(model.evaluate(x, y, verbose=0, return_dict=True)["mean_iou"]) == pytest.approx(
        float(metric.result()), abs=1e-6)
