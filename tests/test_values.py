"""One rule for values, masks and labels (keras_unetpp.values), applied alike by every entry point.

References are numpy written here, independently of the code under test.
"""

import json
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_unetpp import FocalDiceLoss, MulticlassIoU, UNetPlusPlus, predict_tiled, with_preprocessing
from keras_unetpp.datasets import load_folder_pairs
from keras_unetpp.inference import predict_augmented
from keras_unetpp.values import binary_targets, foreground, label_targets, to_model_values, valid_labels


def _focal_dice_reference(one_hot, prob, valid, alpha=0.25, gamma=2.0, smooth=1.0):
    """Batch focal Dice over the pixels that count, per class then averaged (numpy)."""
    w = valid[..., None].astype(np.float64)
    losses = []
    for k in range(one_hot.shape[-1]):
        y, p = one_hot[..., k] * w[..., 0], prob[..., k] * w[..., 0]
        dice = (2 * (y * p).sum() + smooth) / (y.sum() + p.sum() + smooth)
        losses.append((1 - dice) + alpha * (1 - dice) ** gamma)
    return float(np.mean(losses))


@given(st.integers(0, 2**31 - 1), st.floats(0.1, 0.9))
def test_loss_ignores_labels_outside_the_classes(seed, fraction):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, (2, 6, 7))
    ignored = rng.random(labels.shape) < fraction
    labels_with_ignore = np.where(ignored, 255, labels)
    prob = rng.dirichlet(np.ones(3), labels.shape).astype("float32")
    got = float(FocalDiceLoss()(labels_with_ignore[..., None], prob))
    expected = _focal_dice_reference(np.eye(3)[labels], prob, ~ignored)
    assert got == pytest.approx(expected, rel=1e-4)
    # the same pixels given weight 0 instead: the same value (one rule)
    weighted = float(FocalDiceLoss()(labels[..., None], prob, sample_weight=(~ignored).astype("float32")))
    assert weighted == pytest.approx(expected, rel=1e-4)


def test_all_zero_one_hot_rows_are_ignored_by_loss_and_metric_alike():
    labels = np.array([[[0, 1], [2, 1]]])
    one_hot = np.eye(3, dtype="float32")[labels]
    one_hot[0, 0, 1] = 0  # an unlabelled pixel
    prob = np.eye(3, dtype="float32")[np.array([[[0, 2], [2, 1]]])]  # wrong only on the unlabelled pixel
    metric = MulticlassIoU(3)
    metric.update_state(one_hot, prob)
    assert float(metric.result()) == pytest.approx(1.0)
    assert float(FocalDiceLoss(smooth=0.0)(one_hot, prob)) == pytest.approx(0.0, abs=1e-6)
    valid = valid_labels(one_hot, 3)
    assert valid.tolist() == [[[True, False], [True, True]]]


def test_multiclass_iou_with_only_ignored_labels_counts_nothing():
    metric = MulticlassIoU(3)
    metric.update_state(np.full((1, 4, 4, 1), 255), np.eye(3, dtype="float32")[np.zeros((1, 4, 4), int)])
    assert float(metric.result()) == 0.0  # nothing counted: no class present, not a perfect 1.0
    assert np.isnan(metric.per_class_iou()).all()


def test_nan_predictions_make_every_metric_nan():
    from keras_unetpp import BinaryIoU

    nan = np.full((1, 4, 4, 3), np.nan, "float32")
    metric = MulticlassIoU(3)
    metric.update_state(np.zeros((1, 4, 4, 1)), nan)
    binary = BinaryIoU()
    binary.update_state(np.zeros((1, 4, 4, 1)), nan[..., :1])
    assert np.isnan(float(metric.result())) and np.isnan(float(binary.result()))
    assert np.isnan(float(FocalDiceLoss()(np.zeros((1, 4, 4, 1)), nan)))


def test_binary_targets_and_foreground_agree_on_every_accepted_mask():
    for mask in (np.array([0, 1, 1, 0], np.uint8), np.array([0, 255, 255, 0], np.uint8),
                 np.array([False, True, True, False])):
        hard = keras.ops.convert_to_numpy(binary_targets(mask.astype("float32") if mask.dtype == bool else mask))
        assert (hard >= 0.5).tolist() == foreground(mask).tolist() == [False, True, True, False]


