"""FocalDiceLoss against an independent numpy reference."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from keras_unetpp import CombinedLoss, FocalDiceLoss, HaloWeightedCrossEntropy, LabelCrossEntropy, UNetPlusPlus


def reference(y, p, alpha=0.25, gamma=2.0, smooth=1.0, per_image=False):
    """Written independently: flatten and use dot products, loop over images/classes."""
    y = np.asarray(y, np.float64)
    p = np.asarray(p, np.float64)
    n, c = y.shape[0], y.shape[-1]
    groups = [y.reshape(n, -1, c)[i] for i in range(n)] if per_image else [y.reshape(-1, c)]
    preds = [p.reshape(n, -1, c)[i] for i in range(n)] if per_image else [p.reshape(-1, c)]
    out = []
    for yy, pp in zip(groups, preds):
        per_class = []
        for k in range(c):
            num = 2 * np.dot(yy[:, k], pp[:, k]) + smooth
            den = yy[:, k].sum() + pp[:, k].sum() + smooth
            d = num / den if den else 1.0
            per_class.append((1 - d) + alpha * (1 - d) ** gamma)
        out.append(np.mean(per_class))
    return float(np.mean(out))


def as_np(t):
    return float(keras.ops.convert_to_numpy(t))


masks = hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 8), st.integers(1, 8), st.just(1)),
                   elements=st.sampled_from([0.0, 1.0]))


@st.composite
def mask_and_prob(draw):
    y = draw(masks)
    p = draw(hnp.arrays(np.float32, y.shape, elements=st.floats(0, 1, width=32)))
    return y, p


@given(mask_and_prob(), st.floats(0, 2), st.floats(0.5, 4), st.floats(0, 2), st.booleans())
def test_matches_reference_and_lies_in_range(pair, alpha, gamma, smooth, per_image):
    y, p = pair
    loss = FocalDiceLoss(alpha=alpha, gamma=gamma, smooth=smooth, per_image=per_image)
    value = as_np(loss(y, p))
    np.testing.assert_allclose(value, reference(y, p, alpha, gamma, smooth, per_image), rtol=1e-4, atol=1e-5)
    assert -1e-6 <= value <= 1 + alpha + 1e-5


@given(masks)
def test_zero_for_perfect_prediction(y):
    assert abs(as_np(FocalDiceLoss()(y, y))) < 1e-6


@given(mask_and_prob(), st.integers(0, 7))
def test_invariant_to_dihedral_transforms_of_both(pair, t):
    y, p = pair
    def d4(a):
        a = np.rot90(a, t % 4, axes=(1, 2))
        return a[:, ::-1] if t >= 4 else a
    loss = FocalDiceLoss()
    np.testing.assert_allclose(as_np(loss(d4(y), d4(p))), as_np(loss(y, p)), rtol=1e-5, atol=1e-6)


def test_decreases_as_overlap_grows():
    y = np.zeros((1, 10, 10, 1), "float32")
    y[0, :, :5] = 1
    values = []
    for shift in range(6):
        p = np.zeros_like(y)
        p[0, :, shift:shift + 5] = 1
        values.append(as_np(FocalDiceLoss()(y, p)))
    assert all(a < b for a, b in zip(values, values[1:])), values


@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("smooth", [0.0, 1.0])
@pytest.mark.parametrize("per_image", [False, True])
def test_finite_gradients_on_constant_masks(fill, smooth, per_image):
    import tensorflow as tf
    y = np.full((2, 6, 6, 1), fill, "float32")
    for p0 in (np.zeros_like(y), np.ones_like(y), np.full_like(y, 0.3), y):
        logits = tf.Variable(np.clip(p0, 1e-3, 1 - 1e-3))
        with tf.GradientTape() as tape:
            loss = FocalDiceLoss(smooth=smooth, gamma=0.5, per_image=per_image)(y, logits)
        grad = tape.gradient(loss, logits)
        assert np.isfinite(loss.numpy()) and np.isfinite(grad.numpy()).all()


def test_empty_truth_and_prediction_is_zero_even_without_smooth():
    y = np.zeros((2, 4, 4, 1), "float32")
    assert as_np(FocalDiceLoss(smooth=0.0)(y, y)) == 0.0
    p = np.full_like(y, 0.5)
    # empty truth, predicted sum 16 * 0.5 = 8 per image: dice = 1 / (8 + 1), documented value
    d = 1 / 9
    np.testing.assert_allclose(as_np(FocalDiceLoss(per_image=True)(y, p)), (1 - d) + 0.25 * (1 - d) ** 2, rtol=1e-6)


def test_0_255_masks_are_normalised():
    rng = np.random.default_rng(0)
    y = (rng.random((2, 8, 8, 1)) > 0.5).astype("float32")
    p = rng.random(y.shape).astype("float32")
    np.testing.assert_allclose(as_np(FocalDiceLoss()(y * 255, p)), as_np(FocalDiceLoss()(y, p)), rtol=1e-6)


def test_stray_mask_values_count_as_foreground_not_as_fractions():
    """A 0/1 mask with a stray 2 is not a 0/255 mask: dividing by 255 would
    silently turn the whole batch into background."""
    rng = np.random.default_rng(1)
    y = (rng.random((2, 8, 8, 1)) > 0.5).astype("float32")
    p = rng.random(y.shape).astype("float32")
    stray = y.copy()
    stray[0, 0, 0, 0] = 2.0  # was 0 or 1: now foreground
    clean = y.copy()
    clean[0, 0, 0, 0] = 1.0
    np.testing.assert_allclose(as_np(FocalDiceLoss()(stray, p)), as_np(FocalDiceLoss()(clean, p)), rtol=1e-6)
    assert stray[0, 0, 0, 0] == 2.0  # the caller's array is untouched


def test_from_logits_equals_probabilities():
    rng = np.random.default_rng(1)
    y = (rng.random((2, 8, 8, 1)) > 0.5).astype("float32")
    z = rng.normal(size=y.shape).astype("float32")
    p = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(as_np(FocalDiceLoss(from_logits=True)(y, z)), reference(y, p), rtol=1e-5)


@pytest.mark.parametrize("label_form", ["one_hot", "int_channel", "int_plain"])
def test_multiclass_mean_over_classes(label_form):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, (2, 6, 7))
    one_hot = np.eye(3, dtype="float32")[labels]
    z = rng.normal(size=(2, 6, 7, 3)).astype("float32")
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    y = {"one_hot": one_hot, "int_channel": labels[..., None], "int_plain": labels}[label_form]
    np.testing.assert_allclose(as_np(FocalDiceLoss()(y, p)), reference(one_hot, p), rtol=1e-5)
    np.testing.assert_allclose(as_np(FocalDiceLoss(from_logits=True)(y, z)), reference(one_hot, p), rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_predictions_computed_in_float32(dtype):
    rng = np.random.default_rng(3)
    y = (rng.random((2, 16, 16, 1)) > 0.5).astype("float32")
    p = rng.random(y.shape).astype("float32")
    p_low = keras.ops.cast(p, dtype)
    p_rounded = keras.ops.convert_to_numpy(keras.ops.cast(p_low, "float32"))
    value = FocalDiceLoss()(y, p_low)
    np.testing.assert_allclose(as_np(value), reference(y, p_rounded), rtol=1e-5)


def test_bad_arguments_and_shapes():
    with pytest.raises(ValueError, match="alpha"):
        FocalDiceLoss(alpha=-1)
    with pytest.raises(ValueError, match="one-hot"):
        FocalDiceLoss()(np.zeros((1, 4, 4, 2)), np.zeros((1, 4, 4, 3)))


def test_serialization_round_trip():
    loss = FocalDiceLoss(alpha=0.5, gamma=3.0, smooth=0.0, per_image=True)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, FocalDiceLoss) and again.get_config() == loss.get_config()


@pytest.mark.slow  # trains a model
def test_trains_deep_supervision_model():
    rng = np.random.default_rng(4)
    x = rng.random((4, 16, 16, 1), dtype=np.float32)
    y = (x > 0.5).astype("float32")
    model = UNetPlusPlus((None, None, 1), filters=(4, 8, 16), deep_supervision=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=FocalDiceLoss())
    losses = model.fit(x, y, epochs=8, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_nan_predictions_give_a_nan_loss_not_a_perfect_one():
    y = np.ones((2, 4, 4, 1), "float32")
    p = np.full_like(y, np.nan)
    assert np.isnan(as_np(FocalDiceLoss()(y, p)))
    assert np.isnan(as_np(FocalDiceLoss(per_image=True)(y, p)))
    q = np.full_like(y, 0.7)
    q[0, 0, 0, 0] = np.nan  # one bad pixel is enough
    assert np.isnan(as_np(FocalDiceLoss()(y, q)))


@given(st.floats(1.0, 100.0), st.floats(-100.0, 0.0))
def test_probabilities_outside_the_unit_interval_are_clipped(high, low):
    rng = np.random.default_rng(0)
    y = (rng.random((2, 5, 5, 1)) > 0.5).astype("float32")
    p = np.where(y > 0, high, low).astype("float32")
    clipped = np.clip(p, 0, 1)
    value = as_np(FocalDiceLoss()(y, p))
    assert value >= 0.0
    np.testing.assert_allclose(value, as_np(FocalDiceLoss()(y, clipped)), rtol=1e-6)


@pytest.mark.parametrize("true_shape", [(2, 8, 8, 1), (2, 4, 4), (2, 4, 5, 1)])
def test_shape_mismatch_names_both_shapes(true_shape):
    y = np.zeros(true_shape, "float32")
    p = np.zeros((2, 4, 4, 1), "float32")
    if true_shape == (2, 4, 4):  # a missing channel axis is accepted
        assert as_np(FocalDiceLoss()(y, p)) == 0.0
        return
    with pytest.raises(ValueError, match=r"y_true of shape .* does not match y_pred of shape"):
        FocalDiceLoss()(y, p)


def halo_reference(y, p, weight, width):
    """Independent reference: scipy's maximum filter for the halo, numpy BCE."""
    import scipy.ndimage

    out = []
    for t, q in zip(y[..., 0] >= 0.5, np.clip(p[..., 0].astype(np.float64), 1e-7, 1 - 1e-7)):
        near = scipy.ndimage.maximum_filter(t.astype(np.uint8), size=width, mode="constant") > 0
        w = np.where(near & ~t, 1.0 + weight, 1.0)
        bce = -(t * np.log(q) + (~t) * np.log(1 - q))
        out.append((w * bce).sum() / w.sum())
    return float(np.mean(out))


