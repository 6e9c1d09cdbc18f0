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


def test_curves_figure_draws_each_series_at_its_epochs_with_gaps_for_nan():
    fig = vis.curves_figure({"loss": [1.0, 0.5, float("nan"), 0.2], "val_loss": [0.9, 0.8]},
                            title="t", ylabel="loss")
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_array_equal(lines["loss"].get_xdata(), [1, 2, 4])       # epoch 3 (NaN) left out
    np.testing.assert_array_equal(lines["loss"].get_ydata(), [1.0, 0.5, 0.2])
    np.testing.assert_array_equal(lines["val_loss"].get_xdata(), [1, 2])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["loss", "val_loss"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("epoch", "loss", "t")
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert all(float(t).is_integer() for t in ticks)                           # epochs, not 1.5


def test_comparison_figure_bars_are_means_and_error_bars_are_sample_std():
    repeats = {"with": [[0.90, 0.94, 0.92], [0.70, 0.80, 0.75]], "without": [[0.95, 0.96, 0.94], [0.5, 0.6, 0.4]]}
    fig = vis.comparison_figure(["clean", "rotated"], repeats, ylabel="Dice")
    ax = fig.axes[0]
    heights = [bar.get_height() for bar in ax.patches]
    expected = [sum(r) / len(r) for arm in repeats.values() for r in arm]
    np.testing.assert_allclose(heights, expected)
    # the error bar segments span mean +- sample standard deviation (n - 1), computed by hand here
    segments = [c for c in ax.collections if hasattr(c, "get_segments")]
    spans = sorted(round(float(abs(s[1][1] - s[0][1])), 6) for c in segments for s in c.get_segments())
    def sd(r):
        m = sum(r) / len(r)
        return (sum((v - m) ** 2 for v in r) / (len(r) - 1)) ** 0.5
    assert spans == sorted(round(2 * sd(r), 6) for arm in repeats.values() for r in arm)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["clean", "rotated"]
    with pytest.raises(ValueError, match="expected 2"):
        vis.comparison_figure(["a", "b"], {"x": [[1.0]]})


@pytest.mark.parametrize("width", [3, 40, 90, 300])
def test_error_map_legend_is_never_cut(tmp_path, width):
    """Each label's text lies whole inside the strip: its dark pixels end before the next cell (OpenCV measures)."""
    import cv2

    from keras_unetpp.visualization import _LEGEND_CELL, save_error_map

    path = save_error_map(tmp_path / "e.png", np.zeros((10, width), np.uint8), np.zeros((10, width)))
    saved = cv2.imread(str(path))
    strip = saved[10:]
    columns = max(1, min(4, width // _LEGEND_CELL))
    assert strip.shape[0] == 28 * -(-4 // columns) and saved.shape[1] >= min(4, columns) * _LEGEND_CELL
    text_width = cv2.getTextSize("TN", cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)[0][0]
    assert 24 + text_width <= saved.shape[1] // columns  # every label fits its cell