@pytest.mark.parametrize("weights", [np.array([1.0, -0.5]), np.array([1.0, np.nan])])
def test_negative_or_nan_sample_weights_are_refused(weights):
    y = np.zeros((2, 4, 4, 1), "float32")
    with pytest.raises(ValueError, match="negative|NaN"):
        FocalDiceLoss()(y, y + 0.5, sample_weight=weights)


def test_jpeg_mask_is_refused_by_the_loader_and_named_as_jpeg(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    mask = np.zeros((32, 32), np.uint8)
    cv2.circle(mask, (16, 16), 9, 255, -1)
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.full((32, 32), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "masks" / "a.jpg"), mask, [cv2.IMWRITE_JPEG_QUALITY, 80])
    with pytest.raises(ValueError, match="JPEG"):
        load_folder_pairs(tmp_path)


def test_bare_unetpp_gets_the_same_values_from_predict_tiled_and_predict_augmented():
    keras.utils.set_random_seed(0)
    model = UNetPlusPlus((None, None, 3), filters=(4, 8))
    scene = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    by_hand = model.predict((scene / 255.0)[None].astype("float32"), verbose=0)[0]
    np.testing.assert_allclose(predict_tiled(model, scene, tile_size=64), by_hand, atol=1e-5)
    np.testing.assert_allclose(predict_augmented(model, scene[None], tta=False)[0], by_hand, atol=1e-5)


def test_floats_outside_a_bare_model_range_are_refused_by_predict_tiled():
    model = UNetPlusPlus((None, None, 1), filters=(2, 4))
    with pytest.raises(ValueError, match="0..4000|input_range"):
        predict_tiled(model, np.linspace(0, 4000, 64 * 64, dtype="float32").reshape(64, 64, 1), tile_size=32)


def test_input_range_percentile_leaves_invalid_pixels_out():
    from keras_unetpp.values import resolve_input_range

    scene = np.zeros((40, 40, 1))
    scene[:10] = np.linspace(1070, 3930, 400).reshape(10, 40, 1)  # 25 % data, 75 % nodata (0)
    valid = np.zeros((40, 40), bool)
    valid[:10] = True
    low, high = resolve_input_range(scene, "percentile", valid=valid)
    expected = np.percentile(scene[:10].ravel(), [2, 98])
    np.testing.assert_allclose([low[0], high[0]], expected)


def test_uint8_values_map_onto_either_declared_range():
    image = np.array([[[0], [51], [255]]], np.uint8)
    np.testing.assert_allclose(to_model_values(image, (0.0, 1.0))[0, :, 0], [0.0, 0.2, 1.0])
    np.testing.assert_allclose(to_model_values(image, (0.0, 255.0))[0, :, 0], [0.0, 51.0, 255.0])
    one_hot, valid = label_targets(np.array([[1], [7]]), 3)
    assert keras.ops.convert_to_numpy(valid)[:, 0].tolist() == [1.0, 0.0]


def test_wide_integers_go_in_as_they_are_only_inside_a_wide_model_range():
    """A segmenter trained on 12-bit data takes 0..4095: the same sensor's uint16 values are its own;
    a 16-bit value beyond the range, or any uint16 for an 8-bit or [0, 1] model, is refused by name."""
    image = np.array([[[0], [1234], [4095]]], np.uint16)
    np.testing.assert_array_equal(to_model_values(image, (0.0, 4095.0))[0, :, 0], [0.0, 1234.0, 4095.0])
    with pytest.raises(ValueError, match=r"max 40000\); the model was made for values 0..4095"):
        to_model_values(np.array([[[40000]]], np.uint16), (0.0, 4095.0))
    for model_range, named in (((0.0, 255.0), "values 0..255"), ((0.0, 1.0), "8-bit images")):
        with pytest.raises(ValueError, match=named):
            to_model_values(image, model_range)
    assert image[0, 1, 0] == 1234   # the caller's array is untouched