@given(st.integers(0, 2**31 - 1), st.sampled_from([1, 3, 5, 9]), st.floats(0.0, 8.0))
def test_halo_weighted_cross_entropy_matches_reference(seed, width, weight):
    from keras_unetpp.losses import HaloWeightedCrossEntropy

    rng = np.random.default_rng(seed)
    y = (rng.random((2, 12, 10, 1)) > 0.8).astype("float32")
    p = rng.random(y.shape).astype("float32")
    got = as_np(HaloWeightedCrossEntropy(halo_weight=weight, halo_width=width)(y, p))
    np.testing.assert_allclose(got, halo_reference(y, p, weight, width), rtol=1e-4)


def test_halo_weighs_false_positives_next_to_objects_more():
    from keras_unetpp.losses import HaloWeightedCrossEntropy

    y = np.zeros((1, 16, 16, 1), "float32")
    y[0, 4:8, 4:8] = 1
    near, far = np.where(y > 0, 0.9, 0.1).astype("float32"), np.where(y > 0, 0.9, 0.1).astype("float32")
    near[0, 8, 5] = 0.9  # a false positive touching the object
    far[0, 14, 14] = 0.9  # the same false positive far away
    loss = HaloWeightedCrossEntropy(halo_weight=4.0, halo_width=5)
    assert as_np(loss(y, near)) > as_np(loss(y, far))
    plain = HaloWeightedCrossEntropy(halo_weight=0.0)
    np.testing.assert_allclose(as_np(plain(y, near)), as_np(plain(y, far)), rtol=1e-6)
    with pytest.raises(ValueError, match="odd halo_width"):
        HaloWeightedCrossEntropy(halo_width=4)


