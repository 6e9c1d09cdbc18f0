import cv2
import numpy as np
import pytest

from keras_unetpp import visualization as vis


def test_to_rgb8_scales_masks_and_images():
    assert vis.to_rgb8(np.array([[0, 1]], np.uint8))[0, 1].tolist() == [255, 255, 255]
    assert vis.to_rgb8(np.array([[0, 255]], np.uint8))[0, 1].tolist() == [255, 255, 255]
    img = np.random.default_rng(0).random((4, 5, 3)).astype("float32")
    np.testing.assert_array_equal(vis.to_rgb8(img), np.round(img * 255).astype(np.uint8))
    with pytest.raises(ValueError, match="shape"):
        vis.to_rgb8(np.zeros((2, 2, 2)))


def test_overlay_tints_only_foreground():
    img = np.zeros((2, 2, 3), np.uint8)
    mask = np.array([[1, 0], [0, 0]], np.uint8)
    out = vis.overlay(img, mask, color=(200, 0, 0), opacity=0.5)
    assert out[0, 0].tolist() == [100, 0, 0] and out[1, 1].tolist() == [0, 0, 0]


def test_pngs_are_written(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((2, 16, 16, 3)).astype("float32")
    masks = (images[..., :1] > 0.5).astype("float32")
    grid = vis.save_prediction_grid(tmp_path / "g.png", images, masks, masks)
    assert cv2.imread(str(grid)).shape[0] > 32
    curves = vis.plot_curves({"loss": [1.0, 0.5, float("nan"), 0.2], "iou": [0.1, 0.4, 0.6, 0.7]}, tmp_path / "c.png")
    picture = cv2.imread(str(curves))
    assert picture.shape == (400, 640, 3) and (picture < 250).any()
    with pytest.raises(ValueError, match="finite"):
        vis.plot_curves({"loss": [float("nan")]}, tmp_path / "x.png")