@pytest.mark.slow
def test_one_image_through_python_tiling_command_and_geotiff_gives_the_same_numbers(tmp_path):
    """The same file, four entry points: the probabilities agree, and so do the scores."""
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    from keras_unetpp.cli import main
    from keras_unetpp.evaluation import segmentation_report

    keras.utils.set_random_seed(5)
    model = with_preprocessing(UNetPlusPlus((None, None, 3), filters=(4, 8, 16)), median_kernel=3,
                               symmetries="dihedral")
    model.save(tmp_path / "m.keras")
    rng = np.random.default_rng(5)
    image = cv2.GaussianBlur(rng.integers(0, 256, (70, 90, 3)).astype(np.uint8), (5, 5), 2)
    truth = (rng.random((70, 90)) > 0.6).astype(np.uint8) * 255
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "s.png"), image[..., ::-1])
    cv2.imwrite(str(tmp_path / "masks" / "s.png"), truth)
    with rasterio.open(tmp_path / "s.tif", "w", driver="GTiff", height=70, width=90, count=3, dtype="uint8",
                       crs="EPSG:32640", transform=from_origin(0, 0, 1, 1)) as dst:
        dst.write(np.moveaxis(image, -1, 0))

    python = model.predict(image[None], verbose=0)[0]
    tiled = predict_tiled(model, image, tile_size=256)
    assert main(["predict", str(tmp_path / "m.keras"), str(tmp_path / "s.tif"), "--out", str(tmp_path / "geo"),
                 "--probabilities"]) == 0
    with rasterio.open(tmp_path / "geo" / "s_probabilities.tif") as src:
        geotiff = np.moveaxis(src.read(), 0, -1)
    assert main(["evaluate", str(tmp_path / "m.keras"), "--images", str(tmp_path / "images"), "--masks",
                 str(tmp_path / "masks"), "--out", str(tmp_path / "scores")]) == 0
    command = json.loads(Path(tmp_path / "scores" / "metrics.json").read_text())["overall"]
    np.testing.assert_allclose(tiled, python, atol=1e-5)
    np.testing.assert_allclose(geotiff, python, atol=1e-5)
    predicted, actual = python[..., 0] >= 0.5, truth > 0
    iou = (predicted & actual).sum() / (predicted | actual).sum()
    assert command["iou"] == pytest.approx(iou, abs=1e-9)
    assert segmentation_report(truth, python).iou == pytest.approx(iou, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 6), st.integers(0, 2**31 - 1))
def test_any_class_foreground_counts_ignored_pixels_on_neither_side(classes, seed):
    from keras_unetpp.values import any_class_foreground

    rng = np.random.default_rng(seed)
    labels = rng.choice(np.r_[np.arange(classes), 255], size=(7, classes))   # width == C: never one-hot rows
    prob = rng.random((7, classes, classes))
    truth, pred = any_class_foreground(labels, prob, classes)
    for (r, c), label in np.ndenumerate(labels):   # pixel by pixel, the rule in words
        counted = label != 255
        assert truth[r, c] == int(counted and label != 0)
        assert pred[r, c, 0] == float(counted and int(np.argmax(prob[r, c])) != 0)


def test_labels_from_file_keeps_classes_and_the_ignore_label_and_names_strays():
    from keras_unetpp.values import labels_from_file

    good = np.array([[0, 1, 2], [255, 2, 0]], np.uint8)
    np.testing.assert_array_equal(labels_from_file(good, 3, "m.png")[..., 0], good)
    with pytest.raises(ValueError, match=r"m\.png holds labels \[3\] outside 0\.\.2.*--classes 3"):
        labels_from_file(np.array([[0, 3]], np.uint8), 3, "m.png")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(0, 2**31 - 1), st.floats(0.05, 0.95))
def test_predicted_labels_threshold_one_channel_and_pick_the_largest_of_several(classes, seed, threshold):
    from keras_unetpp.values import predicted_labels

    prob = np.random.default_rng(seed).random((3, 4, classes)).astype(np.float32)
    before = prob.copy()
    labels = predicted_labels(prob, threshold)
    assert labels.dtype == np.uint8 and labels.shape == (3, 4)
    for (r, c), label in np.ndenumerate(labels):   # pixel by pixel, the rule in words
        values = [float(v) for v in prob[r, c]]
        expected = int(values[0] >= threshold) if classes == 1 else values.index(max(values))
        assert label == expected
    np.testing.assert_array_equal(prob, before)


def test_predicted_labels_refuse_a_nan_binary_map():
    from keras_unetpp.values import predicted_labels

    with pytest.raises(ValueError, match="NaN"):
        predicted_labels(np.array([[[0.2], [np.nan]]], np.float32))