@given(st.integers(0, 2**31 - 1), st.floats(0.0, 3.0), st.floats(0.0, 3.0))
def test_combined_loss_is_the_weighted_sum_of_the_references(seed, w_dice, w_halo):
    from keras_unetpp import CombinedLoss
    from keras_unetpp.losses import HaloWeightedCrossEntropy

    rng = np.random.default_rng(seed)
    y = (rng.random((2, 10, 12, 1)) > 0.7).astype("float32")
    p = rng.random(y.shape).astype("float32")
    loss = CombinedLoss([FocalDiceLoss(), HaloWeightedCrossEntropy(halo_weight=3.0, halo_width=5)], [w_dice, w_halo])
    expected = w_dice * reference(y, p) + w_halo * halo_reference(y, p, 3.0, 5)
    np.testing.assert_allclose(as_np(loss(y, p)), expected, rtol=1e-4, atol=1e-6)


def test_combined_loss_takes_loss_functions_by_name():
    from keras_unetpp import CombinedLoss

    rng = np.random.default_rng(3)
    y = (rng.random((2, 6, 6, 1)) > 0.5).astype("float32")
    p = np.clip(rng.random(y.shape), 0.01, 0.99).astype("float32")
    bce = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(as_np(CombinedLoss(["binary_crossentropy"], [2.0])(y, p)), 2 * bce, rtol=1e-4)
    with pytest.raises(ValueError, match="one weight per loss"):
        CombinedLoss([FocalDiceLoss()], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least one loss"):
        CombinedLoss([])


@pytest.mark.slow  # trains a model
def test_model_compiled_with_combined_loss_loads_with_its_training_state(tmp_path):
    from keras_unetpp import CombinedLoss
    from keras_unetpp.losses import HaloWeightedCrossEntropy

    model = UNetPlusPlus((16, 16, 1), filters=(2, 4), deep_supervision=False)
    model.compile(optimizer="adam", loss=CombinedLoss([FocalDiceLoss(), HaloWeightedCrossEntropy()]))
    rng = np.random.default_rng(0)
    x = rng.random((2, 16, 16, 1)).astype("float32")
    y = (x > 0.5).astype("float32")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.loss, CombinedLoss)
    np.testing.assert_allclose(loaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-5)


def _halo_reference(y, p, w, halo_weight, width):
    """Halo-weighted BCE by hand (scipy): pixels of weight 0 neither count nor draw halos."""
    import scipy.ndimage

    out = []
    for yi, pi, wi in zip(y[..., 0], p[..., 0], w):
        seen = yi * (wi > 0)
        dilated = scipy.ndimage.maximum_filter(seen, size=width, mode="constant")
        halo = 1 + halo_weight * np.maximum(dilated - yi, 0)
        pc = np.clip(pi, 1e-7, 1 - 1e-7)
        bce = -(yi * np.log(pc) + (1 - yi) * np.log(1 - pc))
        out.append((wi * halo * bce).sum() / max((halo * (wi > 0)).sum(), 1e-7))
    return float(np.mean(out))


def test_halo_loss_ignores_zero_weight_pixels_entirely():
    rng = np.random.default_rng(7)
    y = (rng.random((2, 12, 12, 1)) > 0.7).astype("float32")
    p = rng.uniform(0.05, 0.95, y.shape).astype("float32")
    w = (rng.random((2, 12, 12)) > 0.3).astype("float32")
    got = float(HaloWeightedCrossEntropy(halo_weight=3.0, halo_width=5)(y, p, sample_weight=w))
    assert got == pytest.approx(_halo_reference(y, p, w, 3.0, 5), rel=1e-4)


@pytest.mark.parametrize("reduction", ["sum", "sum_over_batch_size"])
def test_combined_loss_reduces_alike_with_and_without_weights(reduction):
    rng = np.random.default_rng(8)
    y = (rng.random((3, 8, 8, 1)) > 0.5).astype("float32")
    p = rng.uniform(0.05, 0.95, y.shape).astype("float32")
    parts = lambda: [FocalDiceLoss(), HaloWeightedCrossEntropy(halo_weight=1.0)]  # noqa: E731
    plain = float(CombinedLoss(parts(), reduction=reduction)(y, p))
    weighted = float(CombinedLoss(parts(), reduction=reduction)(y, p, sample_weight=np.ones(3, "float32")))
    by_hand = float(FocalDiceLoss()(y, p)) + float(HaloWeightedCrossEntropy(halo_weight=1.0)(y, p))
    assert plain == pytest.approx(by_hand, rel=1e-5) and weighted == pytest.approx(by_hand, rel=1e-5)


@pytest.mark.parametrize("ignored", [255, -1])
def test_label_cross_entropy_is_the_mean_over_counted_pixels(ignored):
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 3, (2, 5, 6))
    drop = rng.random(labels.shape) < 0.4
    prob = rng.dirichlet(np.ones(3), labels.shape).astype("float32")
    picked = np.take_along_axis(prob, labels[..., None], -1)[..., 0]
    expected = np.mean([(-np.log(picked[i]) * ~drop[i]).sum() / (~drop[i]).sum() for i in range(2)])
    got = float(LabelCrossEntropy()(np.where(drop, ignored, labels)[..., None], prob))
    assert got == pytest.approx(expected, rel=1e-5)
    one_hot = np.eye(3, dtype="float32")[labels] * ~drop[..., None]  # all-zero rows: ignored alike
    assert float(LabelCrossEntropy()(one_hot, prob)) == pytest.approx(expected, rel=1e-5)
